"""AUTH lockouts that stop guessing without letting a guesser lock the real client out.

Shared by SMTP AUTH and the HTTP message-status endpoint, and kept in the database (table
``auth_failures``) so that every process and node sees the same lockouts and ``phigate user
unlock`` and the TUI can show and clear them from their own processes.

* **Refusal, per (user name, client IP).** After ``max_failures`` failed attempts for one
  name from one address, that pair is refused for a while; each further lockout of the
  pair doubles (up to a day). While refused, AUTH gets a temporary failure without a
  password check, so the guesser learns nothing and the scrypt work is not spent. Guesses
  from another address never refuse the account's own client (issue 14 item 5: five wrong
  guesses from elsewhere used to lock the EHR out).
* **Tarpit, per user name.** Failures for a name from all addresses count too; past the
  higher ``tarpit_failures`` every further attempt for the name is answered slowly
  (doubling, up to :data:`MAX_TARPIT_SECONDS`), never refused. An address that logged in
  as that name in the last day is not slowed: the practice's application keeps its pace.
* **Never locked.** Addresses in ``[submission] never_lock_networks`` (the practice's
  application servers) are neither refused nor slowed, and their failures do not count.

Counts are kept for a day after the last failure. Names are matched exactly, as the
account store matches them (``EHR`` is not ``ehr``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from phigate.clock import utcnow
from phigate.observability.logs import log_event
from phigate.observability.metrics import METRICS
from phigate.queue.db import read_only
from phigate.queue.models import AuthFailures

if TYPE_CHECKING:
    from phigate.accounts.store import Account, AccountStore
    from phigate.config import Settings

log = logging.getLogger("phigate.auth")

MAX_LOCKOUT_SECONDS = 24 * 3600
#: The longest a tarpitted answer waits: well under the 5-minute SMTP command timeout.
MAX_TARPIT_SECONDS = 16.0
#: How long failures are remembered after the last one, and a success exempts from the tarpit.
MEMORY = timedelta(days=1)
#: A success is written at most this often per (name, IP): logins stay read-only.
SUCCESS_REFRESH = timedelta(hours=1)
#: Every so many failures, rows with nothing left to remember are deleted.
PRUNE_EVERY = 256
#: The row for a name from every address.
ALL_ADDRESSES = ""
#: Stored names are cut to the column's width (no account name is longer).
_NAME_WIDTH = 255

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Admission:
    """What to do with an attempt before its password is checked."""

    #: Seconds left on a lockout of this (name, IP): refuse without checking if above 0.
    locked_for: float = 0.0
    #: Seconds to wait before answering (the name's tarpit); 0 for no wait.
    delay: float = 0.0


@dataclass(frozen=True)
class Failure:
    """What one counted failure started (each is reported once, by the failure that
    crossed its threshold)."""

    #: This (name, IP) pair is refused from now on (``auth_max_failures`` reached).
    locked_out: bool = False
    #: The name's attempts from every address are slowed from now on
    #: (``auth_tarpit_failures`` reached).
    tarpit_started: bool = False


@dataclass(frozen=True)
class Lockout:
    """A (name, client IP) pair refused now, for ``phigate user lockouts`` and the TUI."""

    user: str
    client_ip: str
    locked_until: datetime
    lockouts: int


@dataclass(frozen=True)
class Tarpit:
    """A name whose attempts are slowed now (failures from every address)."""

    user: str
    failures: int
    last_failure_at: datetime


def parse_networks(values: Sequence[str]) -> list[Network]:
    return [ipaddress.ip_network(value, strict=False) for value in values]


def client_key(ip: str) -> str:
    """The stored form of a client address: IPv4-mapped IPv6 as IPv4, others unchanged."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip[:64]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def name_key(user: str) -> str:
    # PostgreSQL refuses NUL in text; no account name holds one (or is this long).
    return user[:_NAME_WIDTH].replace("\0", "\ufffd")


