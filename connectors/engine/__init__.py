"""The sync engine: vendor-neutral, working on the canonical model through adapters."""

from connectors.engine.case_sync import CaseSync
from connectors.engine.cycle import Cycle, Target
from connectors.engine.report import Report

__all__ = ["CaseSync", "Cycle", "Report", "Target"]
