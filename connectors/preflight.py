"""Check every configured system before the first write: settings, credentials, the project or table, and
the statuses and values the mappings name. Nothing here writes anywhere.

How to call it (before the first cycle)::

    from connectors import preflight

    problems = preflight.check_settings(settings)  # offline, before build_runtime: boto3 refuses a bad URL
    if problems:
        err(preflight.render(problems))
        return 2
    runtime = build_runtime(settings)  # loads the mappings: an invalid one is a MappingError there
    problems = preflight.blocking(preflight.preflight(runtime.cycle, settings), once=options.once)
    if problems:
        err(preflight.render(problems))
        return 2

Each :class:`Problem` names its system, says what is wrong in one line, what to fix (a setting such as
``SIRSYNC_JIRA__URL`` or a mapping ``file:line``) and the URL involved. Its ``kind`` tells the caller what
it means:

- ``config``: a setting, the credentials or the mapping is wrong. Exit 2, under ``--once`` and ``--every``.
- ``unreachable``: nothing answers at the URL (connection refused, DNS, connect timeout), even after the
  retries. Most often a wrong URL: under ``--once`` exit 2 naming it; under ``--every`` the cycles go on
  and retry it with their backoff.
- ``down``: the system answered, but only with errors (5xx, 429) after the retries: not a configuration
  problem. It never stops the run; the cycle reports it and syncs the other systems, as it does mid-run.
- ``warning``: something the operator should know that does not stop the run (a choice list that cannot
  be read, so mapped values go unchecked). Logged by ``sync``, a "warn" row in ``sirsync doctor``.

Each problem's ``check`` names the row of ``sirsync doctor`` it belongs to: one of the ``CHECKS`` the
adapter declares, in the order they run.

The checks themselves live in each adapter (``preflight()`` on :class:`~connectors.sir.adapter.SirAdapter`
and every :class:`~connectors.target.TargetAdapter`), where vendor errors are turned into ours; this
module only runs them and renders what they found.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import requests

from connectors.errors import RetriableError, connection_failed, throttled_or_failed
from connectors.retry import RetryPolicy
from connectors.settings import Settings
from connectors.text import closest

if TYPE_CHECKING:
    from connectors.engine import Cycle
    from connectors.mapping.compiled import Named

Kind = Literal["config", "unreachable", "down", "warning"]
CONFIG: Kind = "config"
UNREACHABLE: Kind = "unreachable"
DOWN: Kind = "down"
WARNING: Kind = "warning"
SHOWN = 6  # problems rendered in full; the rest are counted, so the message fits on one screen
LINE = 200  # the longest problem message
_MAPPING_LINE = re.compile(r"(?P<path>.+):(?P<line>\d+) (?P<key>.+)")  # a fix at a mapping line


@dataclass(frozen=True)
class Problem:
    system: str  # "SIR", "Jira", "ServiceNow"
    message: str  # one line
    fix: str  # the setting(s) or the mapping file:line (and key) to change
    url: str = ""
    kind: Kind = CONFIG
    check: str = ""  # the row of ``sirsync doctor`` it belongs to, one of the adapter's CHECKS

    def line(self) -> str:
        at = f" ({self.url})" if self.url and self.url not in self.message else ""
        return f"{self.system}{at}: {self.message}"


# --- offline: the settings --------------------------------------------------------------------------


def url_problem(system: str, setting: str, value: str | None) -> Problem | None:
    """A URL setting that cannot be used as one: no scheme, another scheme than http(s), or no host."""
    if value is None:
        return None
    split = urlsplit(value.strip())
    if "://" not in value:
        hint = f"; write it as https://{value.strip()}" if value.strip() else ""
        return Problem(system, f"{setting} {value!r} has no scheme{hint}", setting)
    if split.scheme not in ("http", "https"):
        return Problem(system, f"{setting} {value!r} is not an http(s) URL", setting)
    if not split.hostname:
        return Problem(system, f"{setting} {value!r} has no host", setting)
    return None


def check_settings(settings: Settings) -> list[Problem]:
    """What can be told from the settings alone: URL settings that are not URLs, missing ones."""
    found: list[Problem] = []
    sir = url_problem("SIR", "SIRSYNC_SIR__ENDPOINT_URL", settings.sir.endpoint_url)
    if sir:
        found.append(sir)
    required: dict[str, tuple[str, dict[str, object]]] = {
        "jira": (
            "Jira",
            {
                "SIRSYNC_JIRA__URL": settings.jira.url,
                "SIRSYNC_JIRA__USER": settings.jira.user,
                "SIRSYNC_JIRA__TOKEN": settings.jira.token,
            },
        ),
        "servicenow": (
            "ServiceNow",
            {
                "SIRSYNC_SERVICENOW__URL": settings.servicenow.url,
                "SIRSYNC_SERVICENOW__USER": settings.servicenow.user,
                "SIRSYNC_SERVICENOW__PASSWORD": settings.servicenow.password,
            },
        ),
    }
    for target in settings.targets:
        system, values = required[target]
        missing = [name for name, value in values.items() if not value]
        if missing:
            found.append(Problem(system, f"{' and '.join(missing)} not set", ", ".join(missing)))
        url_setting = next(iter(values))
        url = values[url_setting]
        problem = url_problem(system, url_setting, url if isinstance(url, str) and url else None)
        if problem:
            found.append(problem)
    return found


# --- live: every configured system --------------------------------------------------------------------


def preflight(cycle: Cycle, settings: Settings) -> list[Problem]:
    """Check SIR and every target of ``cycle`` at once, writing nothing; the settings' own problems
    first. A system whose settings are wrong is not asked anything."""
    found = check_settings(settings)
    broken = {problem.system for problem in found}
    checks: list[Callable[[], list[Problem]]] = []
    if "SIR" not in broken:
        checks.append(cycle.sir.preflight)
    for target in cycle.targets:
        if target.adapter.display_name not in broken:
            checks.append(partial(target.adapter.preflight, target.mapping))
    if not checks:
        return found
    with ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="preflight") as pool:
        for problems in pool.map(lambda check: check(), checks):
            found.extend(problems)
    return found


def blocking(problems: Iterable[Problem], *, once: bool) -> list[Problem]:
    """The problems that stop the run: configuration always, nothing answering under ``--once``."""
    stops = {CONFIG, UNREACHABLE} if once else {CONFIG}
    return [problem for problem in problems if problem.kind in stops]


def render(problems: Sequence[Problem]) -> str:
    """The one-screen message for problems that stop the run: one line each and what to fix.

    The same problem on several mapping lines is shown once with every line; each system gets its share
    of the screen, so that one system's many problems do not hide another's."""
    groups: dict[Problem, list[str]] = {}
    for problem in problems:
        groups.setdefault(replace(problem, fix=""), []).append(problem.fix)
    systems = list(dict.fromkeys(problem.system for problem in groups))
    share = max(1, SHOWN // max(1, len(systems)))
    lines = [f"sirsync: stopped before the first write, nothing was written; {_count(problems)} to fix:"]
    hidden = 0
    for system in systems:
        mine = [(problem, fixes) for problem, fixes in groups.items() if problem.system == system]
        hidden += len(mine[share:])
        for problem, fixes in mine[:share]:
            lines.append(f"  {problem.line()}")
            lines.append(f"    fix: {_joined(fixes)}")
    if hidden:
        lines.append(f"  ... and {hidden} more like these; fix them and run again to see the rest")
    return "\n".join(lines)


def _joined(fixes: Iterable[str]) -> str:
    """Fixes one after another, a mapping file named once for lines that follow in it."""
    parts: list[str] = []
    path = None
    for fix in dict.fromkeys(fixes):
        at = _MAPPING_LINE.match(fix)
        parts.append(f":{at['line']} {at['key']}" if at and at["path"] == path else fix)
        path = at["path"] if at else None
    return "; ".join(parts)


def _count(problems: Sequence[Problem]) -> str:
    return "1 problem" if len(problems) == 1 else f"{len(problems)} problems"


# --- helpers the adapters share ---------------------------------------------------------------------


def tagged(problems: Iterable[Problem], check: str) -> list[Problem]:
    """``problems`` with ``check`` as the doctor row of those that name none yet."""
    return [problem if problem.check else replace(problem, check=check) for problem in problems]


def one_line(text: str, limit: int = LINE) -> str:
    """Text from a vendor's answer as one line, cut to ``limit``."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def unavailable(system: str, error: RetriableError, *, reached: bool, setting: str, url: str) -> Problem:
    """A system that could not be read even after the retries: ``unreachable`` if no request reached it
    (refused, DNS, connect timeout), ``down`` if it answered, with errors (5xx, 429, a reset)."""
    if not reached:
        message = f"nothing answers, even after retries ({one_line(str(error), 120)})"
        return Problem(system, message, f"{setting}, or the network", url, UNREACHABLE)
    message = f"answers only with errors, even after retries ({one_line(str(error), 120)})"
    return Problem(system, message, setting, url, DOWN)


