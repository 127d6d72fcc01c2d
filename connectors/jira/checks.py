"""Preflight checks of what a Jira mapping names beyond statuses: its fields (by id or name, on the
create and edit screens, select values among the options) and internal comments (a service project
only). They only read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors.errors import CaseError, SyncError
from connectors.jira.fields import JiraField, UnknownField, parts
from connectors.mapping.compiled import Named
from connectors.mapping.source import Location, dotted
from connectors.preflight import Problem, unknown_values

if TYPE_CHECKING:
    from connectors.mapping import Mapping as TargetMapping

SERVICE_PROJECT = "service_desk"  # the projectTypeKey of Jira Service Management projects


@dataclass(frozen=True)
class MappingChecks:
    """The checks, over the adapter's reads: ``get`` (a retried GET), ``field`` (a mapping key to its
    field), ``account_of`` (an email to its accountId) and ``refused`` (a failed read as a problem);
    ``sync_label`` finds an issue sirsync syncs, whose edit screen is checked."""

    project: str
    site: str
    get: Callable[..., Any]
    field: Callable[[str], JiraField]
    account_of: Callable[[str], str]
    refused: Callable[[SyncError, str], Problem]
    sync_label: str  # the label every synced issue carries

    def fields(self, mapping: TargetMapping, project: dict[str, Any], issue_type: str) -> list[Problem]:
        """Every field the mapping names exists (by id or name), can be written, is on the create screen
        of the issue type (and on the edit screen of an issue sirsync already syncs), and every fixed
        value the mapping writes into a field with allowed values is one of them."""
        spec = mapping.spec
        keys: list[tuple[str, Location, bool]] = [
            (key, ("fields", key), field.direction != "inbound") for key, field in spec.fields.items()
        ]
        keys += [(key, ("ticket", "defaults", key), True) for key in spec.ticket.defaults]
        keys += [  # set by a transition's screen, which Jira offers with the transition: only named here
            (key, ("status", "transition_fields", status, key), False)
            for status, fields in spec.status.transition_fields.items()
            for key in fields
        ]
        found: list[Problem] = []
        resolved: dict[str, JiraField] = {}
        for key, location, outbound in keys:
            fix = f"{mapping.at(location)} {dotted(location)}"
            try:
                field = resolved[key] = self.field(key)
            except UnknownField as exc:
                found.append(Problem("Jira", str(exc), fix, self.site))
                continue
            except SyncError as exc:
                return [self.refused(exc, "read the site's fields (GET /rest/api/2/field)")]
            if outbound and field.kind == "unsupported":
                message = f"field {field.label} is of type {field.type_name}, which sirsync cannot write"
                found.append(Problem("Jira", message, fix, self.site))
        type_id = next(
            (str(t.get("id")) for t in project.get("issueTypes") or [] if t.get("name") == issue_type), None
        )
        written = [(key, loc) for key, loc, outbound in keys if outbound and key in resolved]
        if not written or type_id is None:
            return found
        try:
            create = self._create_meta(type_id)
        except SyncError as exc:
            return [*found, self.refused(exc, f"read the create metadata of {issue_type} issues")]
        screen = f"the create screen of {issue_type} issues in project {self.project}"
        for key, location in written:
            field = resolved[key]
            fix = f"{mapping.at(location)} {dotted(location)}"
            if field.id not in create:
                found.append(Problem("Jira", f"field {field.label} is not on {screen}", fix, self.site))
                continue
            found += self._values(mapping, key, field, create[field.id])
        return found + self._edit_screen(mapping, resolved)

    def _values(self, mapping: TargetMapping, key: str, field: JiraField, meta: Any) -> list[Problem]:
        """The fixed values the mapping writes into ``field``: among its allowed options, or users
        that exist."""
        named = mapping.target_values(key)
        if field.kind in ("option", "options") and isinstance(meta, dict):
            allowed = {str(v.get("value")) for v in meta.get("allowedValues") or [] if isinstance(v, dict)}
            if not allowed:
                return []
            each = [Named(part, n.key, n.at) for n in named for part in parts(n.value)]
            among = f"among the options of {field.label}"
            return unknown_values("Jira", each, allowed, "option", among, self.site)
        if field.kind == "user":
            found = []
            for item in named:
                try:
                    self.account_of(item.value)
                except CaseError:
                    message = f"no Jira user has the email {item.value!r} (field {field.label})"
                    found.append(Problem("Jira", message, f"{item.at} {item.key}", self.site))
            return found
        return []

    def _edit_screen(self, mapping: TargetMapping, resolved: dict[str, JiraField]) -> list[Problem]:
        """Where sirsync already syncs an issue, the fields it updates are on that issue's edit screen."""
        updated = [key for key, field in mapping.spec.fields.items() if field.direction != "inbound"]
        if not any(key in resolved for key in updated):
            return []
        jql = f'project = "{self.project}" AND labels = "{self.sync_label}" ORDER BY created DESC'
        try:
            page = self.get("search/jql", {"jql": jql, "fields": "issuetype", "maxResults": 1})
            issues = page.get("issues") or [] if isinstance(page, dict) else []
            if not issues:
                return []
            key = str(issues[0]["key"])
            edit = self.get(f"issue/{key}/editmeta").get("fields") or {}
        except SyncError as exc:
            return [self.refused(exc, "read the edit metadata of a synced issue")]
        found = []
        for name in updated:
            field = resolved.get(name)
            if field is not None and field.id not in edit:
                location: Location = ("fields", name)
                message = f"field {field.label} is not on the edit screen of {key}, where sirsync updates it"
                found.append(
                    Problem("Jira", message, f"{mapping.at(location)} {dotted(location)}", self.site)
                )
        return found

    def _create_meta(self, issue_type_id: str) -> dict[str, Any]:
        """Field id -> its create metadata for the issue type (Cloud's paginated createmeta)."""
        path = f"issue/createmeta/{self.project}/issuetypes/{issue_type_id}"
        metas: dict[str, Any] = {}
        start = 0
        while True:
            page = self.get(path, {"startAt": start, "maxResults": 50})
            items = (page.get("fields") or page.get("values") or []) if isinstance(page, dict) else []
            for item in items:
                if isinstance(item, dict) and (item.get("fieldId") or item.get("key")):
                    metas[str(item.get("fieldId") or item.get("key"))] = item
            start += len(items)
            if not items or start >= int(page.get("total") or 0):
                return metas

    def visibility(self, mapping: TargetMapping, project: dict[str, Any]) -> list[Problem]:
        """Internal comments exist only in service projects (Jira Service Management): elsewhere a mapping
        asking for them is refused, rather than every comment going out public."""
        type_key = str(project.get("projectTypeKey") or "")
        if type_key == SERVICE_PROJECT:
            return []
        spec = mapping.spec
        asking: list[Location] = []
        if spec.comments.visibility == "internal" and spec.comments.direction != "inbound":
            asking.append(("comments", "visibility"))
        if spec.investigations.enabled and spec.investigations.visibility == "internal":
            asking.append(("investigations", "visibility"))
        kind = type_key or "unknown"
        return [
            Problem(
                "Jira",
                f"{dotted(location)} is internal, but project {self.project} is a {kind!r} project, not a "
                "service project (Jira Service Management): it has no internal comments, all would be public",
                f"{mapping.at(location)} {dotted(location)}",
                self.site,
            )
            for location in asking
        ]
