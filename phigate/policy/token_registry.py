"""The database side of opaque tokens: ``issued_tokens`` rows and the legacy cut-off."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from phigate.config import Settings
from phigate.policy.tokens import TokenClaims, TokenSigner
from phigate.queue.db import read_only, writer_turn
from phigate.queue.policy_models import IssuedToken, MetaValue

LEGACY_KEY = "legacy_tokens_until"


class SqlTokenRegistry:
    """:class:`phigate.policy.tokens.TokenRegistry` over the queue database."""

    def __init__(self, engine: Engine) -> None:
        self._writer_turn = writer_turn(engine)
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._readers = sessionmaker(read_only(engine), expire_on_commit=False)

    def record(self, token_id: str, claims: TokenClaims, issued_at: datetime,
               expires_at: datetime) -> None:
        try:
            with self._writer_turn, self._sessions.begin() as session:
                row = session.get(IssuedToken, token_id)
                if row is None:
                    session.add(IssuedToken(
                        id=token_id, kind=claims.kind, recipient=claims.recipient,
                        scope=claims.scope, campaign_id=claims.campaign,
                        message_id=claims.message_id, issued_at=issued_at,
                        expires_at=expires_at))
                elif row.expires_at < expires_at:
                    row.issued_at, row.expires_at = issued_at, expires_at
        except IntegrityError:
            pass  # another worker (or node) recorded the same id at the same moment

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


def signer_for(settings: Settings, engine: Engine) -> TokenSigner | None:
    """The production signer: ``[policy] token_key_file`` with the database registry;
    None when no key is configured."""
    path = settings.policy.token_key_file
    if not path:
        return None
    return TokenSigner.from_key_file(Path(path), SqlTokenRegistry(engine))