class LockoutTracker:
    """Failed logins and lockouts, in the database (see the module docstring).

    The methods block (they use the database): call them off the event loop, or use
    :func:`authenticate`, which does.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_failures: int,
        base_lockout_seconds: float,
        tarpit_failures: int = 20,
        never_lock_networks: Sequence[Network] = (),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.max_failures = max(1, max_failures)
        self.base_lockout_seconds = base_lockout_seconds
        self.tarpit_failures = max(self.max_failures, tarpit_failures)
        self.never_lock_networks = tuple(never_lock_networks)
        self._clock = clock
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._readers = sessionmaker(read_only(engine), expire_on_commit=False)
        #: This process's counts, for tests and logs.
        self.failures_total = 0
        self.lockouts_total = 0

    def never_locked(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(client_key(ip))
        except ValueError:
            return False
        return any(address in network for network in self.never_lock_networks)

    # -- the login path ------------------------------------------------------------------

    def admit(self, ip: str, user: str) -> Admission:
        """Whether this attempt is refused, or how long to wait before answering it."""
        if self.never_locked(ip):
            return Admission()
        now = self._clock()
        ip, user = client_key(ip), name_key(user)
        with self._readers.begin() as session:
            rows = {row.client_ip: row for row in session.scalars(
                select(AuthFailures).where(AuthFailures.username == user,
                                           AuthFailures.client_ip.in_((ip, ALL_ADDRESSES))))}
        pair, everywhere = rows.get(ip), rows.get(ALL_ADDRESSES)
        if pair is not None and pair.locked_until is not None and pair.locked_until > now:
            return Admission(locked_for=(pair.locked_until - now).total_seconds())
        if pair is not None and _recent(pair.last_success_at, now):
            return Admission()  # this address logged in lately: never slowed
        if everywhere is None or not _recent(everywhere.last_failure_at, now):
            return Admission()
        excess = everywhere.failures - self.tarpit_failures
        if excess < 0:
            return Admission()
        return Admission(delay=min(MAX_TARPIT_SECONDS, 2.0 ** min(excess, 10)))

    def failure(self, ip: str, user: str) -> Failure:
        """Count a failed attempt: whether it started a lockout of this (name, IP), and
        whether it brought the name to its tarpit."""
        self.failures_total += 1
        if self.never_locked(ip):
            return Failure()
        if self.failures_total % PRUNE_EVERY == 0:
            self.prune()
        now = self._clock()
        ip, user = client_key(ip), name_key(user)
        with self._sessions.begin() as session:
            pair = _row_for_update(session, user, ip)
            everywhere = _row_for_update(session, user, ALL_ADDRESSES)
            for row in (pair, everywhere):
                if not _recent(row.last_failure_at, now):  # a day without failures
                    row.failures, row.lockouts = 0, 0
                row.failures += 1
                row.last_failure_at = now
            # Once per crossing: the next attempt for the name is the first one slowed.
            tarpitted = everywhere.failures == self.tarpit_failures
            if pair.failures < self.max_failures:
                return Failure(tarpit_started=tarpitted)
            pair.lockouts += 1
            pair.failures = 0
            duration = min(self.base_lockout_seconds * 2 ** (pair.lockouts - 1),
                           MAX_LOCKOUT_SECONDS)
            pair.locked_until = now + timedelta(seconds=duration)
            lockouts = pair.lockouts
        self.lockouts_total += 1
        log_event(log, "auth_lockout", level=logging.WARNING, ip=ip, seconds=int(duration),
                  lockouts=lockouts)
        return Failure(locked_out=True, tarpit_started=tarpitted)

    def success(self, ip: str, user: str) -> None:
        """A good login clears the pair's failure count (not the escalation of its past
        lockouts, nor the name's count from everywhere) and exempts the address from the
        name's tarpit for a day."""
        now = self._clock()
        ip, user = client_key(ip), name_key(user)
        with self._readers.begin() as session:
            pair = session.get(AuthFailures, (user, ip))
            if (pair is not None and pair.failures == 0 and pair.last_success_at is not None
                    and now - pair.last_success_at < SUCCESS_REFRESH):
                return  # nothing new to say: keep logins free of writes
        with self._sessions.begin() as session:
            row = _row_for_update(session, user, ip)
            row.failures = 0
            row.last_success_at = now

    # -- administration ------------------------------------------------------------------

    def current(self) -> tuple[list[Lockout], list[Tarpit]]:
        """The refused (name, IP) pairs and the slowed names, now."""
        now = self._clock()
        with self._readers.begin() as session:
            rows = list(session.scalars(select(AuthFailures).order_by(
                AuthFailures.username, AuthFailures.client_ip)))
        lockouts = [Lockout(r.username, r.client_ip, r.locked_until, r.lockouts) for r in rows
                    if r.client_ip != ALL_ADDRESSES and r.locked_until is not None
                    and r.locked_until > now]
        tarpits = [Tarpit(r.username, r.failures, r.last_failure_at) for r in rows
                   if r.client_ip == ALL_ADDRESSES and r.last_failure_at is not None
                   and _recent(r.last_failure_at, now) and r.failures >= self.tarpit_failures]
        return lockouts, tarpits

    def unlock(self, user: str, ip: str | None = None) -> int:
        """Clear the lockouts and failure counts of ``user`` (from ``ip``, or from every
        address and its tarpit); the number of lockouts that were in force."""
        now = self._clock()
        user = name_key(user)
        with self._sessions.begin() as session:
            query = select(AuthFailures).where(AuthFailures.username == user)
            if ip is not None:
                query = query.where(AuthFailures.client_ip == client_key(ip))
            cleared = 0
            for row in session.scalars(query.with_for_update()):
                if row.locked_until is not None and row.locked_until > now:
                    cleared += 1
                row.failures, row.lockouts, row.locked_until = 0, 0, None
        return cleared

    def prune(self) -> int:
        """Forget rows with nothing left to remember (no lockout, nothing in the last day)."""
        now = self._clock()
        before = now - MEMORY
        with self._sessions.begin() as session:
            result = session.execute(delete(AuthFailures).where(
                or_(AuthFailures.locked_until.is_(None), AuthFailures.locked_until <= now),
                or_(AuthFailures.last_failure_at.is_(None),
                    AuthFailures.last_failure_at < before),
                or_(AuthFailures.last_success_at.is_(None),
                    AuthFailures.last_success_at < before)))
        return int(getattr(result, "rowcount", 0) or 0)


