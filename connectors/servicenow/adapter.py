"""ServiceNow through pysnow and the Table API: incidents or security incidents, journals, change search."""

from __future__ import annotations

import itertools
import logging
import mimetypes
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import pysnow
import requests
from pysnow.exceptions import PysnowException

from connectors.cache import Bounded
from connectors.errors import (
    CaseError,
    FatalError,
    NotFoundError,
    TicketMoved,
    connection_failed,
    throttled_or_failed,
)
from connectors.mapping.compiled import StatusPaths
from connectors.mapping.source import Location, dotted
from connectors.model import Attachment, Comment, Ticket, Watcher
from connectors.preflight import WARNING, Problem, one_line, probe, tagged, unknown_values
from connectors.retry import RetryPolicy
from connectors.settings import ServiceNowSettings
from connectors.target import TargetAdapter, TicketChange
from connectors.text import clean, truncate
from connectors.transfer import Sink, stream_into

if TYPE_CHECKING:
    from connectors.mapping import Mapping as TargetMapping

T = TypeVar("T")
log = logging.getLogger(__name__)

CORRELATION_DISPLAY = "AWS Security Incident Response"  # with correlation_id = caseId: the cross-reference
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
JOURNAL_TABLE = "sys_journal_field"
PAGE = 500
FIND_CHUNK = 50  # case ids per cross-reference query
CHOICE_PAGE = 10000
# field length limits of the base system's incident and security incident tables
LIMITS = {"short_description": 160, "description": 4000, "close_notes": 4000, "close_code": 40}
JOURNAL_LIMIT = 32000  # journal entries hold far more; keep mirrored ones readable
_JOURNALS = {False: "comments", True: "work_notes"}  # internal -> journal field
_CODE_TAG = re.compile(r"\[/?code\]", re.IGNORECASE)
URL_SETTING = "SIRSYNC_SERVICENOW__URL"
CREDENTIALS = "SIRSYNC_SERVICENOW__USER and SIRSYNC_SERVICENOW__PASSWORD"
JOURNAL_FIX = (
    f"give SIRSYNC_SERVICENOW__USER a role that the read ACLs on {JOURNAL_TABLE} allow (or add a read ACL "
    f"on {JOURNAL_TABLE} for its role)"
)
WATCH_LIST = "watch_list"  # a list of sys_user sys_ids, and addresses of people without an account
USER_TABLE = "sys_user"
_SYS_ID = re.compile(r"^[0-9a-f]{32}$")
_QUERY_BREAKERS = frozenset("^,=")
RECENT = 20  # records preflight looks at for a journal that sys_journal_field hides


_JSON = {"Accept": "application/json"}


def parse_servicenow_time(value: str) -> datetime:
    return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=UTC)


