"""The configurable workflow: which statuses exist and which transitions lead between them.

The JSON form accepted by ``POST /_sandbox/config {"workflow": ...}`` and :meth:`Workflow.parse`::

    {
      "name": "Software Simplified Workflow for Project SEC",   # optional; what workflow/search lists
      "initial": "To Do",                       # optional, defaults to the first status
      "statuses": [
        {"name": "To Do", "category": "new", "id": "10000"},    # category: new | indeterminate | done
        ...                                                      # id optional (generated)
      ],
      "transitions": [
        {"id": "41", "name": "Done", "from": ["In Review"], "to": "Done",
         "fields": ["resolution"],       # fields on the transition screen (optional)
         "required": ["resolution"],     # of those, the ones that must be given (optional)
         "clear": ["resolution"],        # fields the transition empties, like Jira's post functions
         "set": {"resolution": "Won't Do"}},   # fields it sets (a post function; resolution only)
        ...                               # "from" omitted or [] means a global transition (from any status)
      ]
    }

Only ``resolution`` is a meaningful screen field in the sandbox; any other listed field is accepted
and validated like an edit. Transitions are offered in the order listed, global ones included, as Jira
lists them in workflow order.

Besides the project's workflow (:data:`DEFAULT_WORKFLOW` unless configured), the site has Jira's
read-only system workflow ``jira`` (:data:`SYSTEM_WORKFLOW`), which workflow search lists too.
:data:`CANCEL_FIRST_WORKFLOW` is an alternative for tests: a global Cancel listed first.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from connectors.sandbox.jira.catalog import RESOLUTIONS, find_named

DEFAULT_NAME = "Software Simplified Workflow for Project SEC"
INITIAL_TRANSITION = "1"  # the id of the "Create" transition that starts every issue (type initial)

CATEGORIES: dict[str, dict[str, Any]] = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"},
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}


@dataclass(frozen=True)
class Status:
    id: str
    name: str
    category: str

    def as_json(self, base_url: str) -> dict[str, Any]:
        category = CATEGORIES[self.category]
        return {
            "self": f"{base_url}/rest/api/2/status/{self.id}",
            "description": "",
            "iconUrl": f"{base_url}/images/icons/statuses/generic.png",
            "name": self.name,
            "untranslatedName": self.name,
            "id": self.id,
            "statusCategory": {
                "self": f"{base_url}/rest/api/2/statuscategory/{category['id']}",
                **category,
            },
        }


@dataclass(frozen=True)
class Transition:
    id: str
    name: str
    sources: tuple[str, ...]  # empty: global, available from every status
    to: str
    fields: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    clear: tuple[str, ...] = ()
    sets: tuple[tuple[str, str], ...] = ()  # (field, value) a post function sets: resolution only

    def available_from(self, status: str) -> bool:
        return not self.sources or status in self.sources


@dataclass
class Workflow:
    statuses: list[Status]
    transitions: list[Transition]
    initial: str = ""
    name: str = DEFAULT_NAME
    _by_name: dict[str, Status] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_name = {s.name.lower(): s for s in self.statuses}
        if not self.initial:
            self.initial = self.statuses[0].name

    def status(self, name: str) -> Status | None:
        return self._by_name.get(name.lower())

    def status_by_id_or_name(self, ref: str) -> Status | None:
        return next((s for s in self.statuses if s.id == ref), None) or self.status(ref)

    def available(self, status: str) -> list[Transition]:
        return [t for t in self.transitions if t.available_from(status)]

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Workflow:
        """Build a workflow from its JSON form; raises ``ValueError`` naming what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("workflow must be an object with 'statuses' and 'transitions'")
        raw_statuses = data.get("statuses")
        if not isinstance(raw_statuses, list) or not raw_statuses:
            raise ValueError("workflow.statuses must be a non-empty list")
        statuses: list[Status] = []
        for index, raw in enumerate(raw_statuses):
            raw = {"name": raw} if isinstance(raw, str) else raw
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
                raise ValueError(f"workflow.statuses[{index}] needs a name")
            category = raw.get("category", "indeterminate")
            if category not in CATEGORIES:
                raise ValueError(f"status {raw['name']!r}: category must be one of {sorted(CATEGORIES)}")
            statuses.append(Status(str(raw.get("id", 10000 + index)), raw["name"], category))
        names = {s.name for s in statuses}
        if len(names) != len(statuses):
            raise ValueError("workflow status names must be unique")
        transitions: list[Transition] = []
        for index, raw in enumerate(data.get("transitions") or []):
            if not isinstance(raw, dict) or not raw.get("name") or raw.get("to") not in names:
                raise ValueError(f"workflow.transitions[{index}] needs a name and a known 'to' status")
            sources = raw.get("from") or []
            sources = [sources] if isinstance(sources, str) else sources
            unknown = [s for s in sources if s not in names]
            if unknown:
                raise ValueError(f"transition {raw['name']!r}: unknown 'from' statuses {unknown}")
            transitions.append(
                Transition(
                    id=str(raw.get("id", 11 + 10 * index)),
                    name=raw["name"],
                    sources=tuple(sources),
                    to=raw["to"],
                    fields=tuple(raw.get("fields") or raw.get("required") or ()),
                    required=tuple(raw.get("required") or ()),
                    clear=tuple(raw.get("clear") or ()),
                    sets=_sets(raw),
                )
            )
        if len({t.id for t in transitions}) != len(transitions):
            raise ValueError("workflow transition ids must be unique")
        initial = data.get("initial") or statuses[0].name
        if initial not in names:
            raise ValueError(f"workflow.initial {initial!r} is not a status")
        name = data.get("name") or DEFAULT_NAME
        if not isinstance(name, str):
            raise ValueError("workflow.name must be a string")
        return cls(statuses, transitions, initial, name)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "initial": self.initial,
            "statuses": [{"id": s.id, "name": s.name, "category": s.category} for s in self.statuses],
            "transitions": [
                {
                    "id": t.id,
                    "name": t.name,
                    "from": list(t.sources),
                    "to": t.to,
                    "fields": list(t.fields),
                    "required": list(t.required),
                    "clear": list(t.clear),
                    "set": dict(t.sets),
                }
                for t in self.transitions
            ],
        }

    def search_json(self, expand: set[str]) -> dict[str, Any]:
        """The workflow as ``GET /rest/api/2/workflow/search`` lists it (Jira Cloud's ``Workflow``):
        transitions name statuses by id; ``from`` is empty for a global transition and for the
        initial one that creates an issue."""
        ids = {s.name: s.id for s in self.statuses}
        body: dict[str, Any] = {
            "id": {"name": self.name, "entityId": _entity_id(self.name)},
            "description": "",
            "isDefault": self.name == SYSTEM_NAME,
        }
        if expand & {"transitions", "transitions.rules", "transitions.properties"}:
            taken = {t.id for t in self.transitions}
            create = INITIAL_TRANSITION if INITIAL_TRANSITION not in taken else "0"
            transitions: list[dict[str, Any]] = [
                {
                    "id": create,
                    "name": "Create",
                    "description": "",
                    "from": [],
                    "to": ids[self.initial],
                    "type": "initial",
                }
            ]
            for t in self.transitions:
                entry: dict[str, Any] = {
                    "id": t.id,
                    "name": t.name,
                    "description": "",
                    "from": [ids[source] for source in t.sources],
                    "to": ids[t.to],
                    "type": "directed" if t.sources else "global",
                }
                if t.fields:
                    entry["screen"] = {"id": "10000"}
                transitions.append(entry)
            body["transitions"] = transitions
        if expand & {"statuses", "statuses.properties"}:
            body["statuses"] = [{"id": s.id, "name": s.name, "properties": {}} for s in self.statuses]
        return body


