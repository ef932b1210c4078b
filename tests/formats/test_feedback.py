"""Feedback classification: the shared samples, our own DSNs, VERP, ARF + DKIM, unsubscribes."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import authres
import pytest
from helpers.shared import EVAL

from phigate.mta.delivery.dkim import DkimSigner, dns_record, generate_key
from phigate.mta.delivery.dsn import FailedRecipient, build_dsn
from phigate.policy.feedback.classify import classify
from phigate.policy.tokens import TokenClaims, TokenSigner, unsubscribe_headers, verp_address

SISIMAI_DEV = EVAL / "bounce/sisimai-dev"
ARF_DIR = EVAL / "arf/stalwart-mail-auth/resources/arf"
SIGNER = TokenSigner(b"feedback-test-key-0123456789abcdef")


def load_bench() -> ModuleType:
    path = Path(__file__).parents[2] / "bench/feedback_eval.py"
    spec = importlib.util.spec_from_file_location("feedback_eval", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_flufl_bounce_samples_at_least_95_percent_right() -> None:
    by_row, by_file, _ = load_bench().score_bounces(EVAL)
    assert by_row.total == 103
    assert by_row.rate >= 0.95, by_row.misses
    assert by_file.rate >= 0.95, by_file.misses


def test_every_arf_sample_gives_type_and_original_recipient() -> None:
    types, recipients = load_bench().score_arf(EVAL)
    assert (types.right, types.total) == (5, 5), types.misses
    assert recipients.total == 2 and recipients.right == recipients.total, recipients.misses


@pytest.mark.skipif(not SISIMAI_DEV.is_dir(), reason="shared/eval/bounce/sisimai-dev absent")
def test_sisimai_dev_figures_do_not_regress() -> None:
    """Floors at the figures of bench/RESULTS.md (sisimai's development part)."""
    scores = load_bench().score_sisimai(EVAL)
    assert scores.bounce_files.rate >= 0.95, scores.bounce_files.misses
    assert scores.hard.rate >= 0.95, scores.hard.misses
    assert scores.category.rate >= 0.90, scores.category.misses
    assert scores.status.rate >= 0.91, scores.status.misses
    assert scores.complaints.right == scores.complaints.total
    assert scores.left_alone.right == scores.left_alone.total, scores.left_alone.misses


@pytest.mark.parametrize(("sample", "kind", "feedback_type"), [
    ("001.eml", "complaint", "abuse"),
    ("002.eml", "complaint", "abuse"),
    ("003.eml", "other", "auth-failure"),  # a DMARC/DKIM failure report is no complaint
])
def test_arf_kinds(sample: str, kind: str, feedback_type: str) -> None:
    report = classify((ARF_DIR / sample).read_bytes(), verify_dkim=False)
    assert (report.kind, report.feedback_type) == (kind, feedback_type)
    assert report.dkim_result is None


def our_dsn(status: str, action: str = "failed") -> bytes:
    raw = build_dsn(
        original=b"From: dr@clinic.example\r\nTo: pat@example.net\r\n\r\nbody\r\n",
        envelope_sender="bounces+x@clinic.example",
        failed=[FailedRecipient("pat@example.net", status, "mx.example.net",
                                f"smtp; {status[0]}50 {status} mailbox problem", action=action)],
        reporting_mta="relay.example.org", arrival=datetime(2025, 1, 1, tzinfo=UTC))
    assert raw is not None
    return raw


def test_our_own_dsns_classify_back() -> None:
    hard = classify(our_dsn("5.1.1"))
    assert hard.kind == "bounce"
    [recipient] = hard.recipients
    assert (recipient.address, recipient.permanent, recipient.status) == (
        "pat@example.net", True, "5.1.1")
    assert recipient.reason == "550 5.1.1 mailbox problem"
    soft = classify(our_dsn("4.2.2", action="delayed"))
    assert [(r.permanent, r.status) for r in soft.recipients] == [(False, "4.2.2")]


def test_a_dsn_returned_inside_a_dsn_is_not_mistaken_for_the_report() -> None:
    # dsn_16.txt: the outer report fails one recipient; the returned message is itself a
    # delay DSN about somebody else, who must not be reported.
    raw = (EVAL / "bounce/flufl.bounce/flufl/bounce/tests/data/dsn_16.txt").read_bytes()
    report = classify(raw)
    assert [(r.address, r.permanent) for r in report.recipients] == [
        ("hishealinghand@pastors.com", True)]


def test_verp_token_names_the_recipient() -> None:
    verp = verp_address(SIGNER, TokenClaims("verp", "Alias.Target@Example.net"), "b.example")
    report = classify(our_dsn("5.1.1"), signer=SIGNER, envelope_recipient=verp.lower())
    assert report.token == TokenClaims("verp", "Alias.Target@Example.net")
    [recipient] = report.recipients
    assert (recipient.address, recipient.permanent) == ("Alias.Target@Example.net", True)
    # without the signer, or with a forged token, the DSN's own recipient is reported
    forged = "bounces+" + "a" * 40 + "@b.example"
    for kwargs in ({"envelope_recipient": verp}, {"signer": SIGNER, "envelope_recipient": forged}):
        report = classify(our_dsn("5.1.1"), **kwargs)
        assert report.token is None
        assert [r.address for r in report.recipients] == ["pat@example.net"]


def test_unrecognised_mail_to_a_verp_address() -> None:
    verp = verp_address(SIGNER, TokenClaims("verp", "pat@example.net"), "b.example")
    odd_bounce = (b"From: MAILER-DAEMON@mx.example.net\r\nSubject: failure\r\n\r\n"
                  b"Something went wrong, sorry.\r\n")
    report = classify(odd_bounce, signer=SIGNER, envelope_recipient=verp)
    assert report.kind == "bounce"
    assert [(r.address, r.permanent) for r in report.recipients] == [("pat@example.net", False)]
    vacation = (b"From: pat@example.net\r\nAuto-Submitted: auto-replied\r\n"
                b"Subject: Out of office\r\n\r\nBack Monday.\r\n")
    assert classify(vacation, signer=SIGNER, envelope_recipient=verp).kind == "other"


def test_mailto_unsubscribe() -> None:
    headers = unsubscribe_headers(SIGNER, "pat@example.net", "spring", "", "clinic.example")
    mailto = headers["List-Unsubscribe"].strip("<>").removeprefix("mailto:")
    message = f"From: pat@example.net\r\nTo: {mailto}\r\nSubject: unsubscribe\r\n\r\n".encode()
    report = classify(message, signer=SIGNER)  # token found in To: (a file has no envelope)
    assert report.kind == "unsubscribe"
    assert report.token == TokenClaims("unsubscribe", "pat@example.net", campaign="spring")
    assert [r.address for r in report.recipients] == ["pat@example.net"]
    # the From: of an unsubscribe mail is not trusted: a forged token names nobody
    forged = classify(message.replace(mailto[12:20].encode(), b"aaaaaaaa"), signer=SIGNER,
                      envelope_recipient=mailto.replace(mailto[12:20], "aaaaaaaa"))
    assert forged.kind == "unsubscribe" and forged.recipients == [] and forged.token is None


def complaint_about(returned_headers: str) -> bytes:
    return (
        "From: fbl@isp.example\r\nTo: complaints@clinic.example\r\nSubject: FW: report\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n"
        "--b1\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: FBL/1.0\r\nVersion: 1\r\n\r\n"
        "--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"{returned_headers}\r\n"
        "--b1--\r\n"
    ).encode()


def test_complaint_recipient_from_our_tracking_header() -> None:
    headers = unsubscribe_headers(SIGNER, "pat@example.net", "spring", "https://u.example",
                                  "clinic.example")
    returned = ("From: news@clinic.example\r\nTo: redacted@isp.example\r\n"
                f"List-Unsubscribe: {headers['List-Unsubscribe']}\r\n")
    report = classify(complaint_about(returned), signer=SIGNER, verify_dkim=False)
    assert report.kind == "complaint"
    assert [r.address for r in report.recipients] == ["pat@example.net"]
    # without the key the token cannot be believed: fall back to the returned To:
    unsigned = classify(complaint_about(returned), verify_dkim=False)
    assert [r.address for r in unsigned.recipients] == ["redacted@isp.example"]


def test_arf_dkim_is_verified_and_recorded() -> None:
    key = generate_key("rsa")
    report_signer = DkimSigner(domains=["isp.example"], selector="fbl", rsa_key=key)
    signed = report_signer.sign(complaint_about("To: pat@example.net\r\n"))
    records = {b"fbl._domainkey.isp.example.": dns_record(key).encode()}

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    good = classify(signed, dns=dns, authserv_id="feedback.clinic.example")
    assert good.dkim_result == "pass"
    assert good.authentication_results is not None
    parsed = authres.AuthenticationResultsHeader.parse_value(good.authentication_results)
    assert parsed.authserv_id == "feedback.clinic.example"
    [result] = parsed.results
    assert (result.method, result.result, result.header_d) == ("dkim", "pass", "isp.example")

    tampered = classify(signed.replace(b"A complaint.", b"A complaint!"), dns=dns)
    assert tampered.dkim_result == "fail"
    assert classify(signed, dns=lambda name, timeout=5: None).dkim_result == "permerror"
    unsigned = classify(complaint_about("To: pat@example.net\r\n"), dns=dns)
    assert unsigned.dkim_result == "none"


@pytest.mark.parametrize("raw", [b"", b"garbage", b"\x00\xff" * 50,
                                 b"Content-Type: multipart/report\r\n\r\nno boundary"])
def test_odd_input_is_other_not_a_crash(raw: bytes) -> None:
    assert classify(raw).kind == "other"


@pytest.mark.parametrize("new_from", [None, "Mail Délivery <mailer-daemon@kundenserver.de>"])
def test_odd_from_header_does_not_stop_the_detectors(new_from: str | None) -> None:
    # flufl.bounce's Yale detector crashes on a missing From:, others on 8-bit headers;
    # either used to hide the detectors that follow it (simple_08 is a "simple match").
    path = EVAL / "bounce/flufl.bounce/flufl/bounce/tests/data/simple_08.txt"
    lines = path.read_bytes().split(b"\n")
    index = next(i for i, line in enumerate(lines) if line.startswith(b"From: Mail Delivery"))
    if new_from is None:
        del lines[index]
    else:
        lines[index] = b"From: " + new_from.encode()
    report = classify(b"\n".join(lines))
    assert [(r.address, r.permanent) for r in report.recipients] == [
        ("severin.XXX@t-online.de", True)]
