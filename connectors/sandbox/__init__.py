"""Local imitations of AWS Security Incident Response, Jira Cloud and ServiceNow, served over HTTP.

Import :class:`Sandbox` from :mod:`connectors.sandbox.runner`; this package does nothing on import.
"""
