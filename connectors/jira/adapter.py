"""Jira Cloud through the ``jira`` library (REST v2): tickets, comments, transitions, change search."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
from jira import JIRA, JIRAError

from connectors.cache import Bounded
from connectors.errors import (
    CaseError,
    FatalError,
    NotFoundError,
    RetriableError,
    SyncError,
    TicketMoved,
    connection_failed,
    throttled_or_failed,
)
from connectors.jira import markup
from connectors.jira.checks import SERVICE_PROJECT, MappingChecks
from connectors.jira.fields import (
    FieldCatalog,
    JiraField,
    UnknownField,
    canonical,
    from_jira,
    system_field,
    to_jira,
)
from connectors.jira.paths import Step, offered_steps
from connectors.jira.workflow import WorkflowKnowledge
from connectors.mapping.compiled import StatusPaths
from connectors.mapping.source import dotted
from connectors.model import Attachment, Comment, Ticket, Watcher
from connectors.preflight import (
    CONFIG,
    WARNING,
    Problem,
    one_line,
    probe,
    tagged,
    unavailable,
    unknown_values,
)
from connectors.retry import RetryPolicy
from connectors.settings import JiraSettings
from connectors.target import TargetAdapter, TicketChange
from connectors.text import clean, closest, truncate
from connectors.transfer import Sink, stream_into

if TYPE_CHECKING:
    from connectors.mapping import Mapping as TargetMapping

T = TypeVar("T")
log = logging.getLogger(__name__)

SYNC_LABEL = "sirsync"  # every ticket sirsync syncs carries it: what the change search looks for
CASE_LABEL_PREFIX = "sirsync-case-"
PROPERTY_KEY = "sirsync"
SUMMARY_LIMIT = 255
TEXT_LIMIT = 32767
# what the sync itself reads of every ticket, besides the fields the mapping names
SYNC_FIELDS = ("status", "labels", "updated", "issuetype", "resolution", "project", "attachment")
COMMENT_FIELD = "comment"  # read with a ticket where its comments are wanted too
ATTACHMENT_FIELD = "attachment"
INTERNAL_PROPERTY = "sd.public.comment"  # Jira Service Management: {"internal": true} hides a comment
RENDERED_FIELDS = {"description", "environment"}  # wiki-rendered: text from SIR goes in as noformat
_MAX_TRANSITIONS = 10
WATCHER_PERMISSIONS = "MANAGE_WATCHERS,USER_PICKER"  # to add others as watchers, to find them by address
FIND_CHUNK = 50  # case labels per cross-reference search
SERVER_INFO = "/rest/api/2/serverInfo"
URL_SETTING = "SIRSYNC_JIRA__URL"
CREDENTIALS = "SIRSYNC_JIRA__USER (the account's email) and SIRSYNC_JIRA__TOKEN (an API token)"


def case_label(case_id: str) -> str:
    return f"{CASE_LABEL_PREFIX}{case_id}"


def parse_jira_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")


TIMEZONE_SETTING = "SIRSYNC_JIRA__TIMEZONE"


def _time_zone(name: Any, source: str) -> ZoneInfo:
    """The zone JQL dates are written in; a name neither Python nor the setting knows stops the run."""
    if not isinstance(name, str) or not name:
        raise FatalError(
            f"Jira time zone: {source} gives none; set {TIMEZONE_SETTING} to the integration user's "
            "Jira time zone (an IANA name such as America/Los_Angeles)"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise FatalError(
            f"Jira time zone {name!r} from {source} is not a known time zone name; set "
            f"{TIMEZONE_SETTING} to the integration user's Jira time zone (an IANA name such as "
            "America/Los_Angeles)"
        ) from exc


def _asked_key(path: str, params: dict[str, Any] | None) -> tuple[str, str]:
    return path, json.dumps(params, sort_keys=True)


class JiraAdapter(TargetAdapter):
    system = "jira"
    display_name = "Jira"
    comment_limit = TEXT_LIMIT
    # the rows of ``sirsync doctor``, in the order preflight checks them; after a failed gate, the
    # rows that follow are not checked
    CHECKS = (
        "site",
        "credentials",
        "project",
        "issue type",
        "statuses",
        "status paths",
        "values",
        "fields",
        "comments",
        "watchers",
        "time zone",
        "case from ticket",
    )
    GATES = frozenset({"site", "credentials", "project", "issue type"})

    def __init__(
        self,
        client: JIRA | Callable[[bool], JIRA],
        project: str,
        *,
        issue_type: str = "Task",
        timezone: str | None = None,
        search_overlap_seconds: int = 180,
        retry: RetryPolicy | None = None,
        url: str = "",
        timeout: float = 10.0,
        paths: StatusPaths | None = None,
        fields: Sequence[str] = (),
    ) -> None:
        self.search_overlap_seconds = search_overlap_seconds
        self.url = url.rstrip("/")  # the site, as SIRSYNC_JIRA__URL names it (for preflight and messages)
        self._timeout = timeout
        # a factory connects on first use, so that Jira being down at start fails a cycle, not the run
        self._client = client
        self.project = project
        self.issue_type = issue_type
        # the integration user's zone, in which Jira reads JQL dates: the setting when given, otherwise the
        # profile's timeZone, read from GET myself when the client connects
        self._zone: ZoneInfo | None = _time_zone(timezone, TIMEZONE_SETTING) if timezone else None
        self._zone_set = bool(timezone)
        self._paths_from = ""  # where preflight found the workflow's paths, for sirsync doctor
        self._retry = retry or RetryPolicy()
        self._account_id: str | None = None
        # the workflow's paths, learned without moving an issue, and the mapping's status.paths
        self._known = WorkflowKnowledge(project, self._get, paths or StatusPaths({}), self._project)
        # the statuses of the project's workflow, by issue type, read without moving an issue
        self._statuses: dict[str, set[str]] | None = None
        # the mapping's field keys (ids or names): what is read of each ticket besides SYNC_FIELDS
        self._mapped = tuple(fields)
        self._catalog: FieldCatalog | None = None  # the site's fields, read when a key is not a system id
        self._accounts: Bounded[str, str] = Bounded()  # email (casefolded) -> accountId, for user fields
        self._emails: Bounded[str, str] = Bounded()  # accountId -> email, where Jira hides the address
        self._project_type: str | None = None  # projectTypeKey, once read
        self._project_read: Any = None  # GET project/{key}, once read
        self._asked: dict[tuple[str, str], Future[Any]] = {}  # GETs asked ahead, by path and query
        self._profile: Any = None  # GET myself, once read
        self._probed = False  # serverInfo answered as Jira Cloud's (preflight's probe)

    @classmethod
    def from_settings(
        cls,
        settings: JiraSettings,
        issue_type: str = "Task",
        retry: RetryPolicy | None = None,
        paths: StatusPaths | None = None,
        fields: Sequence[str] = (),
    ) -> JiraAdapter:
        if not (settings.url and settings.user and settings.token):
            raise FatalError("Jira needs SIRSYNC_JIRA__URL, SIRSYNC_JIRA__USER and SIRSYNC_JIRA__TOKEN")
        url = settings.url

        def connect(probed: bool) -> JIRA:
            """Called inside the first call's retry policy, which retries it as that call. Unless
            ``probed`` (serverInfo answered already), the library asks serverInfo whether this is Jira."""
            try:
                return JIRA(
                    server=url,
                    basic_auth=(
                        settings.user or "",
                        settings.token.get_secret_value() if settings.token else "",
                    ),
                    timeout=settings.timeout_seconds,
                    max_retries=0,  # our RetryPolicy is the only one; the library would retry POSTs
                    get_server_info=not probed,
                )
            except JIRAError as exc:
                if exc.status_code == 404:
                    raise FatalError(_not_jira(url, f"HTTP 404 at {SERVER_INFO}")) from exc
                raise _translate(exc, "connect") from exc
            except requests.JSONDecodeError as exc:
                raise FatalError(_not_jira(url, f"no JSON at {SERVER_INFO}")) from exc
            except requests.RequestException as exc:
                raise connection_failed("Jira connect", exc) from exc
            except (KeyError, TypeError) as exc:  # JSON without Jira's versionNumbers
                raise FatalError(_not_jira(url, f"no version at {SERVER_INFO}")) from exc

        return cls(
            connect,
            settings.project,
            issue_type=issue_type,
            timezone=settings.timezone,
            search_overlap_seconds=settings.search_overlap_seconds,
            retry=retry,
            url=url,
            timeout=settings.timeout_seconds,
            paths=paths,
            fields=fields,
        )

    # --- plumbing ------------------------------------------------------------------------------------

    @property
    def _jira(self) -> JIRA:
        if not isinstance(self._client, JIRA):
            client = self._client(self._probed)
            if self._zone is None:
                # inside the first call's retry policy, as the connect is; kept only once both succeeded
                self._learn_profile(client._session.get(client._get_url("myself")).json())
            self._client = client
        return self._client

    def _learn_profile(self, me: Any) -> None:
        """The account id and, unless the setting overrides it, the time zone from a GET myself answer."""
        if not isinstance(me, dict):
            raise FatalError(_not_jira(self.url, "no JSON object at GET myself"))
        self._profile = me
        if self._account_id is None and me.get("accountId"):
            self._account_id = str(me["accountId"])
        if self._zone is None:
            self._zone = _time_zone(me.get("timeZone"), "Jira's GET /rest/api/2/myself (timeZone)")

    @property
    def zone(self) -> ZoneInfo:
        """The integration user's Jira time zone (the setting, else asked of Jira once)."""
        if self._zone is None:
            self._learn_profile(self._myself())
        assert self._zone is not None
        return self._zone

    def _call(self, what: str, function: Callable[[], T], *, idempotent: bool = True) -> T:
        def attempt() -> T:
            try:
                return function()
            except JIRAError as exc:
                raise _translate(exc, what) from exc
            except requests.JSONDecodeError as exc:  # an answer, but not Jira's: repeating it will not help
                raise CaseError(f"Jira {what}: the answer is not JSON") from exc
            except requests.RequestException as exc:
                raise connection_failed(f"Jira {what}", exc) from exc

        return self._retry.call(attempt, idempotent=idempotent)

    def _url(self, path: str) -> str:
        return str(self._jira._get_url(path))

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        asked = self._asked.pop(_asked_key(path, params), None)
        if asked is not None:
            return asked.result()  # the answer, or the error, as if asked now
        return self._read(path, params)

    def _read(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._call(
            f"GET {path}", lambda: self._jira._session.get(self._url(path), params=params).json()
        )

    def _ask_ahead(self, *paths: str) -> None:
        """Ask these GETs at once, each on a thread of its own: the next :meth:`_get` of each path takes
        its answer (or its error). For preflight's reads that do not depend on one another."""
        pool = ThreadPoolExecutor(max_workers=len(paths), thread_name_prefix="sirsync-jira-preflight")
        for path in paths:
            self._asked[_asked_key(path, None)] = pool.submit(self._read, path)
        pool.shutdown(wait=False)

    def _send(self, method: str, path: str, body: Any) -> Any:
        """A write; a POST (create, comment, transition) is not repeated unless it surely failed."""

        def send() -> Any:
            response = self._jira._session.request(method, self._url(path), data=json.dumps(body))
            return response.json() if response.content else None

        return self._call(f"{method} {path}", send, idempotent=method != "POST")

    def _myself(self) -> Any:
        """GET myself: as the connect read it (unless the time zone is set, it learns the zone there)."""
        return self._call("GET myself", self._read_myself)

    def _read_myself(self) -> Any:
        client = self._jira  # connects first, if need be, reading the profile unless the zone is set
        if self._profile is None:
            self._profile = client._session.get(self._url("myself")).json()
        return self._profile

    def _project(self) -> Any:
        """GET project/{key}, read once: its id, issue types and type, for preflight and workflows."""
        if self._project_read is None:
            self._project_read = self._get(f"project/{self.project}")
        return self._project_read

    @property
    def account_id(self) -> str:
        if self._account_id is None:
            self._account_id = str(self._myself()["accountId"])
        return self._account_id

    # --- before the first write ----------------------------------------------------------------------

    def preflight(self, mapping: TargetMapping) -> list[Problem]:
        """The site answers as Jira Cloud, takes the credentials, has the project and the mapping's issue
        type, and its workflow has every status the mapping names (priorities and resolutions too).
        Only reads."""
        site = self.url or str(self._jira.server_url)
        problem = self._probe_server(site)
        if problem is not None:
            return tagged([problem], "site")
        try:
            me = self._myself()
            self._account_id = str(me["accountId"])
        except SyncError as exc:
            return tagged([self._refused(exc, site, "read its own profile (GET myself)")], "credentials")
        except (KeyError, TypeError):
            message = _not_jira(site, "no accountId in GET myself")
            return [Problem("Jira", message, URL_SETTING, site, check="credentials")]
        zone = self._zone_problem(me.get("timeZone"), site)
        named = [field for field in ("priority", "resolution") if mapping.target_values(field)]
        self._ask_ahead(f"project/{self.project}", f"project/{self.project}/statuses", *named)
        try:
            return tagged(self._project_checks(mapping, site), "project") + ([zone] if zone else [])
        finally:
            self._asked.clear()  # answers a failed check left unread are not kept for later

    def doctor_notes(self) -> dict[str, str]:
        notes = {"project": f"project {self.project} exists and the user sees it"}
        if self._account_id:
            notes["credentials"] = f"the credentials are accepted (account {self._account_id})"
        if self._paths_from:
            notes["status paths"] = (
                f"every status the mapping moves tickets to is reachable over {self._paths_from}"
            )
        if self._zone is not None:
            source = TIMEZONE_SETTING if self._zone_set else "the user's Jira profile"
            notes["time zone"] = f"JQL dates are written in {self._zone.key}, from {source}"
        return notes

    def _zone_problem(self, profile: Any, site: str) -> Problem | None:
        """The zone Jira reads JQL dates in: the profile's, unless the setting overrides it. A setting
        that differs from the profile makes change searches miss edits for hours."""
        if self._zone is None:
            try:
                self._zone = _time_zone(profile, "Jira's GET /rest/api/2/myself (timeZone)")
            except FatalError as exc:
                return Problem("Jira", str(exc).split(";")[0], TIMEZONE_SETTING, site, check="time zone")
            return None
        if isinstance(profile, str) and profile and profile != self._zone.key:
            message = (
                f"{TIMEZONE_SETTING} is {self._zone.key}, but the user's Jira profile is in {profile}, "
                "the zone Jira reads JQL dates in: change searches may miss edits"
            )
            fix = f"unset {TIMEZONE_SETTING} (sirsync then asks Jira), or set it to {profile}"
            return Problem("Jira", message, fix, site, WARNING, "time zone")
        return None

    def _project_checks(self, mapping: TargetMapping, site: str) -> list[Problem]:
        """The project, the mapping's issue type in it, and the statuses and values the mapping names."""
        try:
            project = self._project()
            by_type = self._project_statuses()
        except NotFoundError:
            message = f"project {self.project} does not exist or the user cannot see it"
            fix = "SIRSYNC_JIRA__PROJECT (or the user's Browse permission)"
            return [Problem("Jira", message, fix, site, check="project")]
        except SyncError as exc:
            return [self._refused(exc, site, f"read project {self.project}")]
        if by_type is None:
            path = f"/rest/api/2/project/{self.project}/statuses"
            return [Problem("Jira", _not_jira(site, f"unexpected answer at {path}"), URL_SETTING, site)]
        issue_type = mapping.spec.ticket.issue_type or self.issue_type
        if issue_type not in by_type:
            guess = closest(issue_type, by_type)
            hint = f"; did you mean {guess!r}?" if guess else f" (it has {', '.join(sorted(by_type))})"
            message = f"issue type {issue_type!r} does not exist in project {self.project}{hint}"
            fix = f"{mapping.at(('ticket', 'issue_type'))} ticket.issue_type"
            return [Problem("Jira", message, fix, site, check="issue type")]
        among = f"in the workflow of {issue_type} issues in project {self.project}"
        statuses = by_type[issue_type]
        named = [*mapping.target_statuses(), *mapping.status_paths.statuses()]
        found = tagged(unknown_values("Jira", named, statuses, "status", among, site), "statuses")
        if not found:
            found += tagged(self._unreachable(mapping, issue_type, site), "status paths")
        for field in ("priority", "resolution"):
            named = mapping.target_values(field)
            known = self._names(field) if named else None
            if known:
                found += tagged(unknown_values("Jira", named, known, field, "on this site", site), "values")
        project = project if isinstance(project, dict) else {}
        checks = MappingChecks(
            self.project,
            site,
            self._get,
            self._field,
            self._account_of,
            lambda error, what: self._refused(error, site, what),
            SYNC_LABEL,
        )
        found += tagged(checks.fields(mapping, project, issue_type), "fields")
        self._project_type = str(project.get("projectTypeKey") or "")
        found += tagged(checks.visibility(mapping, project), "comments")
        found += tagged(self._watcher_permissions(mapping, site), "watchers")
        return found + tagged(self._intake_checks(mapping, site), "case from ticket")

    def _intake_checks(self, mapping: TargetMapping, site: str) -> list[Problem]:
        """Where tickets open cases: every field case_from_ticket reads exists, and Jira accepts the
        filter (one search of one issue)."""
        spec = mapping.case_from_ticket
        if not spec.enabled:
            return []
        found = []
        for name, key in spec.fields.items():
            location = ("case_from_ticket", "fields", name)
            try:
                self._field(key)
            except UnknownField as exc:
                found.append(Problem("Jira", str(exc), f"{mapping.at(location)} {dotted(location)}", site))
            except SyncError as exc:
                return [self._refused(exc, site, "read the site's fields (GET /rest/api/2/field)")]
        jql = f'project = "{self.project}" AND ({spec.filter})'
        try:
            self._get("search/jql", {"jql": jql, "fields": "key", "maxResults": 1})
        except RetriableError as exc:
            return [*found, self._refused(exc, site, "search with case_from_ticket.filter")]
        except CaseError as exc:
            where = ("case_from_ticket", "filter")
            message = f"Jira refuses case_from_ticket.filter as JQL: {one_line(str(exc), 200)}"
            found.append(Problem("Jira", message, f"{mapping.at(where)} {dotted(where)}", site))
        return found

    def _watcher_permissions(self, mapping: TargetMapping, site: str) -> list[Problem]:
        """Mirrored watchers need Manage Watchers in the project (to add others) and Browse users and
        groups (to find an account by address); without them the watcher stage fails, so say it now."""
        if not mapping.spec.watchers.enabled or mapping.spec.watchers.direction == "inbound":
            return []
        try:
            answer = self._get(
                "mypermissions", {"projectKey": self.project, "permissions": WATCHER_PERMISSIONS}
            )
        except SyncError:  # not known: the watcher stage says it, if it comes to that
            return []
        held = answer.get("permissions") if isinstance(answer, dict) else None
        lacking = [
            str(value.get("name") or key)
            for key, value in (held.items() if isinstance(held, dict) else ())
            if isinstance(value, dict) and value.get("havePermission") is False
        ]
        if not lacking:
            return []
        message = (
            f"the Jira user lacks {' and '.join(lacking)} in project {self.project}: SIR's watchers cannot "
            "be added to issues"
        )
        fix = (
            f"grant the Jira user {' and '.join(lacking)}, or set watchers.enabled: false "
            f"({mapping.at(('watchers', 'enabled'))})"
        )
        return [Problem("Jira", message, fix, site, WARNING)]

    def _unreachable(self, mapping: TargetMapping, issue_type: str, site: str) -> list[Problem]:
        """Where the user may read the workflow: each status the mapping moves tickets to can be
        reached from the status new issues start in. Without that permission, nothing is known here
        that the cycle would not find out (it reads the transitions of issues as they are)."""
        workflow = self._known.workflow(issue_type)
        if workflow is None:
            return self._undeclared(mapping, site)
        self._paths_from = f"the workflow {workflow.name!r}"
        if workflow.initial is None:
            return []
        reachable = workflow.reachable(workflow.initial)
        found = []
        for named in mapping.moved_to_statuses():
            if named.value in workflow.statuses and named.value not in reachable:
                message = (
                    f"status {named.value!r} cannot be reached from {workflow.initial!r}, where new "
                    f"{issue_type} issues start, in the workflow {workflow.name!r}"
                )
                found.append(Problem("Jira", message, f"{named.at} {named.key}", site))
        return found

    def _undeclared(self, mapping: TargetMapping, site: str) -> list[Problem]:
        """Where the workflow cannot be read, walks are planned over the mapping's status.paths: each
        status the mapping moves tickets to that they do not name is reached by a direct transition
        only, or is that case's error."""
        self._paths_from = "the mapping's status.paths (reading the workflow needs Administer Jira)"
        declared = {named.value for named in mapping.status_paths.statuses()}
        fix = "declare the workflow in status.paths, or give the Jira user the Administer Jira permission"
        found = []
        for named in mapping.moved_to_statuses():
            if named.value not in declared:
                message = (
                    f"status {named.value!r} is not in status.paths and the workflow cannot be read: "
                    "an issue reaches it only by a direct transition"
                )
                found.append(Problem("Jira", message, f"{named.at} {named.key}; {fix}", site, WARNING))
        return found

    def _probe_server(self, site: str) -> Problem | None:
        """Whether the URL answers as Jira Cloud: serverInfo, which Jira answers to anyone, so that a
        wrong URL is not taken for wrong credentials."""
        found = probe(
            "Jira",
            f"GET {SERVER_INFO}",
            lambda: requests.get(
                site + SERVER_INFO, timeout=self._timeout, headers={"Accept": "application/json"}
            ),
            self._retry,
            setting=URL_SETTING,
            url=site,
        )
        if isinstance(found, Problem):
            return found
        status, info = found
        if status != 200 or not isinstance(info, dict) or "deploymentType" not in info:
            detail = f"HTTP {status}" if status != 200 else "no deploymentType"
            return Problem("Jira", _not_jira(site, f"{detail} at {SERVER_INFO}"), URL_SETTING, site)
        if info["deploymentType"] != "Cloud":
            message = f"{site} answers as Jira {info['deploymentType']}; sirsync works with Jira Cloud"
            return Problem("Jira", message, URL_SETTING, site)
        self._probed = True  # the connect need not ask again
        return None

    def _refused(self, error: SyncError, site: str, what: str) -> Problem:
        """A read refused or failed after the site answered as Jira."""
        if isinstance(error, RetriableError):
            return unavailable("Jira", error, reached=True, setting=URL_SETTING, url=site)
        status = error.__cause__.status_code if isinstance(error.__cause__, JIRAError) else None
        if status == 401:
            return Problem("Jira", "the credentials are not accepted (HTTP 401)", CREDENTIALS, site)
        if status == 403:
            message = f"the user may not {what} (HTTP 403)"
            return Problem("Jira", message, f"the Jira user's permissions in project {self.project}", site)
        return Problem("Jira", f"could not {what}: {one_line(str(error))}", URL_SETTING, site, CONFIG)

    def _project_statuses(self) -> dict[str, set[str]] | None:
        """Issue type -> the statuses of its workflow in the project, as Jira Cloud lists them (None if
        the answer is not in that shape)."""
        answer = self._get(f"project/{self.project}/statuses")
        if not isinstance(answer, list):
            return None
        by_type: dict[str, set[str]] = {}
        for entry in answer:
            if not isinstance(entry, dict) or not entry.get("name"):
                return None
            if not isinstance(entry.get("statuses"), list):
                return None
            statuses = [status for status in entry["statuses"] if isinstance(status, dict)]
            by_type[str(entry["name"])] = {str(status["name"]) for status in statuses if status.get("name")}
            for status in statuses:
                self._known.learn_category(status)
        self._statuses = by_type
        return by_type

    def _names(self, path: str) -> set[str] | None:
        """The names of a site-wide list (``priority``, ``resolution``), or None if it cannot be read."""
        try:
            answer = self._get(path)
        except CaseError:
            return None
        if not isinstance(answer, list):
            return None
        return {str(item["name"]) for item in answer if isinstance(item, dict) and item.get("name")}

    # --- tickets -------------------------------------------------------------------------------------

    def _field(self, key: str) -> JiraField:
        """The field a mapping key names, by id or by name; the site's fields are read once, and only
        when a key is not one of the system fields every site has."""
        found = system_field(key)
        if found is not None:
            return found
        if self._catalog is None:
            self._catalog = FieldCatalog(self._get("field"))
        return self._catalog.resolve(key, closest)

    @property
    def _read_fields(self) -> str:
        """What is read of a ticket: what the sync needs, and the fields the mapping names."""
        return ",".join(dict.fromkeys([*SYNC_FIELDS, *(self._field(key).id for key in self._mapped)]))

    @property
    def _read_with_comments(self) -> str:
        """:attr:`_read_fields` and the comments, read in the same call."""
        return f"{self._read_fields},{COMMENT_FIELD}"

    def _account_of(self, email: str) -> str:
        """The accountId of the Jira user with this email (user fields are set by accountId)."""
        known = self._find_account(email)
        if known is None:
            raise CaseError(f"Jira has no user with the email {email.strip()!r} (that sirsync can see)")
        return known

    def _find_account(self, email: str) -> str | None:
        """The accountId of the Jira user with this email, None if there is none sirsync can see."""
        wanted = email.strip().casefold()
        known = self._accounts.get(wanted)
        if known is None:
            answer = self._get("user/search", {"query": email.strip()})
            listed = answer if isinstance(answer, list) else []
            users = [u for u in listed if isinstance(u, dict) and u.get("accountId")]
            exact = [u for u in users if str(u.get("emailAddress", "")).casefold() == wanted]
            # Jira hides the address of users whose profile keeps it private: one unnamed match is the user
            hidden = [u for u in users if not u.get("emailAddress")]
            match = exact or (hidden if len(users) == 1 else [])
            if not match:
                return None
            known = str(match[0]["accountId"])
            self._accounts[wanted] = known
            self._emails[known] = wanted
        return known

    def _email_of(self, user: Mapping[str, Any]) -> str:
        account = str(user.get("accountId") or "")
        return str(user.get("emailAddress") or self._emails.get(account) or account)

    def _ticket(self, raw: Mapping[str, Any]) -> Ticket:
        fields = raw.get("fields", {})
        labels = tuple(fields.get("labels") or ())
        case_id = next(
            (lbl.removeprefix(CASE_LABEL_PREFIX) for lbl in labels if lbl.startswith(CASE_LABEL_PREFIX)), None
        )
        values: dict[str, str] = {}
        for name, value in fields.items():
            if name in (COMMENT_FIELD, ATTACHMENT_FIELD):
                continue
            if isinstance(value, dict) and "name" in value:
                values[name] = str(value["name"])
            elif isinstance(value, str):
                values[name] = value
            elif value is None:
                values[name] = ""
        for key in self._mapped:  # by the mapping's key, in the plain form the mapping compares
            field = self._field(key)
            if field.id in fields:
                values[key] = from_jira(field, fields[field.id], self._email_of)
        return Ticket(
            id=str(raw["id"]),
            key=str(raw["key"]),
            status=str((fields.get("status") or {}).get("name", "")),
            updated=str(fields.get("updated", "")),
            fields=values,
            labels=labels,
            case_id=case_id,
            url=f"{self._jira.server_url}/browse/{raw['key']}",
            comments=self._field_comments(fields.get(COMMENT_FIELD)),
            attachments=self._field_attachments(fields.get(ATTACHMENT_FIELD)),
        )

    def _field_attachments(self, field: Any) -> tuple[Attachment, ...] | None:
        """The issue's ``attachment`` field: every file, with its author."""
        if not isinstance(field, list):
            return None
        return tuple(self._attachment(raw) for raw in field if isinstance(raw, dict) and raw.get("id"))

    def _attachment(self, raw: Mapping[str, Any]) -> Attachment:
        author = raw.get("author") or {}
        size = raw.get("size")
        return Attachment(
            id=str(raw["id"]),
            name=str(raw.get("filename", "")),
            size=int(size) if isinstance(size, int) else -1,
            author=str(author.get("displayName") or author.get("accountId") or "unknown"),
            created=str(raw.get("created", "")),
            own=author.get("accountId") == self.account_id,
        )

    def _field_comments(self, field: Any) -> tuple[Comment, ...] | None:
        """The comments of an issue's ``comment`` field, where it holds them all.

        Jira Cloud gives the field only the most recent comments (100 at most), with ``total`` the true
        count: a longer list, or none asked for, is read page by page through :meth:`comments`. The field
        has no comment properties; ``jsdPublic`` false tells an internal comment, in a service project.
        """
        if not isinstance(field, dict) or not isinstance(field.get("comments"), list):
            return None
        listed, total = field["comments"], field.get("total")
        if field.get("startAt", 0) != 0 or not isinstance(total, int) or len(listed) != total:
            return None
        return tuple(self._comment(raw, internal=raw.get("jsdPublic") is False) for raw in listed)

    def _comment(self, raw: Mapping[str, Any], *, internal: bool) -> Comment:
        author = raw.get("author") or {}
        return Comment(
            id=str(raw["id"]),
            body=str(raw.get("body", "")),
            author=str(author.get("displayName") or author.get("accountId") or "unknown"),
            created=str(raw.get("created", "")),
            updated=str(raw.get("updated", "")),
            own=author.get("accountId") == self.account_id,
            internal=internal,
        )

    def find_ticket(self, case_id: str) -> Ticket | None:
        return self.find_tickets([case_id]).get(case_id)

    def find_tickets(self, case_ids: Collection[str]) -> dict[str, Ticket]:
        """One search per 50 cases; each case keeps its earliest issue, read with its comments."""
        wanted = list(dict.fromkeys(case_ids))
        found: dict[str, Ticket] = {}
        for start in range(0, len(wanted), FIND_CHUNK):
            chunk = {case_label(case_id): case_id for case_id in wanted[start : start + FIND_CHUNK]}
            labels = ", ".join(f'"{label}"' for label in chunk)
            jql = f'project = "{self.project}" AND labels in ({labels}) ORDER BY created ASC'
            for raw in self._search(jql, self._read_with_comments):
                if _project_of(raw) not in ("", self.project):
                    continue  # moved out of the project: never adopted as the case's issue
                ticket = self._ticket(raw)
                for label in ticket.labels:
                    if label in chunk:
                        found.setdefault(chunk[label], ticket)
        return found

    def create_ticket(
        self, case_id: str, case_arn: str, fields: Mapping[str, str], labels: set[str]
    ) -> Ticket:
        sent = sorted({*labels, SYNC_LABEL, case_label(case_id)})
        body = {
            "fields": {
                "project": {"key": self.project},
                "issuetype": {"name": self.issue_type},
                **self._field_values(fields),
                "labels": sent,
            },
            "properties": [{"key": PROPERTY_KEY, "value": {"caseId": case_id, "caseArn": case_arn}}],
        }
        # the labels and the cross-reference property go with the create: one call, and an issue that
        # exists carries both
        created = self._send("POST", "issue", body)
        key = str(created["key"])
        # as created, not read back: the engine reads it after its other writes (automation may already
        # have changed it, or commented)
        return Ticket(
            id=str(created["id"]),
            key=key,
            status="",
            updated="",
            labels=tuple(sent),
            case_id=case_id,
            url=f"{self._jira.server_url}/browse/{key}",
            partial=True,
        )

    def get_ticket(self, key: str) -> Ticket:
        """The issue; one moved to another project still answers at its old key (Jira follows the old
        key to the moved issue) and is :class:`TicketMoved`."""
        raw = self._get(f"issue/{key}", {"fields": self._read_with_comments})
        elsewhere = _project_of(raw)
        if elsewhere and elsewhere != self.project:
            moved_to = str(raw.get("key") or key)
            reason = f"moved to {moved_to}, outside project {self.project}"
            raise TicketMoved(f"Jira issue {key} was {reason}", new_key=moved_to, reason=reason)
        return self._ticket(raw)

    def untracked_tickets(self, query: str, fields: Collection[str]) -> Sequence[Ticket]:
        """One search: issues of the project matching ``query`` without the sync label (an issue with
        no labels at all included: ``labels != x`` alone leaves those out)."""
        jql = (
            f'project = "{self.project}" AND ({query}) AND (labels IS EMPTY OR labels != "{SYNC_LABEL}") '
            "ORDER BY created ASC"
        )
        wanted = {key: self._field(key) for key in fields}
        read = ",".join(dict.fromkeys([*self._read_fields.split(","), *(f.id for f in wanted.values())]))
        found = []
        for raw in self._search(jql, read):
            ticket = self._ticket(raw)
            values = raw.get("fields", {})
            extra = {key: from_jira(f, values.get(f.id), self._email_of) for key, f in wanted.items()}
            found.append(replace(ticket, fields={**ticket.fields, **extra}))
        return found

    def write_cross_reference(self, ticket: Ticket, case_id: str, case_arn: str, labels: set[str]) -> None:
        """The issue property first, then the labels that make the issue found (and no longer taken for
        one without a case): a crash between the two leaves an issue that is looked at again."""
        value = {"caseId": case_id, "caseArn": case_arn}
        self._send("PUT", f"issue/{ticket.key}/properties/{PROPERTY_KEY}", value)
        wanted = {*labels, SYNC_LABEL, case_label(case_id)} - set(ticket.labels)
        if wanted:
            self.update_ticket(ticket, {}, wanted, set())

    def _field_values(self, fields: Mapping[str, str]) -> dict[str, Any]:
        """Mapping keys and texts as Jira's ``fields``: by field id, each value shaped by its schema."""
        values: dict[str, Any] = {}
        for name, value in fields.items():
            field = self._field(name)
            values[field.id] = to_jira(field, self.stored_form(name, value), self._account_of)
        return values

    def stored_form(self, name: str, value: str) -> str:
        text = clean(value)
        if name == "summary":  # plain text, one line
            return " ".join(truncate(" ".join(text.split()), SUMMARY_LIMIT).split())
        if name in RENDERED_FIELDS:
            return markup.quote(truncate(text, TEXT_LIMIT - len(markup.OPEN) - len(markup.CLOSE)))
        field = self._field(name)
        if field.kind not in ("string", "named"):  # an option, a user, a number, a date, a list
            return canonical(field, text)
        return truncate(text, TEXT_LIMIT)

    def plain_form(self, name: str, value: str) -> str:
        return markup.unquote(value) if name in RENDERED_FIELDS else value

    def mirror_text(self, head: str, body: str) -> str:
        """The header line escaped, the text in a noformat block: a comment from SIR stays text."""
        room = TEXT_LIMIT - len(head) * 2 - len(markup.OPEN) - len(markup.CLOSE) - 2
        return f"{markup.escape_inline(head)}\n\n{markup.quote(truncate(clean(body), room))}"

    def update_ticket(
        self, ticket: Ticket, fields: Mapping[str, str], add: set[str], remove: set[str]
    ) -> None:
        body: dict[str, Any] = {}
        if fields:
            body["fields"] = self._field_values(fields)
        label_ops = [{"add": label} for label in sorted(add)] + [
            {"remove": label} for label in sorted(remove)
        ]
        if label_ops:
            body["update"] = {"labels": label_ops}
        if body:
            self._send("PUT", f"issue/{ticket.key}", body)

    # --- status --------------------------------------------------------------------------------------

    def _transitions(self, ticket_key: str, issue_type: str, status: str) -> list[dict[str, Any]]:
        answer = self._get(f"issue/{ticket_key}/transitions", {"expand": "transitions.fields"})
        transitions: list[dict[str, Any]] = answer.get("transitions", [])
        self._known.learn(issue_type, status, transitions)
        return transitions

    def move_to_status(
        self,
        ticket: Ticket,
        status: str,
        fields: Mapping[str, str],
        before_step: Callable[[str], None] = lambda status: None,
    ) -> int:
        """Walk the workflow to ``status`` along a path planned before the first move.

        The path is planned over what can be known without moving an issue (see
        :mod:`connectors.jira.workflow`). A status the workflow does not have, or one no known path
        leads to, is refused before any move, so that the ticket stays where it is; each step takes its
        transition from those Jira offers the ticket at that moment."""
        issue_type = ticket.fields.get("issuetype", self.issue_type)
        current = ticket.status
        if current == status:
            return 0
        self._check_status_exists(ticket.key, issue_type, status)
        offered = self._transitions(ticket.key, issue_type, current)
        steps = self._known.plan(ticket.key, issue_type, current, status, offered)
        if len(steps) > _MAX_TRANSITIONS:
            raise CaseError(
                f"{ticket.key}: the shortest known path from {current!r} to {status!r} takes {len(steps)} "
                f"transitions, more than {_MAX_TRANSITIONS}; the ticket stays in {current!r}"
            )
        for number, step in enumerate(steps):
            if number:
                offered = self._transitions(ticket.key, issue_type, current)
            transition = _offered(offered, step)
            if transition is None:
                self._known.forget_workflow(issue_type)
                names = ", ".join(repr(s.to) for s in offered_steps(offered)) or "no transition"
                raise CaseError(
                    f"{ticket.key}: Jira does not offer a transition from {current!r} to {step.to!r} "
                    f"(it offers {names}), so the walk to {status!r} stopped in {current!r}; the next "
                    "cycle plans again from there"
                )
            before_step(step.to)
            self._transition(ticket.key, transition, fields)
            current = step.to
        return len(steps)

    def _workflow_statuses(self, issue_type: str, *, fresh: bool = False) -> set[str] | None:
        """The statuses of the issue type's workflow in the project (None where they cannot be read)."""
        if fresh or self._statuses is None:
            try:
                self._project_statuses()
            except CaseError as exc:
                log.warning("cannot read the statuses of project %s: %s", self.project, exc)
                return None
        return (self._statuses or {}).get(issue_type)

    def _check_status_exists(self, key: str, issue_type: str, status: str) -> None:
        known = self._workflow_statuses(issue_type)
        if known is not None and status not in known:
            known = self._workflow_statuses(issue_type, fresh=True)  # the workflow may have changed
        if known is not None and status not in known:
            raise CaseError(
                f"{key}: Jira status {status!r} does not exist in the workflow of {issue_type} issues in "
                f"project {self.project} ({', '.join(sorted(known))}); correct the mapping entry that "
                "names it (status.outbound, or pending_action.customer_status)"
            )

    def _transition(self, key: str, transition: dict[str, Any], fields: Mapping[str, str]) -> None:
        screen = transition.get("fields") or {}
        given = {self._field(name).id for name in fields}
        missing = [name for name, meta in screen.items() if meta.get("required") and name not in given]
        if missing:
            raise CaseError(
                f"{key}: transition {transition['name']!r} requires {missing}; add them under "
                f"status.transition_fields.{transition['to']['name']!r} in the mapping"
            )
        body: dict[str, Any] = {"transition": {"id": transition["id"]}}
        wanted = {name: value for name, value in fields.items() if self._field(name).id in screen}
        if wanted:
            body["fields"] = self._field_values(wanted)
        self._send("POST", f"issue/{key}/transitions", body)

    # --- comments ------------------------------------------------------------------------------------

    def comments(self, ticket: Ticket) -> Sequence[Comment]:
        found: list[Comment] = []
        start = 0
        while True:
            params = {"startAt": start, "maxResults": 100, "expand": "properties"}
            page = self._get(f"issue/{ticket.key}/comment", params)
            for raw in page.get("comments", []):
                found.append(self._comment(raw, internal=_internal(raw.get("properties"))))
            start += len(page.get("comments", []))
            if not page.get("comments") or start >= int(page.get("total", 0)):
                return found

    def add_comment(self, ticket: Ticket, body: str, *, internal: bool = False) -> str:
        created = self._send("POST", f"issue/{ticket.key}/comment", self._comment_body(body, internal))
        return str(created["id"])

    def edit_comment(self, ticket: Ticket, comment_id: str, body: str, *, internal: bool = False) -> None:
        # the property goes with the edit too, so that an internal comment stays internal
        self._send("PUT", f"issue/{ticket.key}/comment/{comment_id}", self._comment_body(body, internal))

    def _comment_body(self, body: str, internal: bool) -> dict[str, Any]:
        """An internal comment carries Jira Service Management's property; only a service project has
        them, and a comment meant to be internal is never posted public instead."""
        if not internal:
            return {"body": body}
        if self._project_type is None:
            project = self._project()
            self._project_type = str(project.get("projectTypeKey") or "") if isinstance(project, dict) else ""
        if self._project_type != SERVICE_PROJECT:
            raise FatalError(
                f"the mapping asks for internal comments, but Jira project {self.project} is not a service "
                f"project (projectTypeKey {self._project_type!r}): set comments.visibility and "
                "investigations.visibility to public"
            )
        return {"body": body, "properties": [{"key": INTERNAL_PROPERTY, "value": {"internal": True}}]}

    # --- attachments ---------------------------------------------------------------------------------

    def attachments(self, ticket: Ticket) -> Sequence[Attachment]:
        if ticket.attachments is not None:
            return ticket.attachments
        raw = self._get(f"issue/{ticket.key}", {"fields": ATTACHMENT_FIELD})
        return self._field_attachments(raw.get("fields", {}).get(ATTACHMENT_FIELD)) or ()

    def download_attachment(self, ticket: Ticket, attachment: Attachment, out: Sink) -> None:
        """The content, streamed. Plain ``requests`` with the client's session (its credentials): the
        library's own request reads every answer whole."""

        def fetch() -> None:
            out.restart()
            session = self._jira._session
            url = self._url(f"attachment/content/{attachment.id}")
            response = requests.Session.request(session, "GET", url, stream=True, timeout=self._timeout)
            if not response.ok:
                text = response.text
                response.close()
                raise JIRAError(status_code=response.status_code, text=text, url=url, response=response)
            stream_into(response, out)

        self._call(f"GET attachment/content/{attachment.id}", fetch)

    def add_attachment(self, ticket: Ticket, name: str, content: IO[bytes], size: int) -> Attachment:
        """The library's upload: a multipart body read from ``content`` as it is sent."""

        def upload() -> Any:
            content.seek(0)
            return self._jira.add_attachment(ticket.key, content, filename=name)

        made = self._call(f"POST issue/{ticket.key}/attachments", upload, idempotent=False)
        return self._attachment(made.raw)

    # --- watchers -----------------------------------------------------------------------------------

    def watchers(self, ticket: Ticket) -> Sequence[Watcher]:
        """GET the issue's watchers; the integration's own account (Jira makes the creator of an issue
        a watcher) is left out. A private profile's address is known only where sirsync added it."""
        answer = self._get(f"issue/{ticket.key}/watchers")
        listed = answer.get("watchers") if isinstance(answer, dict) else None
        found = []
        for user in listed if isinstance(listed, list) else []:
            account = str(user.get("accountId") or "") if isinstance(user, dict) else ""
            if not account or account == self.account_id:
                continue
            email = str(user.get("emailAddress") or self._emails.get(account) or "")
            found.append(Watcher(email, str(user.get("displayName") or ""), account))
        return found

    def change_watchers(
        self, ticket: Ticket, add: Collection[Watcher], remove: Collection[Watcher]
    ) -> list[Watcher]:
        """A DELETE per watcher removed and a POST per one added (by accountId, found by address): each
        is safe to repeat. An address with no account that Jira shows is left out of the answer."""
        path = f"issue/{ticket.key}/watchers"

        def send(method: str, account: str) -> None:
            try:
                if method == "DELETE":
                    self._jira._session.delete(self._url(path), params={"accountId": account})
                else:
                    self._jira._session.post(self._url(path), data=json.dumps(account))
            except JIRAError as exc:
                if exc.status_code != 403:
                    raise
                # a permission of its own: this stage fails, the rest of the sync goes on
                raise CaseError(
                    f"Jira {method} {path}: HTTP 403 -- the Jira user may not change who watches issues: "
                    f"grant it Manage Watchers in project {self.project}, or set watchers.enabled: false "
                    "in the mapping"
                ) from exc

        for watcher in remove:
            if watcher.account:
                self._call(f"DELETE {path}", functools.partial(send, "DELETE", watcher.account))
        added = []
        for watcher in add:
            account = watcher.account or self._find_account(watcher.email)
            if account is None:
                continue
            try:
                self._call(f"POST {path}", functools.partial(send, "POST", account))
            except NotFoundError:  # the account is gone since it was found (the issue was just read)
                self._accounts.pop(watcher.key, None)
                continue
            added.append(Watcher(watcher.email, watcher.name, account, watcher.job_title))
        return added

    # --- change search -------------------------------------------------------------------------------

    def _search(self, jql: str, fields: str, max_results: int = 100) -> list[dict[str, Any]]:
        issues: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"jql": jql, "fields": fields, "maxResults": max_results}
            if token:
                params["nextPageToken"] = token
            page = self._get("search/jql", params)
            issues.extend(page.get("issues", []))
            token = page.get("nextPageToken")
            if page.get("isLast", True) or not token:
                return issues

    def changed_since(self, since: datetime | None) -> Sequence[TicketChange]:
        jql = f'project = "{self.project}" AND labels = "{SYNC_LABEL}"'
        if since is not None:
            local = since.astimezone(self.zone)
            jql += f' AND updated >= "{local:%Y/%m/%d %H:%M}"'
        jql += " ORDER BY updated ASC"
        changes = []
        for raw in self._search(jql, "updated,labels"):
            ticket = self._ticket(raw)
            changes.append(TicketChange(ticket.id, ticket.key, ticket.updated, ticket.case_id))
        return changes

    @staticmethod
    def parse_time(value: str) -> datetime:
        return parse_jira_time(value)


