"""Metric definitions: helpers move the right series, labels stay bounded and PHI-free."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import CollectorRegistry

from phigate import __version__
from phigate.observability.collectors import (
    CampaignSnapshot,
    StoreSnapshot,
    certificate_seconds_left,
)
from phigate.observability.health import HealthState
from phigate.observability.metrics import METRICS, Metrics, render_latest


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_helpers_move_their_counters(metrics: Metrics) -> None:
    metrics.record_received("accepted")
    metrics.record_received("accepted")
    metrics.record_recipient("delivered", "treatment")
    metrics.record_delivery_attempt("success", tls="verified")
    metrics.record_delivery_attempt("tls_policy", tls="none")
    metrics.observe_delivery_latency(42.0, "delivered")
    metrics.observe_scan(0.03, "phi", ["PERSON", "CONDITION", "PERSON"])
    metrics.record_policy_decision("phi_in_marketing", "quarantine")
    metrics.record_auth_failure()
    metrics.record_auth_lockout("user_ip")
    metrics.record_tls_handshake_failure("inbound")
    metrics.record_bounce(permanent=True)
    metrics.record_complaint()
    metrics.record_unsubscribe("one_click")
    metrics.record_suppression_added("marketing", "unsubscribe")
    metrics.record_dkim_failure("ed25519")

    assert value(metrics, "phigate_messages_received_total", result="accepted") == 2
    assert value(metrics, "phigate_messages_received_total", result="rejected") == 0
    assert value(metrics, "phigate_recipients_total", outcome="delivered",
                 **{"class": "treatment"}) == 1
    assert value(metrics, "phigate_delivery_attempts_total", outcome="success", tls="verified") == 1
    assert value(metrics, "phigate_delivery_attempts_total", outcome="tls_policy", tls="none") == 1
    assert value(metrics, "phigate_delivery_latency_seconds_count", outcome="delivered") == 1
    latency_bucket = "phigate_delivery_latency_seconds_bucket"
    assert value(metrics, latency_bucket, outcome="delivered", le="60.0") == 1
    assert value(metrics, latency_bucket, outcome="delivered", le="30.0") == 0
    assert value(metrics, "phigate_scan_duration_seconds_count") == 1
    assert value(metrics, "phigate_scan_verdicts_total", verdict="phi") == 1
    # A category counts once per message, however many findings it had.
    assert value(metrics, "phigate_scan_categories_total", category="PERSON") == 1
    assert value(metrics, "phigate_scan_categories_total", category="MEDICATION") == 0
    assert value(metrics, "phigate_policy_decisions_total", rule="phi_in_marketing",
                 action="quarantine") == 1
    assert value(metrics, "phigate_auth_failures_total", reason="bad_credentials") == 1
    assert value(metrics, "phigate_auth_lockouts_total", kind="user_ip") == 1
    assert value(metrics, "phigate_tls_handshake_failures_total", direction="inbound") == 1
    assert value(metrics, "phigate_bounces_total", kind="permanent") == 1
    assert value(metrics, "phigate_complaints_total") == 1
    assert value(metrics, "phigate_unsubscribes_total", method="one_click") == 1
    assert value(metrics, "phigate_suppressions_added_total", scope="marketing",
                 reason="unsubscribe") == 1
    assert value(metrics, "phigate_dkim_signing_failures_total", algorithm="ed25519") == 1


def test_smtp_session_gauge_follows_the_with_block(metrics: Metrics) -> None:
    with metrics.smtp_session("submission"):
        assert value(metrics, "phigate_smtp_sessions_active", listener="submission") == 1
        with pytest.raises(RuntimeError), metrics.smtp_session("submission"):
            assert value(metrics, "phigate_smtp_sessions_active", listener="submission") == 2
            raise RuntimeError("session crashed")
    assert value(metrics, "phigate_smtp_sessions_active", listener="submission") == 0


HOSTILE = [
    "patient@example.org",
    "John Smith",
    "Re: your HIV test results",
    "<jsmith@clinic.example>",
    "MRN 12345678",
    "x" * 300,
    "",
]


def label_values(m: Metrics) -> dict[tuple[str, str], set[str]]:
    seen: dict[tuple[str, str], set[str]] = {}
    for family in m.registry.collect():
        for sample in family.samples:
            for label, label_value in sample.labels.items():
                seen.setdefault((family.name, label), set()).add(label_value)
    return seen


def test_labels_stay_bounded_and_free_of_phi(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    # Every helper that takes a string, fed what a careless call site might pass.
    for text in HOSTILE:
        metrics.record_received(text)  # type: ignore[arg-type]
        metrics.record_recipient("delivered", text)
        metrics.record_delivery_attempt(text, tls=text)  # type: ignore[arg-type]
        metrics.observe_delivery_latency(1.0, text)  # type: ignore[arg-type]
        metrics.observe_scan(0.01, text, [text])
        metrics.record_policy_decision(text, text)
        metrics.record_auth_failure(text)  # type: ignore[arg-type]
        metrics.record_auth_lockout(text)  # type: ignore[arg-type]
        metrics.record_tls_handshake_failure(text)  # type: ignore[arg-type]
        metrics.record_unsubscribe(text)  # type: ignore[arg-type]
        metrics.record_suppression_added(text, text)
        metrics.record_dkim_failure(text)  # type: ignore[arg-type]
        with metrics.smtp_session(text):  # type: ignore[arg-type]
            pass
    # A flood of distinct identifier-like names is capped, not exported one by one.
    for i in range(1000):
        metrics.record_policy_decision(f"rule_{i}", "accept")
        metrics.observe_scan(0.01, "none", [f"category_{i}"])
    metrics.register_store_gauges(lambda: StoreSnapshot(
        messages_by_state={text: 1 for text in HOSTILE} | {f"state_{i}": 1 for i in range(100)},
        campaigns=[CampaignSnapshot(text, 10, 1) for text in HOSTILE],
        suppressions={(text, text): 1 for text in HOSTILE},
    ))
    metrics.register_certificate("patient@example.org", Path("/nonexistent"))  # type: ignore[arg-type]

    values = label_values(metrics)
    every_value = set().union(*values.values())
    for text in HOSTILE:
        if text:
            assert text not in every_value
    assert not any("@" in v or " " in v or len(v) > 64 for v in every_value)
    for (family, label), distinct in values.items():
        if label in ("le", "version"):
            continue
        assert len(distinct) <= 65, (family, label, len(distinct))
    assert values[("phigate_messages_received", "result")] == {
        "accepted", "quarantined", "held", "rejected", "tempfailed", "other"}
    # Rejections are logged by label name, once per label, never with the value.
    assert "unexpected value for label result" in caplog.text
    assert caplog.text.count("unexpected value for label result") == 1
    assert "patient@example.org" not in caplog.text and "John Smith" not in caplog.text


def test_store_gauges_come_from_the_snapshot(metrics: Metrics) -> None:
    calls = 0

    def snapshot() -> StoreSnapshot:
        nonlocal calls
        calls += 1
        return StoreSnapshot(
            messages_by_state={"active": 7, "quarantined": 2, "corrupt": 1},
            recipients_by_state={"queued": 5, "deferred": 3},
            oldest_pending_age_seconds=1234.0,
            quarantined=2,
            oldest_quarantined_age_seconds=600.0,
            phi_waiting_for_tls=3,
            campaigns=[CampaignSnapshot("spring-flu-2026", delivered=2000, complaints=10)],
            suppressions={("all", "hard_bounce"): 4, ("marketing", "unsubscribe"): 9},
        )

    metrics.register_store_gauges(snapshot)
    assert calls == 0  # registering does not query the store
    assert value(metrics, "phigate_store_up") == 1
    assert value(metrics, "phigate_queue_messages", state="active") == 7
    assert value(metrics, "phigate_queue_recipients", state="deferred") == 3
    assert value(metrics, "phigate_queue_oldest_message_age_seconds") == 1234.0
    assert value(metrics, "phigate_quarantine_messages") == 2
    assert value(metrics, "phigate_quarantine_oldest_age_seconds") == 600.0
    assert value(metrics, "phigate_phi_waiting_for_tls_recipients") == 3
    assert value(metrics, "phigate_campaign_complaint_ratio", campaign="spring-flu-2026") == 0.005
    assert value(metrics, "phigate_campaign_delivered_recipients",
                 campaign="spring-flu-2026") == 2000
    assert value(metrics, "phigate_suppressions", scope="marketing", reason="unsubscribe") == 9


def test_failing_store_still_answers_the_scrape(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> StoreSnapshot:
        raise ConnectionError("could not connect; params: patient@example.org")

    metrics.register_store_gauges(broken)
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    assert b"phigate_store_up 0.0" in body
    assert b"phigate_messages_received_total" in body
    assert "ConnectionError" in caplog.text
    assert "patient@example.org" not in caplog.text


def write_certificate(path: Path, not_after: dt.datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.example.org")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - dt.timedelta(days=90))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def test_certificate_expiry_is_read_at_scrape_time(metrics: Metrics, tmp_path: Path) -> None:
    path = tmp_path / "fullchain.pem"
    write_certificate(path, dt.datetime.now(dt.UTC) + dt.timedelta(days=10))
    metrics.register_certificate("submission", path)
    left = value(metrics, "phigate_tls_certificate_expiry_seconds", certificate="submission")
    assert left is not None and abs(left - 10 * 86400) < 120
    # certbot renews: the next scrape sees the new file without any restart.
    write_certificate(path, dt.datetime.now(dt.UTC) + dt.timedelta(days=90))
    left = value(metrics, "phigate_tls_certificate_expiry_seconds", certificate="submission")
    assert left is not None and abs(left - 90 * 86400) < 120
    assert value(metrics, "phigate_tls_certificate_load_success", certificate="submission") == 1

    path.write_text("not a certificate")
    expiry = "phigate_tls_certificate_expiry_seconds"
    assert value(metrics, expiry, certificate="submission") is None
    assert value(metrics, "phigate_tls_certificate_load_success", certificate="submission") == 0


def test_expired_certificate_is_negative(tmp_path: Path) -> None:
    path = tmp_path / "old.pem"
    write_certificate(path, dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    left = certificate_seconds_left(path)
    assert left is not None and left < -86000


def test_global_registry_exports_only_phigate_metrics() -> None:
    body, _ = render_latest()
    names = {line.split("{")[0].split(" ")[0] for line in body.decode().splitlines()
             if line and not line.startswith("#")}
    assert names and all(name.startswith("phigate_") for name in names)
    assert "phigate_process_cpu_seconds_total" in names
    assert METRICS.registry.get_sample_value("phigate_build_info", {"version": __version__}) == 1


async def test_health_needs_database_and_every_listener(metrics: Metrics) -> None:
    database_up = True

    def ping() -> None:
        if not database_up:
            raise OSError("connection refused")

    health = HealthState(database_check=ping, listeners=["submission", "http"], metrics=metrics)
    report = await health.check()
    assert report.http_status == 503
    assert report.checks == {"database": True, "listener:submission": False,
                             "listener:http": False}
    health.listener_up("submission")
    health.listener_up("http")
    assert (await health.check()).http_status == 200
    assert value(metrics, "phigate_listener_up", listener="http") == 1

    database_up = False
    report = await health.check()
    assert report.http_status == 503 and report.checks["database"] is False
    assert b'"status": "unavailable"' in report.body()

    database_up = True
    health.listener_down("submission")  # draining before shutdown
    assert (await health.check()).http_status == 503
    assert value(metrics, "phigate_listener_up", listener="submission") == 0


async def test_hung_database_fails_the_check_quickly(metrics: Metrics) -> None:
    release = threading.Event()
    health = HealthState(database_check=lambda: release.wait(5), listeners=[],
                         timeout_seconds=0.2, metrics=metrics)
    started = time.monotonic()
    report = await health.check()
    release.set()
    assert report.checks == {"database": False}
    assert time.monotonic() - started < 2


async def test_metrics_and_healthz_over_http(metrics: Metrics, unused_tcp_port: int) -> None:
    """A real aiohttp server on loopback, scraped twice: the counters move between scrapes."""
    import aiohttp
    from aiohttp import web

    from phigate.observability.health import add_routes

    health = HealthState(database_check=lambda: None, listeners=["http"], metrics=metrics)
    app = web.Application()
    add_routes(app, health, metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    base = f"http://127.0.0.1:{unused_tcp_port}"
    try:
        async with aiohttp.ClientSession() as client:
            async with client.get(f"{base}/healthz") as response:
                assert response.status == 503
            health.listener_up("http")
            async with client.get(f"{base}/healthz") as response:
                assert response.status == 200
                assert (await response.json())["status"] == "ok"

            async with client.get(f"{base}/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
                before = await response.text()
            metrics.record_delivery_attempt("success", tls="verified")
            metrics.record_recipient("delivered", "treatment")
            async with client.get(f"{base}/metrics") as response:
                after = await response.text()
    finally:
        await runner.cleanup()

    attempts = 'phigate_delivery_attempts_total{outcome="success",tls="verified"}'
    assert f"{attempts} 0.0" in before
    assert f"{attempts} 1.0" in after
    assert "@" not in after
