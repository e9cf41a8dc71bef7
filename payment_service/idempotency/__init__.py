"""Idempotency keys: a retried request replays the first answer instead of acting twice."""
