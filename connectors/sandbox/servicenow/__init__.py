"""ServiceNow sandbox: the Table API (incident, sn_si_incident, sys_journal_field, read-only sys_choice)
and the attachment API.

See :mod:`.query` for the encoded-query subset, :mod:`.records` for what a save does, and
:mod:`.render` for ``sysparm_display_value``. Switches (``POST /_sandbox/config`` or
:meth:`ServiceNowSandbox.configure`) are the fields of :class:`.records.Settings`.
"""

from connectors.sandbox.servicenow.app import ServiceNowSandbox

__all__ = ["ServiceNowSandbox"]
