"""The ``sirsync`` command line."""

from __future__ import annotations

import json
import signal
import sys
import threading
from types import FrameType
from typing import Annotated

import typer

from connectors import __version__

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


@app.command()
def demo() -> None:
    """Start the sandbox in-process, seed it, and show that all three APIs answer the real clients."""
    from connectors.demo import run_demo

    run_demo()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
