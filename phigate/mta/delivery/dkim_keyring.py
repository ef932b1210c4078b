"""The DKIM signer of a running delivery, kept in step with the rollover state.

``phigate dkim activate`` and ``retire`` change the rollover state in the store
(:mod:`phigate.mta.delivery.dkim_rotation`) while ``serve`` runs, on this node or another.
The keyring looks at that state at most every ``refresh_seconds`` and rebuilds its
:class:`~phigate.mta.delivery.dkim.DkimSigner` when it changed, so a rollover needs no
restart.

During the overlap (a retiring key whose ``retire_at`` has not passed) each message is
signed twice: with the active key on top and the retiring one below. A receiver whose
resolver still caches the absence of the new selector's record verifies the old
signature; one that sees the new record verifies the new. After ``retire_at``, or once
``phigate dkim retire`` ran, only the active key signs.

A state that cannot be read, or a key file that went missing, keeps the signer that works
(logged), rather than stopping delivery.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from phigate.clock import utcnow
from phigate.config import DkimSettings
from phigate.errors import ConfigError
from phigate.mta.delivery.dkim import DkimSigner, read_rsa_key
from phigate.mta.delivery.dkim_rotation import RotationState, load_state, with_active_key
from phigate.observability.logs import log_event

log = logging.getLogger("phigate.dkim")

REFRESH_SECONDS = 60.0


def in_overlap(state: RotationState, now: datetime) -> bool:
    """A retiring key is still to be signed with (its ``retire_at`` not reached)."""
    retiring = state.retiring
    if retiring is None or (state.active and retiring.selector == state.active.selector):
        return False
    return retiring.retire_at is None or now < datetime.fromisoformat(retiring.retire_at)


def build_signer(settings: DkimSettings, default_domain: str, state: RotationState,
                 now: datetime) -> DkimSigner | None:
    """The signer for ``state``: its active key (or ``[dkim]``'s), plus the retiring key
    during the overlap; None when signing is off. ConfigError for a key that cannot be
    used."""
    also = ([(state.retiring.selector,
              read_rsa_key("retiring DKIM key", state.retiring.key_file))]
            if state.retiring is not None and settings.key_file and in_overlap(state, now)
            else [])
    return DkimSigner.from_settings(with_active_key(settings, state), default_domain,
                                    also_rsa=also)


class DkimKeyring:
    """Signs with the keys the rollover state names, re-read every ``refresh_seconds``.

    Thread-safe: delivery workers sign concurrently; one of them refreshes at a time.
    """

    def __init__(self, settings: DkimSettings, default_domain: str, engine: Engine | None,
                 *, refresh_seconds: float = REFRESH_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = utcnow) -> None:
        self._settings, self._domain, self._engine = settings, default_domain, engine
        self._refresh_seconds = refresh_seconds
        self._clock, self._now = clock, now
        self._lock = threading.Lock()
        # At start a broken key is a ConfigError (serve refuses), as without a rollover.
        self._state = load_state(engine) if engine is not None else RotationState()
        self._overlap = in_overlap(self._state, now())
        self._signer = build_signer(settings, default_domain, self._state, now())
        self._checked = clock()

    @classmethod
    def from_settings(cls, settings: DkimSettings, default_domain: str,
                      engine: Engine | None) -> DkimKeyring | None:
        """None when signing is off (no ``[dkim] key_file``)."""
        if not settings.key_file:
            return None
        return cls(settings, default_domain, engine)

    def sign(self, message: bytes) -> bytes:
        """As :meth:`DkimSigner.sign`, with the keys of the current rollover state."""
        signer = self.current()
        if signer is None:  # cannot happen for a keyring made by from_settings
            raise ConfigError("[dkim] key_file: signing is off")
        return signer.sign(message)

    def current(self) -> DkimSigner | None:
        if self._clock() - self._checked < self._refresh_seconds:
            return self._signer
        with self._lock:
            if self._clock() - self._checked >= self._refresh_seconds:
                self._checked = self._clock()
                self._reload()
            return self._signer

    def _reload(self) -> None:
        if self._engine is None:
            return
        try:
            state = load_state(self._engine)
        except SQLAlchemyError as error:
            log_event(log, "dkim_keys_unreadable", level=logging.WARNING,
                      error=type(error).__name__)
            return
        now = self._now()
        overlap = in_overlap(state, now)
        if state == self._state and overlap == self._overlap:
            return
        try:
            signer = build_signer(self._settings, self._domain, state, now)
        except ConfigError as error:  # e.g. the new key file is not readable by us
            log_event(log, "dkim_keys_not_loaded", level=logging.ERROR, error=str(error))
            return
        self._state, self._overlap, self._signer = state, overlap, signer
        log_event(log, "dkim_keys_loaded",
                  selectors=",".join(signer.selectors) if signer else "")
