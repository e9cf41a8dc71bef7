"""Checkouts: the platform's request to be paid for one reservation, and its life."""
