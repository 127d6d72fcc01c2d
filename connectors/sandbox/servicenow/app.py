"""The ServiceNow Table and Attachment APIs, as pysnow (and pysnc) see them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import random
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from connectors.sandbox.base import Handler, Request, Response, SandboxApp, SandboxError, body_of
from connectors.sandbox.identities import IDENTITIES, Identity
from connectors.sandbox.servicenow import query, schema
from connectors.sandbox.servicenow.records import (
    DATE_FORMAT,
    Settings,
    Store,
    acl_refused,
    not_found,
    snow_error,
)
from connectors.sandbox.servicenow.render import View, render

JSON = "application/json;charset=UTF-8"
DEFAULT_LIMIT = 10000
API_PREFIXES = ("/api/now", "/api/now/v1", "/api/now/v2")
USER_LISTS = ("journal_acl_hidden_for", "journal_acl_refused_for", "revoked")
SYS_ID_LISTS = ("journal_acl_hidden_records", "open_post_incident_reviews")
FLOWS = (*schema.SECURITY_INCIDENT_FLOWS, "none")


class ServiceNowSandbox(SandboxApp):
    """Tables ``incident``, ``sn_si_incident``, ``sys_journal_field`` (plus read-only ``sys_choice``,
    ``sys_user`` and ``sys_user_group``) and the attachment API, behind basic auth."""

    name = "servicenow"
    store: Store
    settings: Settings

    def routes(self) -> Iterable[tuple[str, str, Handler]]:
        routes: list[tuple[str, str, Handler]] = []
        for prefix in API_PREFIXES:
            routes += [
                ("GET", f"{prefix}/table/{{table}}", self._list),
                ("POST", f"{prefix}/table/{{table}}", self._create),
                ("GET", f"{prefix}/table/{{table}}/{{sys_id}}", self._get),
                ("PATCH", f"{prefix}/table/{{table}}/{{sys_id}}", self._update),
                ("PUT", f"{prefix}/table/{{table}}/{{sys_id}}", self._update),
                ("DELETE", f"{prefix}/table/{{table}}/{{sys_id}}", self._delete),
            ]
        return [
            *routes,
            ("POST", "/api/now/attachment/file", self._upload),
            ("GET", "/api/now/attachment", self._list_attachments),
            ("GET", "/api/now/attachment/{sys_id}", self._attachment_meta),
            ("GET", "/api/now/attachment/{sys_id}/file", self._download),
            ("DELETE", "/api/now/attachment/{sys_id}", self._delete_attachment),
        ]

    def reset_state(self) -> None:
        self.settings = Settings()
        self.store = Store(random.Random(self.seed), self.settings)

    # --- identity and error shapes ----------------------------------------------------------------------

    def authenticate(self, request: Request) -> Identity:
        header = request.header("authorization") or ""
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = password = ""
            for identity in IDENTITIES:
                if (identity.servicenow_user, identity.servicenow_password) == (user, password):
                    if identity.servicenow_user in self.settings.revoked:
                        break  # a revoked password answers like a wrong one
                    return identity
        raise snow_error(
            401,
            "User Not Authenticated",
            "Required to provide Auth information",
            **{"WWW-Authenticate": 'BASIC realm="Service-now"'},
        )

    def error_response(self, error: SandboxError) -> Response:
        return Response(error.status, error.body, dict(error.headers), JSON)

    def fault_response(self, kind: str, retry_after: int) -> Response:
        if kind == "429":
            reset = int(self.clock.now().timestamp()) + retry_after
            headers = {
                "Retry-After": str(retry_after),
                "X-RateLimit-Limit": str(self.settings.rate_limit),
                "X-RateLimit-Reset": str(reset),
            }
            limit = self.settings.rate_limit
            detail = f"Rate limit of {limit} requests per hour exceeded; retry in {retry_after}s"
            return Response(429, _failure("Too Many Requests", detail), headers, JSON)
        if kind == "503":
            # A node or the load balancer answers, not the REST framework: HTML, not JSON.
            page = "<html><body><h1>Service Unavailable</h1></body></html>"
            return Response(503, page, {"Retry-After": str(retry_after)}, "text/html")
        return Response(500, _failure("Internal Server Error", "Injected fault"), {}, JSON)

    def not_found_response(self, request: Request) -> Response:
        if request.path.startswith("/api/"):
            return Response(400, _failure("Requested URI does not represent any resource"), {}, JSON)
        return Response(404, "<html><body>Not Found</body></html>", {}, "text/html")

    def bad_json_response(self, request: Request, detail: str) -> Response:
        return Response(
            400, _failure("Exception while reading request", "The payload is not valid JSON."), {}, JSON
        )

    def configure(self, settings: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            current = self.settings.as_json()
            unknown = sorted(set(settings) - set(current))
            if unknown:
                raise SandboxError(400, {"message": f"unknown settings {unknown}; known: {sorted(current)}"})
            for name, value in settings.items():
                expected = type(current[name])
                if name in USER_LISTS or name in SYS_ID_LISTS:
                    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                        what = "sys_ids" if name in SYS_ID_LISTS else "user names"
                        raise SandboxError(400, {"message": f"{name} must be a list of {what}"})
                elif name == "acl_filtered_rows":
                    number = isinstance(value, int | float) and not isinstance(value, bool)
                    if not number or not 0 <= value < 1:
                        raise SandboxError(400, {"message": f"{name} must be a number from 0 to below 1"})
                    value = float(value)
                elif name == "absent_tables":
                    if not isinstance(value, list) or not all(v in schema.TABLES for v in value):
                        known = sorted(schema.TABLES)
                        raise SandboxError(400, {"message": f"{name} must be a list of tables of {known}"})
                elif name == "security_incident_flow" and value not in FLOWS:
                    raise SandboxError(400, {"message": f"{name} must be one of {list(FLOWS)}"})
                elif name == "overlong_strings" and value not in ("truncate", "reject"):
                    raise SandboxError(400, {"message": f"{name} must be 'truncate' or 'reject'"})
                elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                    raise SandboxError(400, {"message": f"{name} must be a {expected.__name__}"})
                setattr(self.settings, name, value)
            return self.settings.as_json()

    # --- Table API ---------------------------------------------------------------------------------------

    def _table(self, request: Request) -> schema.Table:
        return self._known_table(request.params["table"])

    def _known_table(self, name: str) -> schema.Table:
        table = schema.TABLES.get(name)
        if table is None or name in self.settings.absent_tables:
            raise snow_error(400, f"Invalid table {name}")
        return table

    def _hidden(self, request: Request, table: schema.Table) -> bool:
        """Journal ACL: for these users sys_journal_field reads as empty rather than refusing (or, for
        ``journal_acl_refused_for``, refuses with 403)."""
        user: str = request.caller.servicenow_user
        if table.name == "sys_journal_field" and user in self.settings.journal_acl_refused_for:
            raise acl_refused("Read")
        return table.name == "sys_journal_field" and user in self.settings.journal_acl_hidden_for

    def _list(self, request: Request) -> Response:
        table = self._table(request)
        rows = [] if self._hidden(request, table) else list(self.store.tables[table.name].values())
        if table.name == "sys_journal_field":
            hidden = set(self.settings.journal_acl_hidden_records)
            rows = [row for row in rows if row["element_id"] not in hidden]
        if table.name == "sys_choice":  # an absent table has no choice lists either
            rows = [row for row in rows if row["name"] not in self.settings.absent_tables]
        return self._page(request, table, rows)

    def _page(self, request: Request, table: schema.Table, rows: list[dict[str, str]]) -> Response:
        parsed = query.parse(request.arg("sysparm_query") or "", table.has)
        if parsed.invalid and self.settings.invalid_query_returns_no_rows:
            rows = []
        matched = query.select(rows, parsed)
        limit = _int_arg(request, "sysparm_limit", DEFAULT_LIMIT, minimum=1)
        offset = _int_arg(request, "sysparm_offset", 0, minimum=0)
        view = View.of(request)
        # where each readable row sits among all matching rows, the ACL-filtered ones included
        places = _places(len(matched), self.settings.acl_filtered_rows)
        shown = [row for row, at in zip(matched, places, strict=True) if offset <= at < offset + limit]
        result = [render(self.store, table, r, view, self.base_url) for r in shown]
        total = places[-1] + 1 if places else 0  # counted before the ACL, as the limit is
        headers = {"X-Total-Count": str(total)}
        if (request.arg("sysparm_suppress_pagination_header") or "").lower() != "true":
            headers["Link"] = self._link_header(request, total, limit, offset)
        return Response(200, {"result": result}, headers, JSON)

    def _link_header(self, request: Request, total: int, limit: int, offset: int) -> str:
        """ServiceNow's format: ``<url>;rel="first",<url>;rel="prev",...``. Like the real instance, prev is
        given even on the first page (with a negative offset); next only while records remain."""
        params = [(k, v) for k, values in request.query.items() if k != "sysparm_offset" for v in values]
        if not any(k == "sysparm_limit" for k, _ in params):
            params.append(("sysparm_limit", str(limit)))
        base = f"{self.base_url}{request.path}"

        def url(at: int) -> str:
            return f"<{base}?{urlencode([*params, ('sysparm_offset', str(at))])}>"

        links = [f'{url(0)};rel="first"', f'{url(offset - limit)};rel="prev"']
        if offset + limit < total:
            links.append(f'{url(offset + limit)};rel="next"')
        links.append(f'{url(max(0, (total - 1) // limit * limit))};rel="last"')
        return ",".join(links)

    def _get(self, request: Request) -> Response:
        table = self._table(request)
        if self._hidden(request, table):
            raise not_found()
        record = self.store.get(table.name, request.params["sys_id"])
        hidden_records = self.settings.journal_acl_hidden_records
        if table.name == "sys_journal_field" and record["element_id"] in hidden_records:
            raise not_found()
        return self._one(request, table, record, 200)

    def _one(self, request: Request, table: schema.Table, record: dict[str, str], status: int) -> Response:
        result = render(self.store, table, record, View.of(request), self.base_url)
        return Response(status, {"result": result}, {}, JSON)

    def _create(self, request: Request) -> Response:
        table = self._table(request)
        if not table.writable:
            raise acl_refused("Insert")
        record = self.store.insert(table, body_of(request), request.caller.servicenow_user, self.clock.now())
        response = self._one(request, table, record, 201)
        response.headers["Location"] = f"{self.base_url}/api/now/table/{table.name}/{record['sys_id']}"
        return response

    def _update(self, request: Request) -> Response:
        table = self._table(request)
        if not table.writable:
            raise acl_refused("Update")
        user = request.caller.servicenow_user
        record = self.store.update(table, request.params["sys_id"], body_of(request), user, self.clock.now())
        return self._one(request, table, record, 200)

    def _delete(self, request: Request) -> Response:
        table = self._table(request)
        if not table.writable:
            raise acl_refused("Delete")
        self.store.delete(table.name, request.params["sys_id"])
        return Response(204, None, {}, JSON)

    # --- Attachment API ------------------------------------------------------------------------------------

    def _upload(self, request: Request) -> Response:
        missing = [p for p in ("table_name", "table_sys_id", "file_name") if not request.arg(p)]
        if missing:
            raise snow_error(400, f"Missing required parameter: {missing[0]}")
        table_name, table_sys_id = request.arg("table_name") or "", request.arg("table_sys_id") or ""
        self._known_table(table_name)
        if table_sys_id not in self.store.tables[table_name]:
            raise snow_error(400, "Invalid table_sys_id", f"No record {table_sys_id} in {table_name}")
        limit = self.settings.attachment_max_bytes
        if len(request.body) > limit:
            raise snow_error(
                400,
                "Failed to create the attachment. File part might be too large.",
                f"The attachment is {len(request.body)} bytes; this instance accepts at most {limit} "
                "bytes (com.glide.attachment.max_size)",
            )
        sys_id = self.store.new_sys_id()
        user = request.caller.servicenow_user
        stamp = self.clock.now().strftime(DATE_FORMAT)
        meta = {
            "sys_id": sys_id,
            "sys_created_on": stamp,
            "sys_created_by": user,
            "sys_updated_on": stamp,
            "sys_updated_by": user,
            "sys_mod_count": "0",
            "file_name": request.arg("file_name") or "",
            "table_name": table_name,
            "table_sys_id": table_sys_id,
            "content_type": request.header("content-type") or "application/octet-stream",
            "size_bytes": str(len(request.body)),
            "size_compressed": str(len(request.body)),
            "compressed": "true",
            "hash": hashlib.sha256(request.body).hexdigest(),
            "state": "available",
            "download_link": f"{self.base_url}/api/now/attachment/{sys_id}/file",
        }
        self.store.tables["sys_attachment"][sys_id] = meta
        self.store.contents[sys_id] = request.body
        headers = {"Location": f"{self.base_url}/api/now/attachment/{sys_id}"}
        return Response(201, {"result": dict(meta)}, headers, JSON)

    def _list_attachments(self, request: Request) -> Response:
        return self._page(
            request, schema.ATTACHMENT_TABLE, list(self.store.tables["sys_attachment"].values())
        )

    def _attachment_meta(self, request: Request) -> Response:
        meta = self.store.get("sys_attachment", request.params["sys_id"])
        return Response(200, {"result": dict(meta)}, {}, JSON)

    def _download(self, request: Request) -> Response:
        meta = self.store.get("sys_attachment", request.params["sys_id"])
        headers = {"X-Attachment-Metadata": json.dumps(meta)}
        return Response(200, self.store.contents[meta["sys_id"]], headers, meta["content_type"])

    def _delete_attachment(self, request: Request) -> Response:
        self.store.get("sys_attachment", request.params["sys_id"])
        del self.store.tables["sys_attachment"][request.params["sys_id"]]
        self.store.contents.pop(request.params["sys_id"], None)
        return Response(204, None, {}, JSON)

    # --- helpers for tests and demos --------------------------------------------------------------------

    def records(self, table: str) -> list[dict[str, str]]:
        """Stored rows of a table (raw values; journal fields live in :meth:`journal`)."""
        with self.lock:
            return [dict(r) for r in self.store.tables[table].values()]

    def record(self, table: str, sys_id: str) -> dict[str, str] | None:
        with self.lock:
            row = self.store.tables[table].get(sys_id)
            return dict(row) if row is not None else None

    def journal(self, sys_id: str) -> list[dict[str, str]]:
        """The ``sys_journal_field`` entries of one record, oldest first."""
        with self.lock:
            return self.store.journal_entries(sys_id)

    def attachment_content(self, sys_id: str) -> bytes:
        with self.lock:
            return self.store.contents[sys_id]


def _failure(message: str, detail: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "detail": detail}, "status": "failure"}


def _places(count: int, filtered_share: float) -> list[int]:
    """Positions of ``count`` readable rows when ``filtered_share`` of all rows are unreadable, spread
    evenly, the unreadable ones first: with 0.5, rows 1, 3, 5..."""
    readable_share = 1.0 - filtered_share
    return [math.ceil((n + 1) / readable_share - 1e-9) - 1 for n in range(count)]


def _int_arg(request: Request, name: str, default: int, *, minimum: int) -> int:
    try:
        return max(minimum, int(request.arg(name) or default))
    except ValueError:
        return default
