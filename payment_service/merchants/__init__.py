"""Merchants: the platform tenants, their API keys, signing secrets and allowlists."""
