"""The bounded header checks, on the exact inputs of issue 14 (no sockets: pure functions;
the same inputs go over real SMTP in test_hostile_headers.py)."""

from __future__ import annotations

import time

import pytest

from phigate.mta.header_block import HeaderLimits, split_header_block
from phigate.mta.submission.header_checks import (
    CheckedHeader,
    Originators,
    check_message_header,
    strip_client_headers,
)
from phigate.mta.submission.refusals import Refusal, RefusalReason

ALLOWED = "reminders@practice.example"


def may_send_as(address: str) -> bool:
    return address.lower() == ALLOWED


ORIGINATORS = Originators(may_send_as=may_send_as,
                          may_reply_to=lambda a: a.endswith("@help.example"))
BODY = b"\r\nSee you on Tuesday.\r\n"


def message(*lines: str | bytes, body: bytes = BODY) -> bytes:
    encoded = [line if isinstance(line, bytes) else line.encode() for line in lines]
    return b"".join(line + b"\r\n" for line in encoded) + body


def reason(content: bytes) -> RefusalReason | None:
    result = check_message_header(content, ORIGINATORS)
    return result.reason if isinstance(result, Refusal) else None


def refused_quickly(content: bytes) -> RefusalReason:
    started = time.perf_counter()
    result = check_message_header(content, ORIGINATORS)
    elapsed = time.perf_counter() - started
    assert isinstance(result, Refusal)
    assert elapsed < 0.25, f"took {elapsed:.3f}s"
    return result.reason


def test_a_plain_message_passes_and_keeps_its_fields() -> None:
    content = message(f"From: Reminders <{ALLOWED}>", "To: patient@example.org",
                      "Subject: Your appointment")
    result = check_message_header(content, ORIGINATORS)
    assert isinstance(result, CheckedHeader)
    assert result.from_address == ALLOWED
    assert result.block.keys() == ["From", "To", "Subject"]
    assert content[result.block.body_offset:] == b"See you on Tuesday.\r\n"


@pytest.mark.parametrize("from_value", [
    f"{ALLOWED} <ceo@practice.example>",
    f'"{ALLOWED}" <ceo@practice.example>',
    f"<evil@x.example> <{ALLOWED}>",
    "(reminders@practice.example) <ceo@practice.example>",
    f"{ALLOWED} (ceo@practice.example)",
    "=?utf-8?q?reminders=40practice.example?= <ceo@practice.example>",
    "=?utf-8?b?cmVtaW5kZXJzQHByYWN0aWNlLmV4YW1wbGU=?= <ceo@practice.example>",
    "reminders\uff20practice.example <ceo@practice.example>",
])
def test_a_from_that_readers_would_show_differently_is_refused(from_value: str) -> None:
    assert reason(message(f"From: {from_value}", "To: p@example.org")) in {
        RefusalReason.ADDRESS_IN_DISPLAY_NAME, RefusalReason.BAD_ADDRESS,
        RefusalReason.FROM_NOT_ALLOWED,
    }


def test_the_issue_display_name_bypass_is_refused_as_an_address_in_the_display_name() -> None:
    content = message(f"From: {ALLOWED} <ceo@practice.example>", "To: p@example.org")
    assert reason(content) is RefusalReason.ADDRESS_IN_DISPLAY_NAME


@pytest.mark.parametrize("second_from", [
    "From: ceo@practice.example", "From : ceo@practice.example",
    "FROM: ceo@practice.example", "from\t: ceo@practice.example",
    " From: ceo@practice.example", "\tfrom : ceo@practice.example",
])
def test_a_second_from_in_any_spelling_is_refused(second_from: str) -> None:
    content = message(f"From: {ALLOWED}", "Subject: hello", second_from)
    assert reason(content) is RefusalReason.SEVERAL_FROM


def test_an_mbox_from_line_is_refused() -> None:
    content = message("From ceo@practice.example Wed Dec  2 06:00:00 2026", f"From: {ALLOWED}")
    assert reason(content) is RefusalReason.MBOX_FROM_LINE
    assert reason(message(f"From: {ALLOWED}", "From ceo@practice.example")) is (
        RefusalReason.MBOX_FROM_LINE)


@pytest.mark.parametrize(("lines", "expected"), [
    # Headers followed by the body with no blank line.
    ((f"From: {ALLOWED}", "To: p@example.org", "Subject: hi", "Dear patient,",
      "see you on Tuesday."), RefusalReason.NO_BLANK_LINE),
    ((f"From: {ALLOWED}", b"X-\xe9t\xe9: 1"), RefusalReason.BAD_FIELD_NAME),
    ((f"From: {ALLOWED}", "X Bad: 1"), RefusalReason.BAD_FIELD_NAME),
    (("From\t: " + ALLOWED, "To: p@example.org"), RefusalReason.SPACE_IN_FIELD_NAME),
    ((f"From: {ALLOWED}", "this is not a header", "To: p@example.org"),
     RefusalReason.NOT_A_HEADER_LINE),
])
def test_the_five_malformed_header_shapes_are_refused(
    lines: tuple[str | bytes, ...], expected: RefusalReason
) -> None:
    body = b"" if expected is RefusalReason.NO_BLANK_LINE else BODY
    assert reason(message(*lines, body=body)) is expected


