"""Jira Cloud: the adapter the engine syncs tickets through."""