def _not_jira(site: str, detail: str) -> str:
    return f"{URL_SETTING} ({site}) does not answer as Jira ({detail})"


def _project_of(raw: Mapping[str, Any]) -> str:
    """The project key an issue read says it is in ("" if the answer does not say)."""
    fields = raw.get("fields")
    project = fields.get("project") if isinstance(fields, dict) else None
    return str(project.get("key") or "") if isinstance(project, dict) else ""


def _internal(properties: Any) -> bool:
    """Whether a comment's properties (``expand=properties``) make it internal (Jira Service Management)."""
    for prop in properties if isinstance(properties, list) else []:
        if isinstance(prop, dict) and prop.get("key") == INTERNAL_PROPERTY:
            value = prop.get("value")
            return isinstance(value, dict) and value.get("internal") in (True, "true")
    return False


def _offered(transitions: list[dict[str, Any]], step: Step) -> dict[str, Any] | None:
    """The offered transition that takes ``step``: by its id where the plan knows it, else by target."""
    leads = [t for t in transitions if t.get("to", {}).get("name") == step.to]
    return next((t for t in leads if str(t.get("id")) == step.transition_id), leads[0] if leads else None)


def _translate(exc: JIRAError, what: str) -> Exception:
    status = exc.status_code or 0
    message = f"Jira {what}: HTTP {status}: {(exc.text or '')[:300]}"
    if status == 429 or status >= 500:
        headers = exc.response.headers if exc.response is not None else {}
        return throttled_or_failed(message, status, headers.get("Retry-After"))
    if status == 401:
        return FatalError(
            f"{message} -- Jira did not accept the credentials: check SIRSYNC_JIRA__USER (the account's "
            "email) and SIRSYNC_JIRA__TOKEN (an API token, not the password)"
        )
    if status == 403:
        return FatalError(
            f"{message} -- the Jira user lacks a permission here: it needs Browse, Create, Edit, Transition "
            "and Add Comments in the project"
        )
    if status == 404:
        return NotFoundError(message)
    return CaseError(message)
