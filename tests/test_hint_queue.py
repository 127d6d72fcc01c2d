"""The queue ``sirsync serve`` keeps hinted cases on: each case waits once, and is on one worker at a time."""

from __future__ import annotations

import threading

from connectors.serve import HintQueue
from connectors.webhooks import Hint


def hint(case_id: str, event: str = "comment_created") -> Hint:
    return Hint(case_id, "jira", event)


def test_a_case_hinted_twice_while_it_waits_is_synced_once() -> None:
    queue = HintQueue()
    assert queue.put(hint("1111111111"))
    assert not queue.put(hint("1111111111", "jira:issue_updated"))
    assert queue.put(hint("2222222222"))
    assert queue.depth == 2
    assert queue.take() == hint("1111111111")
    assert queue.take() == hint("2222222222")
    assert queue.depth == 0


def test_a_case_hinted_while_it_is_synced_waits_for_that_sync_then_syncs_again() -> None:
    queue = HintQueue()
    queue.put(hint("1111111111"))
    first = queue.take()
    assert first is not None
    assert queue.put(hint("1111111111"))  # the change may have come after the sync's reads
    queue.put(hint("2222222222"))
    assert queue.take() == hint("2222222222")  # the other case goes first: the first is still busy
    taken: list[Hint | None] = []
    second = threading.Thread(target=lambda: taken.append(queue.take()))
    second.start()
    second.join(0.3)
    assert taken == []  # not on two workers at once
    queue.done(first.case_id)
    second.join(5)
    assert taken == [hint("1111111111")]


def test_closing_the_queue_frees_the_workers_and_counts_what_was_left() -> None:
    queue = HintQueue()
    taken: list[Hint | None] = []
    worker = threading.Thread(target=lambda: taken.append(queue.take()))
    worker.start()
    queue.put(hint("1111111111"))
    worker.join(5)
    queue.put(hint("2222222222"))
    assert queue.close() == 1
    assert queue.take() is None
    assert not queue.put(hint("3333333333"))
    assert taken == [hint("1111111111")]
