"""ServiceNow: the adapter the engine syncs incidents and security incidents through."""
