"""A forged bounce megabytes long is classified in time that grows linearly with its size
(a line without "@" used to make the address search quadratic: 64 KB took > 40 s)."""

from __future__ import annotations

import time

import pytest

from phigate.policy.feedback.classify import classify

_HEAD = (b"From: MAILER-DAEMON@mx.example.net\r\nTo: sender@example.org\r\n"
         b"Subject: Undelivered Mail Returned to Sender\r\nContent-Type: text/plain\r\n\r\n"
         b"Your message could not be delivered.\r\n\r\n"
         b"<someone@example.com>: host mx.example.com said: 550 5.1.1 ")


def _cpu_seconds(raw: bytes) -> float:
    started = time.process_time()
    report = classify(raw, verify_dkim=False)
    elapsed = time.process_time() - started
    assert report.kind == "bounce"
    assert [r.address for r in report.recipients] == ["someone@example.com"]
    return elapsed


@pytest.mark.parametrize("filler", [b"a", b" ", b"5.5.", b"@", b"<"])
def test_a_multi_megabyte_bounce_line_is_classified_in_linear_time(filler: bytes) -> None:
    small = _cpu_seconds(_HEAD + filler * ((1 << 20) // len(filler)) + b"\r\n")
    large = _cpu_seconds(_HEAD + filler * ((4 << 20) // len(filler)) + b"\r\n")
    assert large < 8 * small + 1.0  # 4x the input: about 4x the time, never 16x
    assert large < 20.0


def test_a_bounce_of_many_short_lines_is_classified_in_linear_time() -> None:
    def lines(count: int) -> bytes:
        return b"\r\n".join(b"note %d: nothing to see" % i for i in range(count))

    small = _cpu_seconds(_HEAD + b"\r\n" + lines(40_000))
    large = _cpu_seconds(_HEAD + b"\r\n" + lines(160_000))
    assert large < 8 * small + 1.0
