"""Callbacks: the outbox of signed events for platforms, and their delivery."""
