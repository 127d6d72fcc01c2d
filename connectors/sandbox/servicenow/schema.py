"""The tables the ServiceNow sandbox serves: their fields, choice lists, labels and lengths.

Values are base-system values (Incident from ITSM, ``sn_si_incident`` from the Security Incident
Response plugin). Every value travels as a string, as it does in ServiceNow's JSON.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from connectors.sandbox.identities import DIRECTORY, INTEGRATION, RESPONDER

STRING, CHOICE, REFERENCE, JOURNAL, DATETIME, INTEGER, BOOLEAN, GLIDE_LIST = (
    "string",
    "choice",
    "reference",
    "journal",
    "datetime",
    "integer",
    "boolean",
    "glide_list",  # comma-separated sys_ids of the referenced table; a list of users also takes addresses
)


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str = STRING
    max_length: int = 0  # 0: no limit the sandbox checks
    choices: dict[str, str] = field(default_factory=dict)  # value -> label
    reference: str = ""  # referenced table
    writable: bool = True
    default: str = ""


@dataclass(frozen=True)
class Table:
    name: str
    label: str
    fields: dict[str, Field]
    number_prefix: str = ""
    writable: bool = True  # through the Table API
    mandatory_on_state: dict[str, tuple[str, ...]] = field(default_factory=dict)  # state -> fields
    inactive_states: frozenset[str] = frozenset()

    def has(self, name: str) -> bool:
        return name in self.fields


def _table(name: str, label: str, fields: list[Field], **kwargs: object) -> Table:
    return Table(name, label, {f.name: f for f in fields}, **kwargs)  # type: ignore[arg-type]


SYSTEM_FIELDS = [
    Field("sys_id", "Sys ID", writable=False),
    Field("sys_created_on", "Created", DATETIME, writable=False),
    Field("sys_created_by", "Created by", writable=False),
    Field("sys_updated_on", "Updated", DATETIME, writable=False),
    Field("sys_updated_by", "Updated by", writable=False),
    Field("sys_mod_count", "Updates", INTEGER, writable=False, default="0"),
]

IMPACT = {"1": "1 - High", "2": "2 - Medium", "3": "3 - Low"}
URGENCY = dict(IMPACT)
PRIORITY = {"1": "1 - Critical", "2": "2 - High", "3": "3 - Moderate", "4": "4 - Low", "5": "5 - Planning"}
# ServiceNow's default priority lookup: (impact, urgency) -> priority.
PRIORITY_MATRIX = {
    ("1", "1"): "1",
    ("1", "2"): "2",
    ("1", "3"): "3",
    ("2", "1"): "2",
    ("2", "2"): "3",
    ("2", "3"): "4",
    ("3", "1"): "3",
    ("3", "2"): "4",
    ("3", "3"): "5",
}
INCIDENT_STATES = {
    "1": "New",
    "2": "In Progress",
    "3": "On Hold",
    "6": "Resolved",
    "7": "Closed",
    "8": "Canceled",
}
HOLD_REASONS = {
    "1": "Awaiting Caller",
    "3": "Awaiting Problem",
    "4": "Awaiting Vendor",
    "5": "Awaiting Change",
}
SIR_STATES = {
    "10": "Draft",
    "16": "Analysis",
    "18": "Contain",
    "19": "Eradicate",
    "20": "Recover",
    "100": "Review",
    "3": "Closed",
    "7": "Cancelled",
}
# The Security Incident Response module's state flows (its "process definitions"): from each state, the
# states one save may move a security incident to; "" holds the states a new one may start in. NIST
# Stateful, the module's default, moves forward one state at a time (Draft, Analysis, Contain, Eradicate,
# Recover, Review); NIST Open moves between the open states either way. Both close only from Review and
# cancel only before it (whether Review may be cancelled is not documented: the harsher answer, no).
_SIR_OPEN = ("10", "16", "18", "19", "20", "100")
NIST_STATEFUL = {
    "": _SIR_OPEN,
    "10": ("16", "7"),
    "16": ("18", "7"),
    "18": ("19", "7"),
    "19": ("20", "7"),
    "20": ("100", "7"),
    "100": ("3",),
    "3": (),
    "7": (),
}
NIST_OPEN = {
    "": _SIR_OPEN,
    **{
        state: (*(other for other in _SIR_OPEN if other != state), "3" if state == "100" else "7")
        for state in _SIR_OPEN
    },
    "3": (),
    "7": (),
}
SECURITY_INCIDENT_FLOWS = {"nist_stateful": NIST_STATEFUL, "nist_open": NIST_OPEN}
SEVERITY = {"1": "1 - High", "2": "2 - Medium", "3": "3 - Low"}
# The base system's incident categories and channels: an instance adds its own, but "security" is not
# among the base ones, so a mapping must not assume it
INCIDENT_CATEGORIES = {
    "inquiry": "Inquiry / Help",
    "software": "Software",
    "hardware": "Hardware",
    "network": "Network",
    "database": "Database",
}
CONTACT_TYPES = {
    "email": "Email",
    "phone": "Phone",
    "self-service": "Self-service",
    "virtual_agent": "Virtual Agent",
    "walk-in": "Walk-in",
}
# Incident resolution codes, value = label: those of older releases next to those of recent ones, as an
# instance upgraded across releases keeps both.
INCIDENT_CLOSE_CODES = {
    code: code
    for code in (
        "Solved (Work Around)",
        "Solved (Permanently)",
        "Solved Remotely (Work Around)",
        "Solved Remotely (Permanently)",
        "Not Solved (Not Reproducible)",
        "Not Solved (Too Costly)",
        "Closed/Resolved by Caller",
        "Duplicate",
        "Known error",
        "No resolution provided",
        "Resolved by caller",
        "Resolved by change",
        "Resolved by problem",
        "Resolved by request",
        "Solution provided",
        "Workaround provided",
        "User error",
    )
}
# Security incidents' close codes, value = label as the module's documentation lists them ("Close security
# incidents"); the stored values are not documented apart from the labels.
SIR_CLOSE_CODES = {
    code: code
    for code in (
        "Investigation completed",
        "Threat mitigated",
        "Patched vulnerability",
        "Invalid vulnerability",
        "Not resolved",
        "False positive",
    )
}


def _task_fields(state_choices: dict[str, str], default_state: str) -> list[Field]:
    """The fields incident and sn_si_incident both inherit from ``task``."""
    return [
        *SYSTEM_FIELDS,
        Field("number", "Number", writable=False),
        Field("sys_class_name", "Task type", writable=False),
        Field("short_description", "Short description", max_length=160),
        Field("description", "Description", max_length=4000),
        Field("state", "State", CHOICE, choices=state_choices, default=default_state),
        Field("impact", "Impact", CHOICE, choices=IMPACT, default="3"),
        Field("urgency", "Urgency", CHOICE, choices=URGENCY, default="3"),
        Field("priority", "Priority", CHOICE, choices=PRIORITY, writable=False, default="5"),
        Field("active", "Active", BOOLEAN, writable=False, default="true"),
        Field("close_notes", "Close notes", max_length=4000),
        Field("correlation_id", "Correlation ID", max_length=100),
        Field("correlation_display", "Correlation display", max_length=100),
        Field("assignment_group", "Assignment group", REFERENCE, reference="sys_user_group"),
        Field("assigned_to", "Assigned to", REFERENCE, reference="sys_user"),
        Field("opened_by", "Opened by", REFERENCE, reference="sys_user"),
        Field("opened_at", "Opened", DATETIME),
        Field("closed_by", "Closed by", REFERENCE, reference="sys_user", writable=False),
        Field("closed_at", "Closed", DATETIME, writable=False),
        Field("contact_type", "Channel", CHOICE, max_length=40, choices=CONTACT_TYPES),
        Field("comments", "Additional comments", JOURNAL),
        Field("work_notes", "Work notes", JOURNAL),
        Field("watch_list", "Watch list", GLIDE_LIST, max_length=4000, reference="sys_user"),
    ]


INCIDENT = _table(
    "incident",
    "Incident",
    [
        *_task_fields(INCIDENT_STATES, "1"),
        Field(
            "incident_state", "Incident state", CHOICE, choices=INCIDENT_STATES, writable=False, default="1"
        ),
        Field("caller_id", "Caller", REFERENCE, reference="sys_user"),
        Field("category", "Category", CHOICE, max_length=40, choices=INCIDENT_CATEGORIES, default="inquiry"),
        Field("subcategory", "Subcategory", max_length=40),
        Field("close_code", "Resolution code", CHOICE, max_length=40, choices=INCIDENT_CLOSE_CODES),
        Field("close_notes", "Resolution notes", max_length=4000),
        Field("hold_reason", "On hold reason", CHOICE, choices=HOLD_REASONS),
        Field("severity", "Severity", CHOICE, choices=SEVERITY, default="3"),
        Field("resolved_by", "Resolved by", REFERENCE, reference="sys_user", writable=False),
        Field("resolved_at", "Resolved", DATETIME, writable=False),
    ],
    number_prefix="INC",
    mandatory_on_state={
        "3": ("hold_reason",),
        "6": ("close_code", "close_notes"),
        "7": ("close_code", "close_notes"),
    },
    inactive_states=frozenset({"6", "7", "8"}),
)

SECURITY_INCIDENT = _table(
    "sn_si_incident",
    "Security Incident",
    [
        *_task_fields(SIR_STATES, "10"),
        Field("substate", "Substate", max_length=40),
        Field("category", "Category", max_length=40),
        Field("subcategory", "Subcategory", max_length=40),
        Field("severity", "Severity", CHOICE, choices=SEVERITY, default="3"),
        Field("risk_score", "Risk score", INTEGER),
        Field("affected_user", "Affected user", REFERENCE, reference="sys_user"),
        Field("close_code", "Close code", CHOICE, max_length=40, choices=SIR_CLOSE_CODES),
    ],
    number_prefix="SIR",
    mandatory_on_state={"3": ("close_code", "close_notes")},
    inactive_states=frozenset({"3", "7"}),
)

# the tables whose saves follow a state flow, and the state each closes in
STATE_FLOWS = {"sn_si_incident": SECURITY_INCIDENT_FLOWS}
CLOSED_STATE = {"sn_si_incident": "3"}

JOURNAL_TABLE = _table(
    "sys_journal_field",
    "Journal Entry",
    [
        Field("sys_id", "Sys ID", writable=False),
        Field("sys_created_on", "Created", DATETIME, writable=False),
        Field("sys_created_by", "Created by", writable=False),
        Field("element_id", "Element ID"),
        Field("name", "Name"),
        Field("element", "Element"),
        Field("value", "Value"),
    ],
    writable=False,
)

ATTACHMENT_TABLE = _table(
    "sys_attachment",
    "Attachment",
    [
        *SYSTEM_FIELDS,
        Field("file_name", "File name", max_length=100),
        Field("table_name", "Table name"),
        Field("table_sys_id", "Table sys ID"),
        Field("content_type", "Content type"),
        Field("size_bytes", "Size bytes", INTEGER),
        Field("size_compressed", "Size compressed", INTEGER),
        Field("compressed", "Compressed", BOOLEAN),
        Field("hash", "Hash"),
        Field("state", "State"),
        Field("download_link", "Download link"),
    ],
    writable=False,
)

# The choice lists of every choice field above, one row per value, as sys_choice holds them; read-only,
# generated from this module (see :func:`choice_rows`).
CHOICE_TABLE = _table(
    "sys_choice",
    "Choices",
    [
        *SYSTEM_FIELDS,
        Field("name", "Table"),
        Field("element", "Element"),
        Field("value", "Value"),
        Field("label", "Label"),
        Field("inactive", "Inactive", BOOLEAN, default="false"),
        Field("language", "Language", default="en"),
        Field("sequence", "Sequence", INTEGER),
    ],
    writable=False,
)

USER_TABLE = _table(
    "sys_user",
    "User",
    [*SYSTEM_FIELDS, Field("user_name", "User ID"), Field("name", "Name"), Field("email", "Email")],
    writable=False,
)
GROUP_TABLE = _table("sys_user_group", "Group", [*SYSTEM_FIELDS, Field("name", "Name")], writable=False)

TABLES = {
    t.name: t for t in (INCIDENT, SECURITY_INCIDENT, JOURNAL_TABLE, CHOICE_TABLE, USER_TABLE, GROUP_TABLE)
}
JOURNAL_LABELS = {"comments": "Additional comments", "work_notes": "Work notes"}
DISPLAY_FIELD = {"sys_user": "name", "sys_user_group": "name"}


def fixed_sys_id(key: str) -> str:
    """A stable 32-hex sys_id for the seeded users and groups."""
    return hashlib.md5(key.encode()).hexdigest()


def choice_rows() -> list[dict[str, str]]:
    """sys_choice's rows: one per value of each choice field of each table, in the field's order."""
    rows = []
    for table in TABLES.values():
        for spec in table.fields.values():
            if spec.kind != CHOICE:
                continue
            for sequence, (value, label) in enumerate(spec.choices.items()):
                rows.append(
                    {
                        "sys_id": fixed_sys_id(f"sys_choice:{table.name}.{spec.name}.{value}"),
                        "name": table.name,
                        "element": spec.name,
                        "value": value,
                        "label": label,
                        "inactive": "false",
                        "language": "en",
                        "sequence": str(sequence),
                    }
                )
    return rows


USERS = [
    {
        "user_name": INTEGRATION.servicenow_user,
        "name": "SIR Sync Integration",
        "email": "sirsync@example.com",
    },
    {
        "user_name": RESPONDER.servicenow_user,
        "name": RESPONDER.jira_display_name,
        "email": RESPONDER.jira_user,
    },
    *({"user_name": p.servicenow_user, "name": p.display_name, "email": p.email} for p in DIRECTORY),
]
GROUPS = [{"name": "Security Incident Response"}, {"name": "Service Desk"}]
