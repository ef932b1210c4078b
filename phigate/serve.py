"""``phigate serve``: compose the services of the chosen roles on one event loop.

Roles: ``smtp`` (submission, and the scanner pool it needs), ``delivery`` (the queue
scheduler), ``http`` (/metrics, /healthz, one-click unsubscribe). ``all`` runs every role;
larger sites run them as separate units and nodes over one PostgreSQL queue.
:func:`start_services` runs the roles it is given in this process; the ``serve`` command's
process (:mod:`phigate.serve_main`) runs delivery beside smtp or http in a child process.

Shutdown follows uvicorn: stop accepting, let sessions and deliveries finish within a
grace period, give back leases, then exit. At start, delivery takes back a killed run's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text

from phigate.admin.dashboard import store_snapshot
from phigate.checks.scanner_check import model_missing, probe
from phigate.config import HostPort, Settings, validate
from phigate.errors import ConfigError
from phigate.mta.delivery.throttle import KeyedRateLimiter
from phigate.mta.submission.auth import lockout_tracker
from phigate.mta.submission.server import SubmissionServices, start_submission_server
from phigate.mta.submission.sessions import OpenSession
from phigate.observability.collectors import StoreSnapshot
from phigate.observability.health import HealthState
from phigate.observability.labels import ListenerLabel
from phigate.observability.metrics import METRICS
from phigate.policy.engine import PolicyEngine
from phigate.policy.rules import default_rules
from phigate.policy.stores import PolicyStores
from phigate.queue.key_check import ensure_master_key
from phigate.runtime import Runtime
from phigate.serve_stop import stop_services

__all__ = ["RunningServices", "parse_roles", "start_services", "stop_services"]

log = logging.getLogger("phigate.serve")

ROLES = ("smtp", "delivery", "http")
T = TypeVar("T")


def parse_roles(value: str) -> frozenset[str]:
    roles = frozenset(r.strip() for r in value.split(",") if r.strip())
    if "all" in roles:
        return frozenset(ROLES)
    unknown = roles - set(ROLES)
    if unknown or not roles:
        raise ConfigError(f"--role: use all or a list of {', '.join(ROLES)}")
    return roles


@dataclass
class RunningServices:
    """What ``serve`` started, for shutdown (and for tests that embed the server)."""

    runtime: Runtime
    health: HealthState
    servers: list[asyncio.Server] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    #: Started as shutdown begins and run alongside the sessions' grace period (delivery
    #: winds down while the last sessions finish, not after them).
    stoppers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    #: Run in order once the sessions are done or the grace period is over.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    submission: SubmissionServices | None = None
    policy_stores: PolicyStores | None = None
    #: (token signer, feedback processor), see :func:`_feedback`.
    feedback: tuple[Any, Any] | None = None
    #: The feedback listener's sessions in progress (told 421 at the grace period's end).
    feedback_sessions: set[OpenSession] = field(default_factory=set)


async def _listen(key: str, address: HostPort, start: Callable[[], Awaitable[T]]) -> T:
    """Run ``start`` and turn bind errors into one clear line naming the key."""
    try:
        return await start()
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise ConfigError(f"{key}: cannot listen on {address}: address already in use"
                              ) from None
        if error.errno == errno.EACCES:
            raise ConfigError(f"{key}: cannot listen on {address}: permission denied (ports "
                              "below 1024 need root or CAP_NET_BIND_SERVICE)") from None
        raise ConfigError(f"{key}: cannot listen on {address}: {error.strerror}") from None


async def start_services(settings: Settings, roles: Iterable[str]) -> RunningServices:
    roles = frozenset(roles)
    validate(settings)
    runtime = Runtime.open(settings)
    try:
        # A wrong master key is refused here, before any due message is parked corrupt.
        ensure_master_key(runtime.engine, runtime.store.master_key)
    except BaseException:
        runtime.close()
        raise
    listeners: list[ListenerLabel] = []
    if "smtp" in roles:
        listeners += ["submission", "feedback"]
    if "http" in roles:
        listeners.append("http")
    health = HealthState(database_check=lambda: _ping(runtime), listeners=listeners)
    master_key = runtime.store.master_key
    health.watch_unseal(lambda: master_key.last_unsealed_at)
    running = RunningServices(runtime=runtime, health=health)
    try:
        if "smtp" in roles:
            await _start_smtp(settings, running)
        if "http" in roles:
            await _start_http(settings, running)
        if "delivery" in roles:
            await _start_delivery(settings, running)
    except BaseException:
        await stop_services(running)
        raise
    METRICS.register_certificate("submission", settings.submission.tls_cert)
    if "http" in roles:
        METRICS.register_store_gauges(lambda: _store_snapshot(running))
    return running


def _store_snapshot(running: RunningServices) -> StoreSnapshot:
    """The queue, campaign and suppression gauges, computed at scrape time."""
    stores = _policy_stores(running)
    return dataclasses.replace(
        store_snapshot(running.runtime.store),
        campaigns=stores.campaigns.snapshots(),
        suppressions=stores.suppressions.counts(),
        incidents=stores.incidents.counts() if stores.incidents is not None else {},
    )


def _policy_stores(running: RunningServices) -> PolicyStores:
    """Consent, suppression and campaign access, shared by the roles of this process."""
    if running.policy_stores is None:
        running.policy_stores = PolicyStores.from_runtime(running.runtime)
    return running.policy_stores


def _user_rates(per_minute: int) -> KeyedRateLimiter | None:
    # A minute's worth may come at once: applications submit in bursts (a reminder run).
    return KeyedRateLimiter(per_minute, burst=per_minute) if per_minute else None


def _ping(runtime: Runtime) -> None:
    with runtime.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


async def _start_smtp(settings: Settings, running: RunningServices) -> None:
    scanner = None
    if settings.scanner.enabled:
        from phigate.phi_scanner import ScannerPool

        missing = model_missing(settings.scanner)
        if missing is not None:  # refused before workers start (and print tracebacks)
            raise missing
        scanner = ScannerPool(settings.scanner)
        # Closed once sessions are over (or cut at the end of the grace period): a worker
        # holds nothing worth waiting for, and one unloading its model took 1-3.5 s of
        # SIGTERM's bound.
        running.closers.append(lambda: asyncio.to_thread(scanner.close, graceful=False))
        # Load the model in every worker before taking mail, so the first client does not
        # wait for it (and systemd hears READY only once we can really scan).
        await scanner.warm_up()
        problem = await probe(scanner)
        if problem is not None:
            raise ConfigError(f"[scanner]: the scanner workers cannot scan ({problem})")
        running.health.watch_scanner(lambda: probe(scanner))
    runtime = running.runtime
    services = SubmissionServices(
        settings=settings,
        accounts=runtime.accounts,
        store=runtime.store,
        policy=PolicyEngine(default_rules(settings.scanner, _policy_stores(running),
                                          settings)),
        lockouts=lockout_tracker(settings, runtime.engine),
        scanner=scanner,
        user_rates=_user_rates(settings.submission.rate_per_minute_per_user),
        trusted_networks=[
            ipaddress.ip_network(n, strict=False) for n in settings.submission.trusted_networks
        ],
    )
    listen = settings.submission.listen
    server = await _listen(
        "[submission] listen", listen,
        lambda: start_submission_server(services, host=listen.host, port=listen.port),
    )
    running.servers.append(server)
    running.submission = services
    running.health.listener_up("submission")
    if settings.submission.implicit_tls_listen:
        implicit = HostPort.parse(settings.submission.implicit_tls_listen,
                                  key="[submission] implicit_tls_listen")
        running.servers.append(await _listen(
            "[submission] implicit_tls_listen", implicit,
            lambda: start_submission_server(services, host=implicit.host, port=implicit.port,
                                            implicit_tls=True),
        ))
    await _start_feedback(settings, running)


def _feedback(settings: Settings, running: RunningServices) -> tuple[Any, Any]:
    """The token signer and the feedback processor, built once for the feedback listener,
    one-click unsubscribe and delivery of this process."""
    if running.feedback is None:
        from phigate.mta.delivery.decorate import token_signer
        from phigate.policy.feedback.actions import FeedbackProcessor

        signer = token_signer(settings, running.runtime.engine)
        running.feedback = (signer, FeedbackProcessor(
            settings, _policy_stores(running), running.runtime.engine, signer))
    return running.feedback


def read_secret(path: str) -> str:
    """A secret file's content without the trailing newline ("" when not configured)."""
    if not path:
        return ""
    return Path(path).read_text(encoding="utf-8").strip()


