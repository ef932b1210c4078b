"""What the submission server is given: everything it needs, built once by ``serve``."""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from phigate.accounts.store import Account, AccountStore
from phigate.mta.delivery.throttle import KeyedRateLimiter
from phigate.mta.submission.auth import LockoutTracker
from phigate.mta.submission.sessions import OpenSession
from phigate.policy.engine import PolicyEngine
from phigate.queue.store import SqlQueueStore

if TYPE_CHECKING:
    from phigate.config import Settings
    from phigate.phi_scanner import ScannerPool


@dataclass
class SubmissionServices:
    """Everything the submission server needs, built once by ``serve``."""

    settings: Settings
    accounts: AccountStore
    store: SqlQueueStore
    policy: PolicyEngine
    lockouts: LockoutTracker
    scanner: ScannerPool | None = None
    trusted_networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = ()
    sessions_per_ip: Counter[str] = field(default_factory=Counter)
    #: The sessions open now (counted ones, not those refused at connect): the graceful stop
    #: says 421 to those still there when the grace period ends.
    open_sessions: set[OpenSession] = field(default_factory=set)
    #: Per-account submission rate ([submission] rate_per_minute_per_user); None: no limit.
    user_rates: KeyedRateLimiter | None = None
    clock: Callable[[], float] = time.monotonic

    def is_trusted(self, ip: str | None) -> bool:
        # Asked at every MAIL, RCPT and DATA: without trusted networks (the usual set-up)
        # there is nothing to parse the address for.
        if ip is None or not self.trusted_networks:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self.trusted_networks)

    def trusted_account(self) -> Account:
        """Mail relayed for a trusted network may use the practice's domain, not marketing."""
        return Account("trusted-network", (self.settings.server.domain,),
                       ("treatment", "operations"))


def peer_ip(peer: Any) -> str | None:
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None