def test_a_leading_continuation_line_is_refused() -> None:
    assert reason(message(" From: x@y.example", f"From: {ALLOWED}")) is (
        RefusalReason.LEADING_CONTINUATION)


def test_sender_resent_and_reply_to_are_checked_like_from() -> None:
    base = (f"From: {ALLOWED}", "To: p@example.org")
    assert reason(message(*base, "Sender: ceo@practice.example")) is (
        RefusalReason.SENDER_NOT_ALLOWED)
    assert reason(message(*base, "Resent-From: ceo@practice.example")) is (
        RefusalReason.RESENT_NOT_ALLOWED)
    assert reason(message(*base, "Reply-To: ceo@practice.example")) is (
        RefusalReason.REPLY_TO_NOT_ALLOWED)
    assert reason(message(*base, f"Sender: {ALLOWED} <ceo@practice.example>")) is (
        RefusalReason.ADDRESS_IN_DISPLAY_NAME)
    assert reason(message(*base, f"Sender: {ALLOWED}", f"Sender: {ALLOWED}")) is (
        RefusalReason.SEVERAL_SENDER)
    assert reason(message(*base, f"Sender: {ALLOWED}", "Reply-To: Desk <desk@help.example>",
                          f"Resent-From: {ALLOWED}")) is None


def test_a_64_kb_folded_display_name_is_refused_in_linear_time() -> None:
    folded = "\r\n ".join("a." * 38 for _ in range(64 * 1024 // 78))
    content = message(f"From: {folded} <{ALLOWED}>", "To: p@example.org")
    assert len(content) > 64 * 1024
    assert refused_quickly(content) is RefusalReason.HEADER_FIELD_TOO_LONG


@pytest.mark.parametrize("count", [16_000, 200_000])
def test_thousands_of_addresses_are_refused_quickly(count: int) -> None:
    addresses = ", ".join(f"user{i}@example.org" for i in range(count))
    content = message(f"From: {ALLOWED}", f"To: {addresses}")
    assert refused_quickly(content) in {RefusalReason.HEADER_FIELD_TOO_LONG,
                                        RefusalReason.HEADER_TOO_LARGE}


def test_the_address_count_limit_holds_below_the_field_length_limit() -> None:
    addresses = ",".join(f"u{i}@e.x" for i in range(1_500))
    assert len(addresses) < HeaderLimits().max_field_bytes
    assert refused_quickly(message(f"From: {ALLOWED}", f"To: {addresses}")) is (
        RefusalReason.TOO_MANY_ADDRESSES)


def test_two_million_continuation_lines_are_refused_quickly() -> None:
    content = message(f"From: {ALLOWED}", "X-Junk: a" + "\r\n a" * 2_000_000)
    assert len(content) > 8_000_000
    assert refused_quickly(content) is RefusalReason.HEADER_TOO_LARGE
    # Under the block size but over the line count.
    small = message(f"From: {ALLOWED}", "X-Junk: a" + "\r\n a" * 5_000)
    assert refused_quickly(small) is RefusalReason.TOO_MANY_HEADER_LINES


def test_work_is_bounded_by_the_limits_not_by_the_input() -> None:
    limits = HeaderLimits()
    worst = message(f"From: {ALLOWED}", *(f"X-F{i}: " + "v" * 50 for i in range(3_990)))
    assert len(worst) < limits.max_block_bytes
    started = time.perf_counter()
    assert not isinstance(split_header_block(worst, limits), Refusal)
    assert time.perf_counter() - started < 0.25


def test_bcc_and_client_trace_and_authentication_fields_are_removed_byte_exactly() -> None:
    content = message(
        "Received: from laptop.internal (10.1.2.3) by mx.internal", "  with ESMTP; today",
        f"From: {ALLOWED}", "Bcc: secret@example.org", "DKIM-Signature: v=1; a=rsa-sha256;",
        "\tb=abc", "Authentication-Results: mx.internal; dkim=pass", "To: p@example.org",
        "Subject: hi",
    )
    result = check_message_header(content, ORIGINATORS)
    assert isinstance(result, CheckedHeader)
    assert strip_client_headers(content, result.block) == message(
        f"From: {ALLOWED}", "To: p@example.org", "Subject: hi")


def test_nothing_to_remove_returns_the_same_bytes() -> None:
    content = message(f"From: {ALLOWED}", "To: p@example.org")
    result = check_message_header(content, ORIGINATORS)
    assert isinstance(result, CheckedHeader)
    assert strip_client_headers(content, result.block) is content