class ServiceNowAdapter(TargetAdapter):
    system = "servicenow"
    display_name = "ServiceNow"
    comment_limit = JOURNAL_LIMIT
    # the rows of ``sirsync doctor``, in the order preflight checks them; after a failed gate, the
    # rows that follow are not checked
    CHECKS = ("site", "credentials", "table", "choices", "status paths", "journal", "case from ticket")
    GATES = frozenset({"site", "credentials", "table"})

    def __init__(
        self,
        client: pysnow.Client,
        table: str,
        user: str,
        *,
        timeout: float = 10.0,
        search_overlap_seconds: int = 60,
        retry: RetryPolicy | None = None,
        paths: StatusPaths | None = None,
    ) -> None:
        self._client = client
        self.table = table
        self.user = user
        self._timeout = timeout
        self.search_overlap_seconds = search_overlap_seconds
        self._retry = retry or RetryPolicy()
        # the state flow the mapping declares (status.paths); none declared: any state is set directly
        self._paths = paths or StatusPaths({})
        # sys_id -> the record's journal blob is not empty, for the records read lately
        self._has_journal: Bounded[str, bool] = Bounded()

    @classmethod
    def from_settings(
        cls,
        settings: ServiceNowSettings,
        retry: RetryPolicy | None = None,
        paths: StatusPaths | None = None,
    ) -> ServiceNowAdapter:
        if not (settings.url and settings.user and settings.password):
            raise FatalError(
                "ServiceNow needs SIRSYNC_SERVICENOW__URL, SIRSYNC_SERVICENOW__USER and "
                "SIRSYNC_SERVICENOW__PASSWORD"
            )
        url = urlsplit(settings.url)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise FatalError(
                "SIRSYNC_SERVICENOW__URL must look like https://instance.service-now.com, "
                f"not {settings.url!r}"
            )
        client = pysnow.Client(
            host=url.netloc,
            user=settings.user,
            password=settings.password.get_secret_value(),
            use_ssl=url.scheme == "https",
        )
        return cls(
            client,
            settings.table,
            settings.user,
            timeout=settings.timeout_seconds,
            search_overlap_seconds=settings.search_overlap_seconds,
            retry=retry,
            paths=paths,
        )

    # --- plumbing ------------------------------------------------------------------------------------

    def _resource(self, table: str) -> Any:
        # a fresh resource per call: pysnow keeps query parameters on a resource between calls
        return self._client.resource(api_path=f"/table/{table}", timeout=self._timeout)

    def _call(self, what: str, function: Callable[[], T], *, idempotent: bool = True) -> T:
        def attempt() -> T:
            try:
                return function()
            except requests.HTTPError as exc:
                raise _translate(exc, what) from exc
            except (
                requests.JSONDecodeError
            ) as exc:  # an answer, but not ServiceNow's: repeating will not help
                raise CaseError(f"ServiceNow {what}: the answer is not JSON") from exc
            except requests.RequestException as exc:
                raise connection_failed(f"ServiceNow {what}", exc) from exc
            except PysnowException as exc:
                raise CaseError(f"ServiceNow {what}: {exc}") from exc

        return self._retry.call(attempt, idempotent=idempotent)

    def _query(
        self, table: str, query: str, fields: Sequence[str], *, display_value: bool | str = False
    ) -> Iterator[dict[str, Any]]:
        """Every row the query matches, page by page until the rows ``X-Total-Count`` counts are
        passed, or, where it is missing, until an empty page.

        ACLs filter rows after ``sysparm_limit`` is applied, so a short page is not the last one; the
        total is counted before them, as the limit is.
        """
        offset = 0
        while True:

            def page(offset: int = offset) -> tuple[list[dict[str, Any]], int | None]:
                response = self._resource(table).get(
                    query=query, fields=list(fields), limit=PAGE, offset=offset, display_value=display_value
                )
                return list(response.all()), _total_count(response.headers)

            records, total = self._call(f"GET {table}", page)
            yield from records
            offset += PAGE
            if (not records) if total is None else offset >= total:
                return

    def _write(
        self, method: str, sys_id: str, payload: Mapping[str, Any], *, idempotent: bool = True
    ) -> dict[str, Any]:
        def send() -> dict[str, Any]:
            response = self._resource(self.table).request(
                method, path_append=f"/{sys_id}", json=dict(payload)
            )
            return dict(response.one())

        return self._call(f"{method} {self.table}/{sys_id}", send, idempotent=idempotent)

    # --- before the first write ----------------------------------------------------------------------

    def preflight(self, mapping: TargetMapping) -> list[Problem]:
        """The URL answers as ServiceNow's Table API, takes the credentials, has the table, every state and
        choice value the mapping names is among the table's choices in sys_choice, and the user can read
        journal entries. Only reads."""
        site = str(self._client.base_url)
        answer = self._probe(self.table, {"sysparm_limit": "1", "sysparm_fields": "sys_id"})
        if isinstance(answer, Problem):
            return tagged([answer], "site")
        status, body = answer
        if not _from_servicenow(body):
            path = f"/api/now/table/{self.table}"
            message = f"{URL_SETTING} ({site}) does not answer as ServiceNow (HTTP {status} at {path})"
            return [Problem("ServiceNow", message, URL_SETTING, site, check="site")]
        detail = one_line(_error_text(body), 120)
        problem: Problem | None = None
        if status == 401:
            message = "the credentials are not accepted (HTTP 401)"
            problem = Problem("ServiceNow", message, CREDENTIALS, site, check="credentials")
        elif status == 400:
            message = f"table {self.table} does not exist on this instance ({detail})"
            if self.table == "sn_si_incident":
                message += "; without the Security Incident Response application, use incident"
            problem = Problem("ServiceNow", message, "SIRSYNC_SERVICENOW__TABLE", site)
        elif status == 403:
            message = f"the user may not read table {self.table} (HTTP 403: {detail})"
            problem = Problem(
                "ServiceNow", message, f"the roles of SIRSYNC_SERVICENOW__USER on {self.table}", site
            )
        elif status != 200:
            message = f"reading table {self.table} answered HTTP {status}: {detail}"
            problem = Problem("ServiceNow", message, URL_SETTING, site)
        if problem:
            return tagged([problem], "table")
        return [
            *tagged(self._check_choices(mapping, site), "choices"),
            *tagged(_unreachable(mapping, site), "status paths"),
            *tagged(self._check_journal(site), "journal"),
            *tagged(self._check_intake(mapping, site), "case from ticket"),
        ]

    def _check_intake(self, mapping: TargetMapping, site: str) -> list[Problem]:
        """Where records open cases: every column case_from_ticket names, in its filter and its fields,
        is one of the table's. An instance drops a condition on a column it does not have and matches
        every record instead, which would open a case for each: a misspelt filter must stop the run."""
        spec = mapping.case_from_ticket
        if not spec.enabled:
            return []
        answer = self._probe(self.table, {"sysparm_limit": "1"})  # one record, with every column
        if isinstance(answer, Problem):
            return [answer]
        status, body = answer
        rows = body.get("result") if status == 200 and isinstance(body, dict) else None
        if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict):
            message = (
                f"{self.table} shows no record to tell its columns by: the columns case_from_ticket names "
                "are not checked"
            )
            return [Problem("ServiceNow", message, "nothing; checked again at the next start", site, WARNING)]
        columns = sorted(rows[0], key=len, reverse=True)
        filter_at: Location = ("case_from_ticket", "filter")
        named = [(term, filter_at, False) for term in _terms(spec.filter)]
        named += [
            (column, ("case_from_ticket", "fields", name), True) for name, column in spec.fields.items()
        ]
        found = []
        for term, location, whole in named:
            known = term in columns if whole else any(_names_column(term, column) for column in columns)
            if not known:
                message = f"{self.table} has no column that {term!r} names"
                found.append(
                    Problem("ServiceNow", message, f"{mapping.at(location)} {dotted(location)}", site)
                )
        return found

    def _check_choices(self, mapping: TargetMapping, site: str) -> list[Problem]:
        """Every state the mapping names (status tables, paths, transition fields, the customer status),
        and every fixed value it writes into a field that has a choice list, against sys_choice."""
        elements = ("state", *_written_fields(mapping))
        query = f"name={self.table}^elementIN{','.join(elements)}^inactive=false"
        rows: list[Any] = []
        for offset in itertools.count(0, CHOICE_PAGE):  # until an empty page: ACLs filter after the limit
            params = {
                "sysparm_query": query,
                "sysparm_fields": "element,value,label",
                "sysparm_limit": str(CHOICE_PAGE),
                "sysparm_offset": str(offset),
            }
            answer = self._probe("sys_choice", params)
            if isinstance(answer, Problem):
                return [answer]
            status, body = answer
            page = body.get("result") if status == 200 and isinstance(body, dict) else None
            if not isinstance(page, list):
                message = (
                    f"sys_choice cannot be read (HTTP {status}): the mapped choice values are not checked"
                )
                fix = f"give SIRSYNC_SERVICENOW__USER read access to sys_choice (rows of {self.table})"
                return [Problem("ServiceNow", message, fix, site, WARNING)]
            if not page:
                break
            rows += page
        choices: dict[str, dict[str, str]] = {}
        for row in rows:
            if isinstance(row, dict) and row.get("element") and row.get("value") is not None:
                choices.setdefault(str(row["element"]), {})[str(row["value"])] = str(row.get("label") or "")
        found: list[Problem] = []
        wanted = [("state", [*mapping.target_statuses(), *mapping.status_paths.statuses()])]
        wanted += [(field, mapping.target_values(field)) for field in elements[1:]]
        for element, named in wanted:
            if element in choices:  # no choice list readable: nothing to check against
                among = f"among the {element} choices of {self.table}"
                found += unknown_values("ServiceNow", named, choices[element], element, among, site)
        return found

    def _check_journal(self, site: str) -> list[Problem]:
        """The user can read journal entries (sys_journal_field), or no comment can sync either way. An
        ACL may refuse the table (403) or answer it empty: empty while a recent record of the table shows
        a journal is an ACL; empty with no journal anywhere to see cannot be told, and is left to the
        cycle, which checks each record's journal."""
        entries = {
            "sysparm_query": f"name={self.table}^elementINcomments,work_notes",
            "sysparm_fields": "sys_id",
            "sysparm_limit": "1",
        }
        answer = self._probe(JOURNAL_TABLE, entries)
        if isinstance(answer, Problem):
            return [answer]
        status, body = answer
        if status in (401, 403):
            detail = one_line(_error_text(body), 120)
            message = (
                f"the user {self.user} may not read {JOURNAL_TABLE} (HTTP {status}: {detail}): "
                "comments cannot sync either way"
            )
            return [Problem("ServiceNow", message, JOURNAL_FIX, site)]
        rows = body.get("result") if status == 200 and isinstance(body, dict) else None
        if not isinstance(rows, list):
            message = (
                f"{JOURNAL_TABLE} cannot be read (HTTP {status}): whether comments can sync is not checked"
            )
            return [Problem("ServiceNow", message, JOURNAL_FIX, site, WARNING)]
        if rows:
            return []
        recent = {
            "sysparm_query": "ORDERBYDESCsys_updated_on",
            "sysparm_fields": "number,comments,work_notes",
            "sysparm_display_value": "all",
            "sysparm_limit": str(RECENT),
        }
        answer = self._probe(self.table, recent)
        if isinstance(answer, Problem):
            return [answer]
        status, body = answer
        records = body.get("result") if status == 200 and isinstance(body, dict) else None
        for record in records if isinstance(records, list) else []:
            if isinstance(record, dict) and (
                _display(record.get("comments")) or _display(record.get("work_notes"))
            ):
                number = _value(record.get("number"))
                message = (
                    f"{JOURNAL_TABLE} shows no entries to {self.user} while {number} has journal entries: "
                    "an ACL hides them, and comments cannot sync either way"
                )
                return [Problem("ServiceNow", message, JOURNAL_FIX, site)]
        return []

    def _probe(self, table: str, params: Mapping[str, str]) -> tuple[int, Any] | Problem:
        """A read for preflight: the answer's HTTP status and JSON body (None if not JSON), to be judged.
        Connection failures, 429 and 5xx are retried; if they last, the problem they make."""
        site = str(self._client.base_url)
        return probe(
            "ServiceNow",
            f"GET {table}",
            lambda: self._client.session.get(
                f"{site}/api/now/table/{table}",
                params=dict(params),
                timeout=self._timeout,
                headers={"Accept": "application/json"},
            ),
            self._retry,
            setting=URL_SETTING,
            url=site,
        )

    # --- tickets -------------------------------------------------------------------------------------

    _READ_FIELDS = (
        "sys_id",
        "number",
        "state",
        "sys_updated_on",
        "sys_mod_count",
        "correlation_id",
        "short_description",
        "description",
        "impact",
        "urgency",
        "close_code",
        "close_notes",
        "hold_reason",
        "comments",
        "work_notes",
        WATCH_LIST,
    )

    def _ticket(self, raw: Mapping[str, Any]) -> Ticket:
        values = {name: _value(raw.get(name)) for name in raw}
        sys_id = values["sys_id"]
        self._has_journal[sys_id] = bool(_display(raw.get("comments")) or _display(raw.get("work_notes")))
        return Ticket(
            id=sys_id,
            key=values.get("number", sys_id),
            status=values.get("state", ""),
            updated=values.get("sys_updated_on", ""),
            fields={k: v for k, v in values.items() if k not in ("comments", "work_notes", WATCH_LIST)},
            case_id=values.get("correlation_id") or None,
            version=_version(values),
            url=self._record_url(sys_id),
            watcher_refs=_entries(values[WATCH_LIST]) if WATCH_LIST in raw else None,
        )

    def _record_url(self, sys_id: str) -> str:
        return f"{self._client.base_url}/nav_to.do?uri={self.table}.do?sys_id={sys_id}"

    def _read(self, query: str) -> list[Ticket]:
        # display_value=all: raw values for the fields, display text for the journal blobs
        return [
            self._ticket(raw)
            for raw in self._query(self.table, query, self._READ_FIELDS, display_value="all")
        ]

    def find_ticket(self, case_id: str) -> Ticket | None:
        return self.find_tickets([case_id]).get(case_id)

    def find_tickets(self, case_ids: Collection[str]) -> dict[str, Ticket]:
        """One query per 50 cases; each case keeps its earliest record."""
        wanted = list(dict.fromkeys(case_ids))
        found: dict[str, Ticket] = {}
        for start in range(0, len(wanted), FIND_CHUNK):
            chunk = wanted[start : start + FIND_CHUNK]
            query = (
                f"correlation_idIN{','.join(chunk)}^correlation_display={CORRELATION_DISPLAY}"
                "^ORDERBYsys_created_on"
            )
            for ticket in self._read(query):
                if ticket.case_id in chunk:
                    found.setdefault(ticket.case_id, ticket)
        return found

    def create_ticket(
        self, case_id: str, case_arn: str, fields: Mapping[str, str], labels: set[str]
    ) -> Ticket:
        payload = {name: self.stored_form(name, value) for name, value in fields.items()}
        payload.update(correlation_id=case_id, correlation_display=CORRELATION_DISPLAY)

        def create() -> dict[str, Any]:
            return dict(self._resource(self.table).create(payload=payload).one())

        created = self._call(f"POST {self.table}", create, idempotent=False)
        sys_id = _value(created["sys_id"])
        # as the create answered, not read back: the engine reads it after its other writes
        return Ticket(
            id=sys_id,
            key=_value(created.get("number")) or sys_id,
            status="",
            updated="",
            case_id=_value(created.get("correlation_id")) or case_id,
            url=self._record_url(sys_id),
            partial=True,
        )

    def untracked_tickets(self, query: str, fields: Collection[str]) -> Sequence[Ticket]:
        """Records matching ``query`` with no correlation_id yet: a query of its own, paged as every one."""
        read = tuple(dict.fromkeys([*self._READ_FIELDS, *fields]))
        rows = self._query(
            self.table, f"{query}^correlation_idISEMPTY^ORDERBYsys_created_on", read, display_value="all"
        )
        return [self._ticket(raw) for raw in rows]

    def write_cross_reference(self, ticket: Ticket, case_id: str, case_arn: str, labels: set[str]) -> None:
        self._write(
            "PATCH", ticket.id, {"correlation_id": case_id, "correlation_display": CORRELATION_DISPLAY}
        )

    def get_ticket(self, key: str) -> Ticket:
        """The ticket by its number (INC0010001), as the link records it."""
        found = self._read(f"number={key}")
        if not found:
            raise NotFoundError(f"ServiceNow {self.table} {key} is gone (deleted, or no longer readable)")
        return found[0]

    def check_linked(self, ticket: Ticket, case_id: str) -> None:
        """A record whose ``correlation_id`` a person changed or cleared no longer belongs to the case."""
        if ticket.case_id != case_id:
            now = f"names case {ticket.case_id}" if ticket.case_id else "is empty"
            reason = f"taken out of sirsync's sync (its correlation_id {now})"
            raise TicketMoved(
                f"ServiceNow {self.table} {ticket.key} was {reason}", new_key=ticket.key, reason=reason
            )

    def stored_form(self, name: str, value: str) -> str:
        text = clean(value)
        limit = LIMITS.get(name)
        text = truncate(text, limit) if limit else text
        return " ".join(text.split()) if name == "short_description" else text

    def mirror_text(self, head: str, body: str) -> str:
        """Journals render what is between [code] tags as HTML: text from SIR may not open one."""
        text = truncate(f"{head}\n\n{clean(body)}", JOURNAL_LIMIT)
        return _CODE_TAG.sub(lambda match: match.group(0).replace("[", "[\u200b"), text)

    def update_ticket(
        self, ticket: Ticket, fields: Mapping[str, str], add: set[str], remove: set[str]
    ) -> None:
        if fields:
            self._write(
                "PATCH", ticket.id, {name: self.stored_form(name, value) for name, value in fields.items()}
            )

    def move_to_status(
        self,
        ticket: Ticket,
        status: str,
        fields: Mapping[str, str],
        before_step: Callable[[str], None] = lambda status: None,
    ) -> int:
        """Set ``state``; fields the new state requires go in the same write.

        Where the mapping declares the table's state flow (``status.paths``), walk it one save per
        state, from the state the record is in now (read again: a walk a crash cut off goes on from
        where it stopped, and no state is set twice), with the fields only on the last step. A state
        the declared flow leads no way to is refused before any write."""
        payload = {name: self.stored_form(name, value) for name, value in fields.items()}
        if not self._paths.edges:
            before_step(status)
            self._write("PATCH", ticket.id, {**payload, "state": status})
            return 1
        current = self._state_now(ticket)
        steps = self._paths.walk(current, status)
        if steps is None:
            raise CaseError(
                f"ServiceNow {ticket.key}: the state flow declared in status.paths ({self._paths.at}) leads "
                f"no way from state {current!r} to {status!r}; the record stays in {current!r} (declare the "
                "steps the instance allows, or move it by hand)"
            )
        for step in steps:
            before_step(step)
            last = step == status
            try:
                written = self._write("PATCH", ticket.id, {**(payload if last else {}), "state": step})
            except CaseError as exc:
                if type(exc) is not CaseError:  # a deleted record stays a deleted record
                    raise
                raise CaseError(
                    f"ServiceNow {ticket.key}: the move from state {current!r} to {step!r} was refused, so "
                    f"the walk to {status!r} stopped in {current!r} -- {exc}"
                ) from exc
            current = _value(written.get("state")) or step
            if current != step:
                raise CaseError(
                    f"ServiceNow {ticket.key}: state {step!r} was written but the record stayed in "
                    f"{current!r} (a business rule on the instance keeps it there)"
                )
        return len(steps)

    def _state_now(self, ticket: Ticket) -> str:
        def read() -> list[dict[str, Any]]:
            response = self._resource(self.table).get(
                query=f"sys_id={ticket.id}", fields=["sys_id", "state"], limit=1
            )
            return list(response.all())

        found = self._call(f"GET {self.table}/{ticket.id}", read)
        if not found:
            raise NotFoundError(
                f"ServiceNow {self.table} {ticket.key} is gone (deleted, or no longer readable)"
            )
        return _value(found[0].get("state"))

    # --- comments ------------------------------------------------------------------------------------

    def comments(self, ticket: Ticket) -> Sequence[Comment]:
        query = f"element_id={ticket.id}^elementINcomments,work_notes^ORDERBYsys_created_on"
        fields = ("sys_id", "element", "value", "sys_created_on", "sys_created_by")
        entries = self._journal_read(query, fields)
        if not entries and self._has_journal.get(ticket.id):
            self._journal_hidden(ticket)
        return [
            Comment(
                id=str(entry["sys_id"]),
                body=str(entry.get("value", "")),
                author=str(entry.get("sys_created_by", "")),
                created=str(entry.get("sys_created_on", "")),
                own=entry.get("sys_created_by") == self.user,
                internal=entry.get("element") == "work_notes",
            )
            for entry in entries
        ]

    def _journal_read(self, query: str, fields: Sequence[str]) -> list[dict[str, Any]]:
        """Rows of sys_journal_field; a user who may not read the table at all cannot sync any case."""
        try:
            return list(self._query(JOURNAL_TABLE, query, fields))
        except CaseError as exc:
            cause = exc.__cause__
            response = cause.response if isinstance(cause, requests.HTTPError) else None
            if response is not None and response.status_code == 403:
                raise FatalError(
                    f"{exc} -- grant the integration user {self.user} read access to {JOURNAL_TABLE}"
                ) from exc
            raise

    def _journal_hidden(self, ticket: Ticket) -> None:
        """The record shows a journal but sys_journal_field none of its entries: an ACL hides them.

        Hidden for this record only (other entries of the table are readable) is this case's error;
        hidden everywhere stops the target, as no case's comments can be trusted. With no other entry
        of the table readable, the hide cannot be told from a hide everywhere and stops the target.
        """
        query = f"name={self.table}^elementINcomments,work_notes"
        if next(self._query(JOURNAL_TABLE, query, ("sys_id",)), None) is not None:
            raise CaseError(
                f"ServiceNow {ticket.key} has journal entries but {JOURNAL_TABLE} shows none of them to "
                f"{self.user}: an ACL hides this record's journal; grant read on it to sync its comments"
            )
        raise FatalError(
            f"ServiceNow {ticket.key} has journal entries but {JOURNAL_TABLE} shows none to {self.user}: "
            f"grant the integration user read access to {JOURNAL_TABLE} (an ACL hides it)"
        )

    def add_comment(self, ticket: Ticket, body: str, *, internal: bool = False) -> str:
        """Journals are write-by-append: the new entry's id is read back from sys_journal_field.

        The entry is found by record, element, author and a window around the write's time, then by
        its text with whitespace ignored (the platform may change whitespace), else by its first line,
        which for mirrored text carries the marker naming its source. Newest first.
        """
        field = _JOURNALS[internal]
        written = self._write("PATCH", ticket.id, {field: body}, idempotent=False)  # a journal appends
        self._has_journal[ticket.id] = True
        query = f"element_id={ticket.id}^element={field}^sys_created_by={self.user}"
        stamp = _value(written.get("sys_updated_on"))
        if stamp:
            since = parse_servicenow_time(stamp) - timedelta(seconds=self.search_overlap_seconds)
            query += f"^sys_created_on>={since:{TIME_FORMAT}}"
        query += "^ORDERBYDESCsys_created_on"
        entries = self._journal_read(query, ("sys_id", "value", "sys_created_on"))
        text, head = _squeezed(body), _squeezed(body.split("\n", 1)[0])
        values = [(str(entry["sys_id"]), str(entry.get("value", ""))) for entry in entries]
        for sys_id, value in values:
            if _squeezed(value) == text:
                return sys_id
        for sys_id, value in values:  # the first line: the marker naming the mirrored comment
            if head and _squeezed(value.split("\n", 1)[0]) == head:
                return sys_id
        raise CaseError(f"ServiceNow {ticket.key}: the new {field} entry did not appear in {JOURNAL_TABLE}")

    def edit_comment(self, ticket: Ticket, comment_id: str, body: str, *, internal: bool = False) -> None:
        """Journal entries cannot be edited: the edited text is appended as a new entry."""
        self.add_comment(ticket, f"[edited] {body}", internal=internal)

    # --- attachments ---------------------------------------------------------------------------------

    def _attachment_url(self, path: str = "") -> str:
        return f"{self._client.base_url}/api/now/attachment{path}"

    def attachments(self, ticket: Ticket) -> Sequence[Attachment]:
        """The record's files, from the attachment API (one list call: a record's read does not carry
        them)."""
        if ticket.attachments is not None:
            return ticket.attachments
        found: list[Attachment] = []
        offset = 0
        while True:
            params = {
                "sysparm_query": f"table_sys_id={ticket.id}^ORDERBYsys_created_on",
                "sysparm_limit": str(PAGE),
                "sysparm_offset": str(offset),
            }

            def page(params: dict[str, str] = params) -> tuple[list[dict[str, Any]], int | None]:
                response = self._client.session.get(
                    self._attachment_url(), params=params, timeout=self._timeout, headers=_JSON
                )
                response.raise_for_status()
                return list(response.json().get("result") or []), _total_count(response.headers)

            rows, total = self._call("GET attachment", page)
            found += [self._attachment(row) for row in rows if isinstance(row, dict) and row.get("sys_id")]
            offset += PAGE
            # ACLs filter after the limit: a short page is not the last, the count before them says
            if (not rows) if total is None else offset >= total:
                return found

    def _attachment(self, row: Mapping[str, Any]) -> Attachment:
        size = _value(row.get("size_bytes"))
        return Attachment(
            id=_value(row.get("sys_id")),
            name=_value(row.get("file_name")),
            size=int(size) if size.isdigit() else -1,
            author=_value(row.get("sys_created_by")),
            created=_value(row.get("sys_created_on")),
            own=_value(row.get("sys_created_by")) == self.user,
            sha256=_value(row.get("hash")).lower(),
        )

    def download_attachment(self, ticket: Ticket, attachment: Attachment, out: Sink) -> None:
        def fetch() -> None:
            out.restart()
            response = self._client.session.get(
                self._attachment_url(f"/{attachment.id}/file"), stream=True, timeout=self._timeout
            )
            if not response.ok:
                response.close()
                response.raise_for_status()
            stream_into(response, out)

        self._call(f"GET attachment/{attachment.id}/file", fetch)

    def add_attachment(self, ticket: Ticket, name: str, content: IO[bytes], size: int) -> Attachment:
        """The attachment API's upload: the raw file as the body, read as it is sent."""
        params = {"table_name": self.table, "table_sys_id": ticket.id, "file_name": name}
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"

        def upload() -> dict[str, Any]:
            content.seek(0)
            response = self._client.session.post(
                self._attachment_url("/file"),
                params=params,
                data=content,
                headers={**_JSON, "Content-Type": kind, "Content-Length": str(size)},
                timeout=self._timeout,
            )
            response.raise_for_status()
            return dict(response.json().get("result") or {})

        return self._attachment(self._call("POST attachment/file", upload, idempotent=False))

    # --- watchers -----------------------------------------------------------------------------------

    def watchers(self, ticket: Ticket) -> Sequence[Watcher]:
        """The watch list, read with the record: its users' addresses (one ``sys_user`` query), and the
        addresses it holds for people without an account."""
        if ticket.watcher_refs is None:
            if ticket.partial:
                return []
            raise CaseError(
                f"ServiceNow {self.table} {ticket.key}: the {WATCH_LIST} field cannot be read; give "
                f"SIRSYNC_SERVICENOW__USER read access to it, or set watchers.enabled: false in the mapping"
            )
        ids = [ref for ref in ticket.watcher_refs if _SYS_ID.match(ref)]
        users = self._users(f"sys_idIN{','.join(ids)}") if ids else {}
        found = []
        for ref in ticket.watcher_refs:
            user = users.get(ref)
            if user is not None:
                if user.get("user_name") != self.user:  # the integration itself is nobody's watcher
                    found.append(Watcher(user.get("email", ""), user.get("name", ""), ref))
            elif "@" in ref:
                found.append(Watcher(ref))
        return found

    def _users(self, query: str) -> dict[str, dict[str, str]]:
        """The ``sys_user`` rows an encoded query matches, by sys_id."""
        fields = ("sys_id", "email", "name", "user_name")
        rows = self._query(USER_TABLE, query, fields)
        return {_value(row.get("sys_id")): {name: _value(row.get(name)) for name in fields} for row in rows}

    def change_watchers(
        self, ticket: Ticket, add: Collection[Watcher], remove: Collection[Watcher]
    ) -> list[Watcher]:
        """One PATCH of the whole watch list: a person with an account by its sys_id, anyone else by
        address, as ServiceNow allows; so no one is missing here."""
        gone = {w.account for w in remove if w.account} | {w.key for w in remove if not w.account}
        kept = [ref for ref in ticket.watcher_refs or () if ref not in gone and ref.casefold() not in gone]
        added = []
        for watcher in add:
            email = watcher.email.strip()
            # (an address that would break the encoded query is kept as an address)
            users = self._users(f"email={email}") if email and not _QUERY_BREAKERS & set(email) else {}
            account = next(iter(sorted(users)), "")
            added.append(Watcher(watcher.email, watcher.name, account, watcher.job_title))
        refs = list(dict.fromkeys([*kept, *(w.account or w.email.strip() for w in added)]))
        self._write("PATCH", ticket.id, {WATCH_LIST: ",".join(refs)})
        return added

    # --- change search -------------------------------------------------------------------------------

    def changed_since(self, since: datetime | None) -> Sequence[TicketChange]:
        query = f"correlation_display={CORRELATION_DISPLAY}^correlation_idISNOTEMPTY"
        if since is not None:
            query += f"^sys_updated_on>={since.astimezone(UTC):{TIME_FORMAT}}"
        query += "^ORDERBYsys_updated_on"
        fields = ("sys_id", "number", "sys_updated_on", "sys_mod_count", "correlation_id")
        return [
            TicketChange(
                str(raw["sys_id"]),
                str(raw.get("number", "")),
                str(raw["sys_updated_on"]),
                raw.get("correlation_id"),
                _version(raw),
            )
            for raw in self._query(self.table, query, fields)
        ]

    @staticmethod
    def parse_time(value: str) -> datetime:
        return parse_servicenow_time(value)