def probe(
    system: str,
    what: str,
    get: Callable[[], requests.Response],
    retry: RetryPolicy,
    *,
    setting: str,
    url: str,
) -> tuple[int, Any] | Problem:
    """A plain HTTP read for preflight, retried like any call: the answer's HTTP status and JSON body
    (None if it is not JSON) to judge, or the problem that a lasting connection failure, 429 or 5xx
    makes (see :func:`unavailable`)."""
    reached = True

    def attempt() -> requests.Response:
        nonlocal reached
        try:
            response = get()
        except requests.RequestException as exc:
            error = connection_failed(f"{system} {what}", exc)
            reached = error.applied
            raise error from exc
        reached = True
        if response.status_code == 429 or response.status_code >= 500:
            message = f"{system} {what}: HTTP {response.status_code}"
            raise throttled_or_failed(message, response.status_code, response.headers.get("Retry-After"))
        return response

    try:
        response = retry.call(attempt)
    except RetriableError as exc:
        return unavailable(system, exc, reached=reached, setting=setting, url=url)
    try:
        body = response.json()
    except ValueError:
        body = None
    return response.status_code, body


def unknown_values(
    system: str,
    named: Iterable[Named],
    known: Mapping[str, str] | Collection[str],
    what: str,
    among: str,
    url: str = "",
) -> list[Problem]:
    """One problem per mapping line naming a value the system does not have, with a did-you-mean.

    ``known`` is the values, or a value -> label table where a label may be written by mistake for
    its value (ServiceNow's ``"In Progress"`` for ``"2"``).
    """
    labels = dict(known) if isinstance(known, Mapping) else {}
    by_label = {label.casefold(): value for value, label in labels.items()}
    found: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for item in named:
        if item.value in known or (item.value, item.at) in seen:
            continue
        seen.add((item.value, item.at))
        guess = by_label.get(item.value.casefold()) or closest(item.value, list(known))
        hint = ""
        if guess is not None:
            label = f" ({labels[guess]})" if labels.get(guess) not in (None, "", guess) else ""
            hint = f"; did you mean {guess!r}{label}?"
        message = f"{what} {item.value!r} does not exist {among}{hint}"
        found.append(Problem(system, message, f"{item.at} {item.key}", url))
    return found