def lockout_tracker(settings: Settings, engine: Engine) -> LockoutTracker:
    """The tracker ``[submission]`` configures, over ``engine``'s database (for serve, the
    CLI and the TUI alike)."""
    submission = settings.submission
    return LockoutTracker(
        engine,
        max_failures=submission.auth_max_failures,
        base_lockout_seconds=submission.auth_lockout_seconds,
        tarpit_failures=submission.auth_tarpit_failures,
        never_lock_networks=parse_networks(submission.never_lock_networks),
    )


def _recent(moment: datetime | None, now: datetime) -> bool:
    return moment is not None and now - moment < MEMORY


def _row_for_update(session: Session, user: str, ip: str) -> AuthFailures:
    """The row of (user, ip), created if missing, locked for this transaction (concurrent
    creators on PostgreSQL meet at the primary key: ON CONFLICT DO NOTHING)."""
    values = {"username": user, "client_ip": ip, "failures": 0, "lockouts": 0}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(AuthFailures).values(**values).on_conflict_do_nothing())
    row = session.scalars(select(AuthFailures).where(
        AuthFailures.username == user, AuthFailures.client_ip == ip
    ).with_for_update().execution_options(populate_existing=True)).one()
    return row


# -- one login, for SMTP AUTH and HTTP basic auth ------------------------------------------


@dataclass(frozen=True)
class LoginResult:
    account: Account | None
    #: Seconds left on a lockout when refused without a check; 0 otherwise.
    locked_for: float = 0.0
    #: What this failure started (nothing for a success or a refusal).
    started: Failure = Failure()


async def authenticate(lockouts: LockoutTracker, accounts: AccountStore, ip: str, user: str,
                       password: str) -> LoginResult:
    """Check a login under the lockouts: refused while the (name, IP) pair is locked out,
    answered after the tarpit's delay, counted either way. Database and scrypt work run in
    threads; the tarpit waits on the event loop (a sleeping thread would take a worker).
    A lockout or tarpit it starts moves ``phigate_auth_lockouts_total`` (``kind="user_ip"``,
    ``kind="user"``), whichever listener the login came to."""
    admission = await asyncio.to_thread(lockouts.admit, ip, user)
    if admission.locked_for > 0:
        return LoginResult(None, locked_for=admission.locked_for)
    if admission.delay > 0:
        log_event(log, "auth_tarpit", level=logging.WARNING, ip=client_key(ip),
                  seconds=admission.delay)
        await asyncio.sleep(admission.delay)
    account = await asyncio.to_thread(accounts.authenticate, user, password)
    if account is None:
        started = await asyncio.to_thread(lockouts.failure, ip, user)
        if started.locked_out:
            METRICS.record_auth_lockout("user_ip")
        if started.tarpit_started:
            METRICS.record_auth_lockout("user")
        return LoginResult(None, started=started)
    await asyncio.to_thread(lockouts.success, ip, user)
    return LoginResult(account)