def _unreachable(mapping: TargetMapping, site: str) -> list[Problem]:
    """Where the mapping declares the state flow (``status.paths``), every state it moves records to can be
    reached along it from the state a new case's record starts in (the one SIR's Submitted maps to), or
    every case headed there would fail at the first walk."""
    paths = mapping.status_paths
    start = mapping.status_outbound("Submitted")
    if not paths.edges or start is None:
        return []
    found = []
    for named in mapping.moved_to_statuses():
        if paths.walk(start, named.value) is None:
            message = (
                f"state {named.value!r} cannot be reached from {start!r}, where a new case's record "
                f"starts, along the state flow in status.paths ({paths.at})"
            )
            found.append(Problem("ServiceNow", message, f"{named.at} {named.key}", site))
    return found


def _written_fields(mapping: TargetMapping) -> list[str]:
    """Every ticket field the mapping writes besides state: mapped fields, create defaults, and the fields
    a status change fills. Those with a choice list in sys_choice are checked against it."""
    spec = mapping.spec
    names = [*spec.fields, *spec.ticket.defaults]
    for fields in spec.status.transition_fields.values():
        names += list(fields)
    return [name for name in dict.fromkeys(names) if name != "state"]


def _terms(query: str) -> list[str]:
    """The conditions of an encoded query (``^`` and ``^OR`` between them)."""
    terms = []
    for part in query.split("^"):
        term = part.removeprefix("OR")  # columns are lower case: an upper-case OR is the join
        if term.strip():
            terms.append(term.strip())
    return terms


