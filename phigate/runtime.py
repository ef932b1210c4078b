"""The store-side objects every command and service shares, built from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from sqlalchemy import Engine

from phigate.accounts.store import AccountStore
from phigate.audit.checkpoint import audit_log_for
from phigate.audit.log import AuditLog
from phigate.config import Settings
from phigate.queue.crypto import MasterKey
from phigate.queue.db import ensure_current, make_engine
from phigate.queue.store import SqlQueueStore


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    store: SqlQueueStore
    accounts: AccountStore
    audit: AuditLog

    @classmethod
    def open(cls, settings: Settings, *, check_schema: bool = True) -> Runtime:
        engine = make_engine(settings.storage.url)
        try:
            if check_schema:
                ensure_current(engine)
            master_key = MasterKey.load(settings.storage.master_key_file)
            return cls(
                settings=settings,
                engine=engine,
                store=SqlQueueStore(engine, master_key),
                accounts=AccountStore(engine),
                audit=audit_log_for(settings, engine),
            )
        except BaseException:
            # The schema check has already pooled a connection: close it now rather than
            # when the engine is garbage-collected (a PostgreSQL socket left to GC).
            engine.dispose()
            raise

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