async def _start_feedback(settings: Settings, running: RunningServices) -> None:
    """The second SMTP listener, for bounces, complaints and mailto unsubscribes."""
    from phigate.mta.submission.feedback_listener import start_feedback_server

    signer, processor = _feedback(settings, running)
    listen = settings.feedback.listen
    server = await _listen(
        "[feedback] listen", listen,
        lambda: start_feedback_server(settings, processor, signer, host=listen.host,
                                      port=listen.port, store=running.runtime.store,
                                      open_sessions=running.feedback_sessions),
    )
    running.servers.append(server)
    running.health.listener_up("feedback")


def _add_unsubscribe_routes(app: Any, settings: Settings, running: RunningServices) -> None:
    """One-click unsubscribe (``/u/TOKEN``), see :mod:`phigate.http.unsubscribe`."""
    from phigate.http.unsubscribe import add_unsubscribe_routes

    signer, processor = _feedback(settings, running)
    add_unsubscribe_routes(app, signer=signer, processor=processor,
                           organisation=settings.server.domain)


def _add_open_routes(app: Any, settings: Settings, running: RunningServices) -> None:
    """The open pixel (``/o/CAMPAIGN/TOKEN.gif``), see :mod:`phigate.http.open_pixel`."""
    from phigate.http.open_pixel import add_open_routes
    from phigate.policy.open_tracking import OpenStore, PixelTokens

    signer, _ = _feedback(settings, running)
    if signer is not None:
        add_open_routes(app, tokens=PixelTokens.for_signer(signer),
                        opens=OpenStore(running.runtime.store))