def _names_column(term: str, column: str) -> bool:
    """Whether a condition is on ``column``: its name, then an operator (upper case or a sign) or a dot
    (a reference's field); column names are lower case."""
    rest = term.removeprefix(column)
    return rest != term and bool(rest) and not (rest[0].islower() or rest[0].isdigit() or rest[0] == "_")


def _total_count(headers: Mapping[str, str]) -> int | None:
    """The rows a Table API list matches, from ``X-Total-Count`` (None where it is missing)."""
    value = headers.get("X-Total-Count", "")
    return int(value) if value.isdigit() else None


def _entries(glide_list: str) -> tuple[str, ...]:
    """A list field's entries (sys_ids, or addresses), in order."""
    return tuple(entry.strip() for entry in glide_list.split(",") if entry.strip())


def _version(record: Mapping[str, Any]) -> str:
    """sys_updated_on has second precision; sys_mod_count tells two updates in one second apart."""
    return f"{_value(record.get('sys_updated_on'))}#{_value(record.get('sys_mod_count'))}"


def _value(field: Any) -> str:
    if isinstance(field, dict):
        return str(field.get("value") or "")
    return "" if field is None else str(field)


def _squeezed(text: str) -> str:
    """Text with every run of whitespace made one space, ends stripped: what survives normalising."""
    return " ".join(text.split())


