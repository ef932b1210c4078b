"""The database side of opaque tokens: ``issued_tokens`` rows and the legacy cut-off."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, Table, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from phigate.config import Settings
from phigate.policy.tokens import TokenClaims, TokenRecord, TokenSigner
from phigate.queue.db import read_only, writer_turn
from phigate.queue.group_commit import GroupCommit
from phigate.queue.policy_models import IssuedToken, MetaValue

LEGACY_KEY = "legacy_tokens_until"
_TOKENS = cast(Table, IssuedToken.__table__)


class SqlTokenRegistry:
    """:class:`phigate.policy.tokens.TokenRegistry` over the queue database.

    Delivery records a VERP token per recipient before the message leaves, from many
    delivery threads at once: the records waiting for the write lock go in one
    transaction (:class:`GroupCommit`, one fsync), each ``record`` returning only once its
    row is committed, as a plain-SQL upsert (the ORM's get, add and flush cost more CPU
    than the database did).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._engine = engine
        self._writer_turn = writer_turn(engine)
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._readers = sessionmaker(read_only(engine), expire_on_commit=False)
        self._records: GroupCommit[dict[str, Any], None] = GroupCommit(self._commit_records)

    def record(self, token_id: str, claims: TokenClaims, issued_at: datetime,
               expires_at: datetime) -> None:
        self._records.submit(_row(token_id, claims, issued_at, expires_at))

    def record_in(self, session: Session, records: Sequence[TokenRecord]) -> None:
        """Write ``records`` in the caller's transaction (a writing one, holding the
        writer turn), e.g. delivery's claim: no transaction of their own."""
        if records:
            self._upsert(session, [_row(r.token_id, r.claims, r.issued_at, r.expires_at)
                                   for r in records])

    def _commit_records(self, rows: Sequence[dict[str, Any]]) -> list[None]:
        with self._writer_turn, self._sessions.begin() as session:
            self._upsert(session, rows)
        return [None] * len(rows)

    def _upsert(self, session: Session, rows: Sequence[dict[str, Any]]) -> None:
        """Insert each id, or extend the expiry of a known one (never shorten it); safe
        against another worker or node recording the same id at the same moment."""
        latest: dict[str, dict[str, Any]] = {}
        for row in rows:  # one row per id: an upsert may not touch a row twice
            known = latest.get(row["id"])
            if known is None or known["expires_at"] < row["expires_at"]:
                latest[row["id"]] = row
        upsert = _insert_for(self._engine)(_TOKENS)
        statement = upsert.on_conflict_do_update(
            index_elements=[_TOKENS.c.id],
            set_={"issued_at": upsert.excluded.issued_at,
                  "expires_at": upsert.excluded.expires_at},
            where=_TOKENS.c.expires_at < upsert.excluded.expires_at)
        session.execute(statement, list(latest.values()))

    def lookup(self, token_id: str) -> tuple[TokenClaims, datetime] | None:
        with self._readers() as session:
            row = session.get(IssuedToken, token_id)
            if row is None:
                return None
            claims = TokenClaims(kind=row.kind, recipient=row.recipient, scope=row.scope,
                                 campaign=row.campaign_id, message_id=row.message_id)
            return claims, row.expires_at

    def legacy_until(self) -> datetime | None:
        with self._readers() as session:
            row = session.get(MetaValue, LEGACY_KEY)
            return None if row is None else datetime.fromisoformat(row.value)

    def purge_expired(self, now: datetime) -> int:
        """Forget tokens that expired before ``now``; the number removed."""
        with self._writer_turn, self._sessions.begin() as session:
            result = session.execute(delete(IssuedToken).where(IssuedToken.expires_at < now))
            return int(getattr(result, "rowcount", 0) or 0)


def _row(token_id: str, claims: TokenClaims, issued_at: datetime,
         expires_at: datetime) -> dict[str, Any]:
    return {"id": token_id, "kind": claims.kind, "recipient": claims.recipient,
            "scope": claims.scope, "campaign_id": claims.campaign,
            "message_id": claims.message_id, "issued_at": issued_at, "expires_at": expires_at}


def signer_for(settings: Settings, engine: Engine) -> TokenSigner | None:
    """The production signer: ``[policy] token_key_file`` with the database registry;
    None when no key is configured."""
    path = settings.policy.token_key_file
    if not path:
        return None
    return TokenSigner.from_key_file(Path(path), SqlTokenRegistry(engine))


def _insert_for(engine: Engine) -> Callable[[Table], Any]:
    """The dialect's INSERT, which offers ON CONFLICT (both backends phigate supports)."""
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