def _add_pickup_routes(app: Any, settings: Settings, running: RunningServices) -> None:
    """Secure pickup (``/p/TOKEN``), see :mod:`phigate.pickup.web`; off without public_url."""
    if not settings.pickup.public_url:
        return
    from phigate.pickup.metrics import register_state_collector
    from phigate.pickup.web import PickupPages

    scanner = running.submission.scanner if running.submission is not None else None
    pickup = PickupPages(settings, running.runtime.store, scanner=scanner)
    pickup.add_routes(app)
    register_state_collector(pickup.pickups.counts)


def _add_message_status_routes(app: Any, settings: Settings, running: RunningServices
                               ) -> None:
    """``GET /v1/messages/<queue-id>`` for the submitting account (see
    :mod:`phigate.http.message_status`); its failed logins share SMTP AUTH's lockouts."""
    from phigate.http.message_status import add_message_status_routes

    lockouts = (running.submission.lockouts if running.submission is not None
                else lockout_tracker(settings, running.runtime.engine))
    add_message_status_routes(app, accounts=running.runtime.accounts,
                              store=running.runtime.store, lockouts=lockouts)


async def _start_http(settings: Settings, running: RunningServices) -> None:
    from aiohttp import web

    from phigate.http.limits import TimedTCPSite, body_timeout_middleware, runner_options
    from phigate.observability.health import add_routes

    app = web.Application(middlewares=[body_timeout_middleware(
        settings.http.body_timeout_seconds)])
    add_routes(app, running.health)
    _add_unsubscribe_routes(app, settings, running)
    _add_open_routes(app, settings, running)
    _add_pickup_routes(app, settings, running)
    _add_message_status_routes(app, settings, running)
    runner = web.AppRunner(app, **runner_options(settings.http))
    await runner.setup()
    listen = settings.http.listen
    site = TimedTCPSite(runner, listen.host, listen.port,
                        header_timeout_seconds=settings.http.header_timeout_seconds)
    await _listen("[http] listen", listen, site.start)
    running.closers.append(runner.cleanup)
    running.health.listener_up("http")


async def _start_delivery(settings: Settings, running: RunningServices) -> None:
    from phigate.mta.delivery.incident_watch import IncidentWatch
    from phigate.mta.delivery.restart import take_back_leases
    from phigate.mta.delivery.scheduler import DeliveryScheduler
    from phigate.mta.delivery.security import build_reporter
    from phigate.policy.incidents import IncidentStore

    runtime = running.runtime
    await asyncio.to_thread(take_back_leases, settings, runtime.store)
    signer, _ = _feedback(settings, running)
    scheduler = DeliveryScheduler(
        settings, runtime.store, tokens=signer,
        incidents=IncidentWatch(IncidentStore.configured(runtime.engine, runtime.audit,
                                                         settings.feedback)),
        smarthost_password=read_secret(settings.delivery.smarthost_password_file))
    loop = asyncio.get_running_loop()

    def new_mail() -> None:
        """Accepted mail goes out at once, not at the next poll (phigate.queue.new_mail);
        called in the committing thread."""
        loop.call_soon_threadsafe(scheduler.new_mail)

    unsubscribe = runtime.store.new_mail.subscribe(new_mail)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(scheduler.run(stop), name="delivery")]
    reporter = build_reporter(settings, running.runtime.store, scheduler.security)
    if reporter is not None:  # daily TLS-RPT reports (RFC 8460), through our own queue
        tasks.append(asyncio.create_task(reporter.run(stop), name="tls-reports"))
    running.tasks.extend(tasks)

    async def stop_delivery() -> None:
        unsubscribe()
        stop.set()
        for running_task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await running_task

    running.stoppers.append(stop_delivery)