def _display(field: Any) -> str:
    if isinstance(field, dict):
        return str(field.get("display_value") or "")
    return "" if field is None else str(field)


def _from_servicenow(body: Any) -> bool:
    """Whether a Table API answer has ServiceNow's shape: ``result``, or ``error`` with ``status``."""
    return isinstance(body, dict) and ("result" in body or isinstance(body.get("error"), dict))


def _error_text(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ""
    return f"{error.get('message') or ''} {error.get('detail') or ''}".strip()


def _translate(exc: requests.HTTPError, what: str) -> Exception:
    response = exc.response
    status = response.status_code if response is not None else 0
    detail = ""
    if response is not None:
        try:
            error = response.json().get("error") or {}
            detail = f"{error.get('message', '')} {error.get('detail') or ''}".strip()
        except ValueError:
            detail = response.text[:200]
    message = f"ServiceNow {what}: HTTP {status}: {detail}"
    if status == 429 or status >= 500:
        retry_after = response.headers.get("Retry-After") if response is not None else None
        return throttled_or_failed(message, status, retry_after)
    if status == 401:
        return FatalError(
            f"{message} -- ServiceNow did not accept the credentials: check SIRSYNC_SERVICENOW__USER and "
            "SIRSYNC_SERVICENOW__PASSWORD"
        )
    if status == 404:
        return NotFoundError(message)
    return CaseError(message)  # 400, and 403 from data policies and business rules
