"""A bounded memo for what an adapter learns about single records, so that a long-lived ``sync --every``
process does not keep something for every case it has ever seen."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from threading import Lock
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

DEFAULT_SIZE = 4096


class Bounded(MutableMapping[K, V], Generic[K, V]):
    """A mapping that forgets the entry used longest ago once it holds ``size`` entries; safe to share
    between the workers of a cycle. What it forgets is only read again when next needed."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("a bounded memo holds at least one entry")
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = Lock()

    def __getitem__(self, key: K) -> V:
        with self._lock:
            value = self._items[key]
            self._items.move_to_end(key)
            return value

    def __setitem__(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __delitem__(self, key: K) -> None:
        with self._lock:
            del self._items[key]

    def __iter__(self) -> Iterator[K]:
        with self._lock:
            return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)
