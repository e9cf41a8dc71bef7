"""A receiver SeenStore backed by the ledger's processed callbacks (survives restarts)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from platform_client.ledger.models import ProcessedCallback


class LedgerSeenStore:
    """``seen``: the id is in the ledger's processed callbacks. ``remember``: add it unless it
    is there; the ledger's handler already wrote it in the transaction of its effect, so this
    is normally a no-op, and a concurrent insert of the same id is not an error."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def seen(self, event_id: str) -> bool:
        with self._sessions() as session:
            found = session.scalar(
                select(ProcessedCallback.webhook_id).where(ProcessedCallback.webhook_id == event_id)
            )
            return found is not None

    def remember(self, event_id: str) -> None:
        if self.seen(event_id):
            return
        try:
            with self._sessions.begin() as session:
                session.add(ProcessedCallback(webhook_id=event_id, type=None))
        except IntegrityError:
            pass  # remembered meanwhile by another delivery: the same outcome
