"""The ``sirsync`` command line."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from functools import partial
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from connectors import __version__

if TYPE_CHECKING:
    from connectors.settings import Settings

app = typer.Typer(
    name="sirsync",
    help="Keep AWS Security Incident Response cases and Jira / ServiceNow tickets in step.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"sirsync {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version and exit."),
    ] = False,
) -> None:
    """Keep AWS Security Incident Response cases and Jira / ServiceNow tickets in step."""


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Loopback address to listen on.")] = "127.0.0.1",
    port_base: Annotated[
        int, typer.Option(help="First of three consecutive ports (SIR, Jira, ServiceNow); 0 picks free ones.")
    ] = 0,
    latency_ms: Annotated[int, typer.Option(min=0, help="Latency added to every API request.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed for generated ids and injected faults.")] = 0,
) -> None:
    """Serve the SIR, Jira and ServiceNow imitations until interrupted.

    Prints exactly one JSON line with the three URLs and the credentials to use, then serves until
    SIGINT or SIGTERM.
    """
    from connectors.sandbox.runner import Sandbox

    try:
        running = Sandbox(host, port_base, latency_ms=latency_ms, seed=seed)
    except (OSError, ValueError) as exc:
        typer.echo(f"sirsync sandbox: cannot listen on {host}: {exc}", err=True)
        raise typer.Exit(2) from exc

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with running:
        sys.stdout.write(json.dumps(running.info()) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass


def _load_settings(config: Path | None) -> Settings:
    from pydantic import ValidationError

    from connectors.settings import Settings, setting_problem, unknown_settings

    if config is not None:
        if not config.is_file():
            _fail(f"config file {config} does not exist")
        os.environ["SIRSYNC_CONFIG"] = str(config)
    unknown = unknown_settings(os.environ)
    if unknown:
        for problem in unknown[:-1]:
            typer.echo(f"sirsync: {problem}", err=True)
        _fail(unknown[-1])
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors()[:-1]:
            typer.echo(f"sirsync: {setting_problem(error)}", err=True)
        _fail(setting_problem(exc.errors()[-1]))


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"sirsync: {message}", err=True)
    raise typer.Exit(code)


ConfigOption = Annotated[
    Path | None, typer.Option(envvar="SIRSYNC_CONFIG", help="YAML file with the same keys as SIRSYNC_*.")
]


@app.command()
def sync(
    once: Annotated[
        bool, typer.Option("--once", help="Run one cycle and exit (1 if a case failed).")
    ] = False,
    every: Annotated[
        float | None, typer.Option(min=1, help="Run a cycle every N seconds until interrupted.")
    ] = None,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="If another runner holds the lease, wait for it instead of exiting."),
    ] = False,
    log_format: Annotated[
        str | None,
        typer.Option("--log-format", help="text or json (one object per line; each cycle's counts as JSON)."),
    ] = None,
    case: Annotated[
        list[str] | None,
        typer.Option(
            "--case",
            help="With --once: sync only this SIR case (repeatable), from fresh reads, with every target.",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Sync SIR cases with the configured targets: one cycle (--once) or one every N seconds (--every).

    Exit codes: 0 all synced and nothing quarantined; 1 a case or a system failed this cycle (see
    stderr); 2 bad settings, mapping, state file or credentials; 3 another runner holds the lease;
    4 cases are quarantined (listed on stderr, each with the command that helps). SIGINT or SIGTERM
    finishes the cases under way and exits 130 or 143.
    """
    from connectors import jobs
    from connectors.errors import FatalError
    from connectors.mapping import MappingError
    from connectors.state import StateError

    if once == (every is not None):
        _fail("give exactly one of --once or --every N")
    if case and not once:
        _fail("--case syncs the named cases once: use it with --once")
    if log_format is not None:
        if log_format not in ("text", "json"):
            _fail(f"--log-format {log_format!r}: use text or json")
        os.environ["SIRSYNC_LOG_FORMAT"] = log_format  # the option wins over the setting
    settings = _load_settings(config)
    jobs.configure_logging(settings.log_level, settings.log_format, settings.secret_values())
    stop = jobs.StopRequest()
    stop.install()
    echo_err = partial(typer.echo, err=True)
    try:
        options = jobs.SyncOptions(
            once, every, wait, progress=sys.stderr.isatty(), cases=tuple(dict.fromkeys(case or ()))
        )
        code = jobs.run_sync(settings, options, typer.echo, echo_err, stop)
    except (MappingError, StateError, FatalError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:  # a second signal: stop at once; every write is safe to redo
        echo_err("sirsync: stopped at once by a second signal; the next run picks up where this one was")
        code = 128 + (stop.signum or signal.SIGINT)
    raise typer.Exit(code)


@app.command()
def serve(config: ConfigOption = None) -> None:
    """Sync a case as soon as Jira, ServiceNow or SIR says it changed, and poll as a safety net.

    Listens on SIRSYNC_SERVE__HOST:SIRSYNC_SERVE__PORT for POST /webhooks/jira (a Jira webhook signed
    with SIRSYNC_SERVE__JIRA_SECRET), POST /webhooks/servicenow (a business rule's REST message
    carrying SIRSYNC_SERVE__SERVICENOW_SECRET in X-Sirsync-Token) and POST /events/sir (SIR's
    EventBridge events through an API destination, with SIRSYNC_SERVE__SIR_SECRET as its API key in
    X-Sirsync-Token); a route whose secret is not set is off. GET /healthz answers 200 (503 when the
    state file cannot be read). Each request only names a case, which is then synced with every target
    from fresh reads. A cycle runs every SIRSYNC_SERVE__POLL_SECONDS (900; 0: none) holding the runner
    lease, as `sync --every` does.

    Exit codes: 2 bad settings, mapping, state file or credentials, or a port in use; 3 another runner
    holds the lease; SIGINT or SIGTERM finishes the syncs under way and exits 130 or 143.
    """
    from connectors import jobs
    from connectors import serve as serving
    from connectors.errors import FatalError
    from connectors.mapping import MappingError
    from connectors.state import StateError

    settings = _load_settings(config)
    jobs.configure_logging(settings.log_level, settings.log_format, settings.secret_values())
    stop = jobs.StopRequest()
    stop.install()
    try:
        code = serving.run_serve(settings, typer.echo, partial(typer.echo, err=True), stop)
    except (MappingError, StateError, FatalError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:  # a second signal: stop at once; every write is safe to redo
        typer.echo("sirsync: stopped at once by a second signal", err=True)
        code = 128 + (stop.signum or signal.SIGINT)
    raise typer.Exit(code)


@app.command()
def status(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object with all of it, for scripts.")
    ] = False,
    exit_code: Annotated[
        bool,
        typer.Option(
            "--exit-code",
            help="Exit 4 if a case is quarantined, 1 if one is failing but not quarantined, else 0.",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Show what the state file knows: links, cursors, the runner's lease, failing and quarantined cases.

    Reads the state file alone; no system is contacted. With --exit-code the exit code is what `sync`
    would report for these cases (0 all synced, 1 some case failing, 4 cases quarantined), for health
    checks; 2 means the settings or the state file are wrong.
    """
    from connectors import admin
    from connectors.state import StateError

    settings = _load_settings(config)
    try:
        code = admin.show_status(settings, typer.echo, as_json=as_json, exit_code=exit_code)
    except StateError as exc:
        _fail(str(exc))
    raise typer.Exit(code)


@app.command()
def retry(
    case_id: Annotated[str | None, typer.Argument(help="The SIR case id to release.")] = None,
    every_case: Annotated[bool, typer.Option("--all", help="Release every quarantined case.")] = False,
    target: Annotated[str | None, typer.Option(help="Only for this target (jira, servicenow).")] = None,
    recreate: Annotated[
        bool,
        typer.Option(
            "--recreate",
            help="The case's ticket was deleted: once the target confirms it is gone, forget the link so "
            "the next cycle creates a new ticket. Needs --target.",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Release quarantined cases so the next cycle syncs them again; says what it did for each.

    Exit codes: 0 done (or --all with nothing quarantined), 1 nothing done for the case named (unknown,
    not quarantined, or with --recreate a ticket that still exists or cannot be looked up), 2 bad
    settings, arguments or state file.
    """
    from connectors import admin
    from connectors.state import StateError

    settings = _load_settings(config)
    echo_err = partial(typer.echo, err=True)
    try:
        code = admin.retry(settings, case_id, every_case, target, recreate, typer.echo, echo_err)
    except StateError as exc:
        _fail(str(exc))
    raise typer.Exit(code)


@app.command()
def validate(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="[FILE]...", help="Mapping files to check; default: the settings and their mappings."
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Check the settings and every mapping offline: each problem with its file, line, field and a hint.

    Without FILE, checks what `sync` would use: the SIRSYNC_* settings (and the config file) and the
    mapping of each configured target. With FILE..., checks those mapping files. Nothing is contacted
    (`sirsync doctor` checks the systems). Exit codes: 0 valid, 2 a problem was found.
    """
    from connectors.validate import validate as check

    if config is not None:
        if not config.is_file():
            _fail(f"config file {config} does not exist")
        os.environ["SIRSYNC_CONFIG"] = str(config)
    raise typer.Exit(check(files or [], typer.echo, partial(typer.echo, err=True)))


@app.command()
def plan(
    case: Annotated[
        list[str] | None, typer.Option("--case", help="Plan only this SIR case (repeatable).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object with every change, for scripts.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Show what the next sync would do, writing nothing: per case, each ticket it would create, each
    field it would change (before and after), each status it would move and each comment it would post,
    on every side.

    It reads every system and runs the sync as `sync --once` would, with each write caught before it
    is sent; the state file is read from a copy and left as it is. Exit codes: 0 planned, 1 a case or
    a system failed while planning (listed), 2 bad settings, mapping or credentials.
    """
    from connectors import jobs
    from connectors.errors import FatalError
    from connectors.mapping import MappingError
    from connectors.plan import run_plan
    from connectors.state import StateError

    settings = _load_settings(config)
    jobs.configure_logging("WARNING", settings.log_format, settings.secret_values())
    try:
        code = run_plan(
            settings,
            tuple(dict.fromkeys(case or ())),
            typer.echo,
            partial(typer.echo, err=True),
            as_json=as_json,
        )
    except (MappingError, StateError, FatalError) as exc:
        _fail(str(exc))
    raise typer.Exit(code)


@app.command()
def history(
    case_id: Annotated[str, typer.Argument(help="The SIR case id.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object with every action, for scripts.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Every action taken for one case, on every side, in time order, from the state's action log.

    Each line: when, the target, where it wrote (SIR, the target, both, or - for an event such as a
    conflict, an error or a quarantine), the action and what it names. Reads the state alone; no
    system is contacted. Exit codes: 0 shown (also when nothing is recorded), 2 bad settings or state.
    """
    from connectors.history import show_history
    from connectors.state import StateError

    settings = _load_settings(config)
    try:
        code = show_history(settings, case_id, typer.echo, as_json=as_json)
    except StateError as exc:
        _fail(str(exc))
    raise typer.Exit(code)


@app.command()
def doctor(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object with every check, for scripts.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Check every configured system before the first sync, writing nothing: one row per check.

    SIR: the credentials, and each security-ir action the mappings need (asked of a case that does not
    exist, so that no probe writes). Jira: the site, credentials, project, issue type, statuses and the
    paths to them, values, fields, comment visibility and the user's time zone. ServiceNow: the site,
    credentials, table, choice values and read rights on journal entries. Each row passes, warns or
    fails and says what to fix.

    Exit codes: 0 nothing failed (warnings allowed), 1 a check failed, 2 the settings cannot be read.
    """
    from connectors import doctor as checks

    settings = _load_settings(config)
    rows = checks.examine(settings)
    if as_json:
        typer.echo(json.dumps(checks.as_json(rows), indent=2))
    else:
        typer.echo(checks.render(rows))
    raise typer.Exit(checks.exit_code(rows))


@app.command()
def demo() -> None:
    """Run real sync cycles between SIR, Jira and ServiceNow in the built-in sandbox, and show them.

    Starts the sandbox in-process and seeds three SIR cases (one opened by AWS, with AWS comments, an
    AWS status change, a question for the customer and the investigative agent's work; one with an
    evidence file). Syncs them to Jira and ServiceNow, acts as a responder in Jira (a comment, a file, a
    transition, an edit) and in
    ServiceNow (a comment), syncs again, and shows all three systems, the comment threads and where the
    agent's work landed, then an idle cycle that writes nothing. The state lives in a temporary
    directory; nothing outside loopback is contacted.
    """
    from connectors.demo import run_demo

    run_demo()


mappings_app = typer.Typer(
    name="mappings",
    help="The mapping files shipped with sirsync, and copies of them for an admin to edit.",
    no_args_is_help=True,
)
app.add_typer(mappings_app)


@mappings_app.command("list")
def mappings_list() -> None:
    """Name the shipped mapping files and what each is for."""
    from connectors.mappings import SHIPPED, shipped

    width = max(len(mapping.name) for mapping in SHIPPED)
    for mapping in SHIPPED:
        typer.echo(f"{mapping.name:<{width}}  {mapping.purpose}")
    typer.echo(f"\nThe format: {shipped('README.md')}. To change one: sirsync mappings export DIR.")


@mappings_app.command("export")
def mappings_export(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Where to write the copies.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite files already there.")] = False,
) -> None:
    """Write copies of the shipped mappings into DIR, to edit and point sirsync at."""
    from connectors.mapping.jsonschema import SCHEMA_FILE
    from connectors.mappings import SHIPPED, shipped

    directory = directory.absolute()
    targets = [(mapping, directory / mapping.name) for mapping in SHIPPED]
    schema_file = directory / SCHEMA_FILE  # what the copies' yaml-language-server line names
    if not force:
        for target in [target for _, target in targets] + [schema_file]:
            if target.exists():
                _fail(f"{target} already exists; use --force to overwrite it")
    if directory.exists() and not directory.is_dir():
        _fail(f"{directory} is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"cannot create {directory}: {exc.strerror or exc}")
    for target in [target for _, target in targets] + [schema_file]:
        try:
            target.write_bytes(shipped(target.name).read_bytes())
        except OSError as exc:
            _fail(f"cannot write {target}: {exc.strerror or exc}")
        typer.echo(f"wrote {target}")
    typer.echo("Edit a copy, then point sirsync at it:")
    for mapping, target in targets:
        typer.echo(f"  {mapping.setting}={target}  # {mapping.purpose}")


@mappings_app.command("schema")
def mappings_schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write it to this file instead of printing it.")
    ] = None,
) -> None:
    """Print the mapping files' JSON Schema, for editors that validate and complete YAML.

    The shipped mappings (and the copies `mappings export` writes, with the schema beside them) start
    with a `# yaml-language-server: $schema=...` line that editors with a YAML language server follow.
    """
    import json

    from connectors.mapping.jsonschema import mapping_schema

    text = json.dumps(mapping_schema(), indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror or exc}")
    typer.echo(f"wrote {output}")


state_app = typer.Typer(
    name="state",
    help="The state store (SIRSYNC_STATE_BACKEND): create it before the first sync, or check it.",
    no_args_is_help=True,
)
app.add_typer(state_app)


@state_app.command("init")
def state_init(config: ConfigOption = None) -> None:
    """Create the state store the settings name, or check the one there is; safe to run again.

    DynamoDB: creates the table SIRSYNC_DYNAMODB__TABLE (keys, indexes, on-demand billing), turns on
    TTL for the action log and waits until the table is active; a table already there is checked
    against that schema. SQLite: creates the state file SIRSYNC_STATE_PATH.

    Exit codes: 0 ready (created, or already there and as sirsync needs it); 2 bad settings, a store
    that cannot be reached or is refused, or a table whose schema differs (each difference named).
    """
    from connectors.state import StateError, describe_state
    from connectors.state.init import init_state

    settings = _load_settings(config)
    try:
        outcome = init_state(settings, typer.echo)
    except StateError as exc:
        _fail(str(exc))
    for note in outcome.notes:
        typer.echo(f"note: {note}")
    if outcome.differences:
        for difference in outcome.differences:
            typer.echo(f"  differs: {difference}", err=True)
        _fail(
            f"the {describe_state(settings)} exists but does not match the schema sirsync needs (above); "
            "point SIRSYNC_DYNAMODB__TABLE at a new name for `sirsync state init` to create, or recreate "
            "this table"
        )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
