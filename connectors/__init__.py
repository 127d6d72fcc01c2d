"""sirsync: keeps AWS Security Incident Response cases and Jira / ServiceNow tickets in step."""

__version__ = "0.1.0"
