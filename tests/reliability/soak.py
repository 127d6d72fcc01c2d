"""Both reliability proofs from the command line: ``python -m tests.reliability.soak [--full]``.

Without ``--full`` it runs the reduced forms CI runs; ``make soak`` runs ``--full``: 50 cases killed at
least 30 times, and 200 cycles under faults. Each runs with the state in SQLite and then in DynamoDB
(moto's server on loopback), unless ``--state`` names one. It prints the figures at the end and exits 1
if a proof failed, with the seed to repeat it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

from connectors.sandbox.runner import Sandbox
from tests.dynamo import moto_server
from tests.reliability.backends import BACKENDS, SQLITE, StateBackend
from tests.reliability.crash import CrashPlan, prove_crash_consistency
from tests.reliability.faults import SoakPlan, prove_fault_soak

REDUCED = (CrashPlan(cases=8, kills=6), SoakPlan(cycles=30, initial_cases=4))
FULL = (CrashPlan(cases=50, kills=30), SoakPlan(cycles=200, initial_cases=8))


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.soak", description=__doc__)
    parser.add_argument("--full", action="store_true", help="the full proofs (default: the reduced CI form)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the scenario, edits, kills and faults")
    parser.add_argument("--only", choices=("crash", "faults"), help="run one proof only")
    parser.add_argument("--cases", type=int, help="crash consistency: cases (overrides the form)")
    parser.add_argument("--kills", type=int, help="crash consistency: SIGKILLs (overrides the form)")
    parser.add_argument("--cycles", type=int, help="fault soak: cycles under faults (overrides the form)")
    parser.add_argument(
        "--state",
        choices=(*BACKENDS, "both"),
        default="both",
        help="where sirsync keeps its state: SQLite, DynamoDB (moto's server on loopback), or each in turn",
    )
    return parser.parse_args(argv)


@contextmanager
def _backends(choice: str) -> Iterator[list[StateBackend]]:
    """The state backends to prove, with a DynamoDB server running while it is needed."""
    with ExitStack() as stack:
        backends = [SQLITE] if choice in ("sqlite", "both") else []
        if choice in ("dynamodb", "both"):
            backends.append(StateBackend("dynamodb", stack.enter_context(moto_server())))
        yield backends


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    crash_plan, soak_plan = FULL if args.full else REDUCED
    crash_plan = CrashPlan(
        cases=args.cases or crash_plan.cases, kills=args.kills or crash_plan.kills, seed=args.seed
    )
    soak_plan = SoakPlan(
        cycles=args.cycles or soak_plan.cycles, initial_cases=soak_plan.initial_cases, seed=args.seed
    )
    started = time.monotonic()
    figures: list[str] = []
    failed = False
    with (
        Sandbox() as sandbox,
        tempfile.TemporaryDirectory(prefix="sirsync-soak-") as workdir,
        _backends(args.state) as backends,
    ):
        for backend in backends:
            where = Path(workdir) / backend.kind
            where.mkdir()
            if args.only in (None, "crash"):
                crashes = replace(crash_plan, state=backend)
                _say(f"crash consistency ({backend.kind}): {crashes.cases} cases, {crashes.kills} kills")
                crash = prove_crash_consistency(sandbox, where, crashes)
                figures.append(crash.figures())
                if not crash.ok:
                    failed = True
                    _say(crash.report())
            if args.only in (None, "faults"):
                faults = replace(soak_plan, state=backend)
                _say(f"fault soak ({backend.kind}): {faults.cycles} cycles, rate {faults.rate}")
                soak = prove_fault_soak(sandbox, where, faults, progress=_say)
                figures.append(soak.figures())
                if not soak.ok:
                    failed = True
                    _say(soak.report())
    print("\n".join(figures))
    verdict = "FAILED" if failed else "passed"
    print(f"reliability proofs {verdict} (seed {args.seed}, {time.monotonic() - started:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
