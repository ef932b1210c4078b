"""The debug-level ``accept_timing`` line: where one accepted message's time went (issue 16,
the acceptance latency tail), over a real STARTTLS session.

One line per accepted message, named by its queue id, with the stages of its transaction
(the client's turns, each worker thread's queue, run and the loop's resume, the group
commit's queue and write, the writer's turn) and nothing else: no address, no subject, no
body. Not written at info level, nor for a refused message.
"""

from __future__ import annotations

import logging
import ssl

import aiosmtplib
import pytest
from conftest import RelayHandle

from mta.submission.test_submission import connect, make_message
from phigate.observability.logs import FIELDS_ATTR, JsonFormatter, LogfmtFormatter

#: Stages every accepted message passes through with scanning off.
STAGES = ("client_ms", "rcpt_queue_ms", "rcpt_run_ms", "rcpt_resume_ms", "data_read_ms",
          "checks_queue_ms", "checks_run_ms", "checks_resume_ms", "store_queue_ms",
          "store_run_ms", "store_resume_ms", "decide_ms", "commit_queued_ms",
          "commit_write_ms", "writer_turn_ms", "total_ms")
COUNTS = {"commit_batch", "scans_in_flight"}


def timing_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.getMessage() == "accept_timing"]


async def send_two(relay: RelayHandle, client_tls: ssl.SSLContext) -> list[str]:
    """Two messages in one session (two transactions); their queue ids."""
    client = await connect(relay, client_tls)
    try:
        ids = []
        for token in ("TOKEN-1", "TOKEN-2"):
            _, reply = await client.send_message(make_message(token))
            ids.append(reply.rsplit(" ", 1)[1])
        return ids
    finally:
        await client.quit()


async def test_each_accepted_message_gets_one_timing_line_with_its_stages_and_no_phi(
        relay: RelayHandle, client_tls: ssl.SSLContext,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="phigate")
    ids = await send_two(relay, client_tls)

    records = timing_records(caplog)
    assert [getattr(r, FIELDS_ATTR)["id"] for r in records] == ids
    for record in records:
        assert record.levelno == logging.DEBUG
        fields = dict(getattr(record, FIELDS_ATTR))
        del fields["id"]
        assert set(STAGES) <= set(fields), set(STAGES) - set(fields)
        # Names and numbers only: every other field is a stage's milliseconds.
        assert all(key.endswith("_ms") or key in COUNTS for key in fields), fields
        assert all(isinstance(value, int | float) and value >= 0 for value in fields.values())
        assert fields["commit_batch"] >= 1  # each message's session led its own commit here
        assert fields["total_ms"] >= fields["store_run_ms"]
        for formatter in (LogfmtFormatter(), JsonFormatter()):
            line = formatter.format(record)
            for secret in ("patient@example.org", "reminders@practice.test",
                           "Your appointment", "Tuesday", "TOKEN", "clinic"):
                assert secret not in line


async def test_no_timing_line_at_info_level(relay: RelayHandle, client_tls: ssl.SSLContext,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="phigate")
    await send_two(relay, client_tls)
    assert timing_records(caplog) == []
    assert len([r for r in caplog.records if r.getMessage() == "accepted"]) == 2


async def test_a_refused_message_gets_no_timing_line_and_the_next_one_its_own(
        relay: RelayHandle, client_tls: ssl.SSLContext,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="phigate")
    client = await connect(relay, client_tls)
    try:
        with pytest.raises(aiosmtplib.SMTPDataError):  # an unknown class: 5xx at DATA
            await client.send_message(make_message("TOKEN-1", X_Phigate_Class="nonsense"))
        _, reply = await client.send_message(make_message("TOKEN-2"))
    finally:
        await client.quit()
    [record] = timing_records(caplog)
    fields = getattr(record, FIELDS_ATTR)
    assert fields["id"] == reply.rsplit(" ", 1)[1]
    assert set(STAGES) <= set(fields)
