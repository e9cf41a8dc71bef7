"""Payments: what providers report (attempts, captures, refunds) and how it moves checkouts."""
