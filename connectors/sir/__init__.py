"""AWS Security Incident Response: the adapter and what sirsync knows of its schema."""
