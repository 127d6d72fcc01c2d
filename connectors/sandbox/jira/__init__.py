"""A local imitation of Jira Cloud's REST API v2 (plus the v3 search routes), for the ``jira`` library.

:class:`JiraSandbox` serves one project, :data:`JIRA_PROJECT`, with a configurable workflow
(:mod:`.workflow`), a small JQL (:mod:`.jql`) and an eventually consistent search (:mod:`.search`),
and a second, ``OPS``, that issues can be moved to (:meth:`JiraSandbox.move_issue`).
"""

from connectors.sandbox.jira.app import JiraSandbox
from connectors.sandbox.jira.catalog import JIRA_PROJECT
from connectors.sandbox.jira.workflow import CANCEL_FIRST_WORKFLOW, DEFAULT_WORKFLOW, Workflow

__all__ = ["CANCEL_FIRST_WORKFLOW", "DEFAULT_WORKFLOW", "JIRA_PROJECT", "JiraSandbox", "Workflow"]
