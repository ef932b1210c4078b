"""DKIM key rollover state: which key signs, which waits for DNS, which is being retired.

The state is one JSON value in the ``meta`` table, so every node signs with the same key:

- ``pending``: a new key and selector written by ``phigate dkim rotate``; not used until its
  record is served by DNS (``phigate dkim activate`` checks, or ``--force``);
- ``active``: the key that signs (absent: the one ``[dkim]`` names);
- ``retiring``: the previous key, kept published until ``retire_at``
  (``[dkim] retire_after_days``), then dropped by ``phigate dkim retire``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from phigate.config import DkimSettings
from phigate.queue.policy_models import MetaValue

META_KEY = "dkim_keys"


@dataclass(frozen=True)
class DkimKey:
    selector: str
    key_file: str
    since: str  # ISO time the key entered its current role
    retire_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RotationState:
    active: DkimKey | None = None
    pending: DkimKey | None = None
    retiring: DkimKey | None = None

    def as_dict(self) -> dict[str, Any]:
        return {role: key.as_dict() if key else None
                for role, key in (("active", self.active), ("pending", self.pending),
                                  ("retiring", self.retiring))}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RotationState:
        return cls(**{role: DkimKey(**data[role]) if data.get(role) else None
                      for role in ("active", "pending", "retiring")})


def load_state(engine: Engine) -> RotationState:
    with Session(engine) as session:
        row = session.get(MetaValue, META_KEY)
        return RotationState.from_dict(json.loads(row.value)) if row else RotationState()


def save_state(session: Session, state: RotationState) -> None:
    """Write ``state`` inside the caller's transaction (with its audit entry)."""
    row = session.get(MetaValue, META_KEY)
    value = json.dumps(state.as_dict(), sort_keys=True)
    if row is None:
        session.add(MetaValue(key=META_KEY, value=value))
    else:
        row.value = value


def effective_dkim(settings: DkimSettings, engine: Engine | None) -> DkimSettings:
    """``[dkim]`` with the active key of a rollover in place of the configured one."""
    if engine is None or not settings.key_file:
        return settings
    return with_active_key(settings, load_state(engine))


def with_active_key(settings: DkimSettings, state: RotationState) -> DkimSettings:
    """``[dkim]`` with the active key of ``state`` (if any) in place of the configured one."""
    if state.active is None or not settings.key_file:
        return settings
    return dataclasses.replace(settings, selector=state.active.selector,
                               key_file=state.active.key_file)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