def _sets(raw: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    sets = raw.get("set") or {}
    if not isinstance(sets, dict):
        raise ValueError(f"transition {raw['name']!r}: 'set' must be an object of field: value")
    for name, value in sets.items():
        if name != "resolution" or find_named(RESOLUTIONS, {"name": value}) is None:
            raise ValueError(f"transition {raw['name']!r}: 'set' takes a resolution name only, not {name!r}")
    return tuple((str(name), str(value)) for name, value in sets.items())


def _entity_id(name: str) -> str:
    """A stable UUID-shaped id for a workflow name, as Jira gives each workflow one."""
    digest = hashlib.sha1(name.encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-8{digest[17:20]}-{digest[20:32]}"


DEFAULT_WORKFLOW: dict[str, Any] = {
    "initial": "To Do",
    "statuses": [
        {"id": "10000", "name": "To Do", "category": "new"},
        {"id": "3", "name": "In Progress", "category": "indeterminate"},
        {"id": "10002", "name": "In Review", "category": "indeterminate"},
        {"id": "10001", "name": "Done", "category": "done"},
    ],
    "transitions": [
        {"id": "11", "name": "Start", "from": ["To Do"], "to": "In Progress"},
        {"id": "21", "name": "Review", "from": ["In Progress"], "to": "In Review"},
        {"id": "31", "name": "Rework", "from": ["In Review"], "to": "In Progress"},
        {"id": "41", "name": "Done", "from": ["In Review"], "to": "Done", "required": ["resolution"]},
        {"id": "51", "name": "Stop", "from": ["In Progress"], "to": "To Do"},
        {"id": "61", "name": "Reopen", "from": ["Done"], "to": "To Do", "clear": ["resolution"]},
    ],
}


# An alternative for tests: Jira Software's default workflow with a global Cancel, listed first in every
# status's transitions as Jira lists global transitions in workflow order, that sets a resolution; In
# Review is two transitions away from To Do. A walk that explores by moving the issue goes through
# Cancelled.
CANCEL_FIRST_WORKFLOW: dict[str, Any] = {
    "name": "SEC: Software workflow with Cancel",
    "initial": "To Do",
    "statuses": [
        *DEFAULT_WORKFLOW["statuses"],
        {"id": "10003", "name": "Cancelled", "category": "done"},
    ],
    "transitions": [
        {"id": "71", "name": "Cancel", "to": "Cancelled", "set": {"resolution": "Won't Do"}},
        *DEFAULT_WORKFLOW["transitions"],
        {"id": "81", "name": "Restore", "from": ["Cancelled"], "to": "To Do", "clear": ["resolution"]},
    ],
}

SYSTEM_NAME = "jira"
# Jira's read-only system workflow, in every site; no project of the sandbox uses it
SYSTEM_WORKFLOW: dict[str, Any] = {
    "name": SYSTEM_NAME,
    "initial": "Open",
    "statuses": [
        {"id": "1", "name": "Open", "category": "new"},
        {"id": "3", "name": "In Progress", "category": "indeterminate"},
        {"id": "4", "name": "Reopened", "category": "new"},
        {"id": "5", "name": "Resolved", "category": "done"},
        {"id": "6", "name": "Closed", "category": "done"},
    ],
    "transitions": [
        {"id": "4", "name": "Start Progress", "from": ["Open", "Reopened"], "to": "In Progress"},
        {"id": "301", "name": "Stop Progress", "from": ["In Progress"], "to": "Open"},
        {"id": "5", "name": "Resolve Issue", "from": ["Open", "In Progress", "Reopened"], "to": "Resolved"},
        {
            "id": "2",
            "name": "Close Issue",
            "from": ["Open", "In Progress", "Reopened", "Resolved"],
            "to": "Closed",
        },
        {"id": "3", "name": "Reopen Issue", "from": ["Resolved", "Closed"], "to": "Reopened"},
    ],
}


def default_workflow() -> Workflow:
    return Workflow.parse(DEFAULT_WORKFLOW)


def system_workflow() -> Workflow:
    return Workflow.parse(SYSTEM_WORKFLOW)
