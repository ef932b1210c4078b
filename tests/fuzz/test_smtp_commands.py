"""Property-based fuzzing of SMTP command handling against the real submission server.

Properties, for any sequence of command lines and message contents:
- every line gets a well-formed SMTP reply (or the server says goodbye with 221/421/502
  and closes), within the deadline: no silence, no hang;
- none of it reaches our exception fallback (the ``451 Local error`` reply and the
  ``session_error`` log event): bad input is refused by name, not by accident;
- the server keeps serving: a fresh session is greeted after every example.
"""

from __future__ import annotations

import logging
import ssl

import pytest
from conftest import RelayHandle
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fuzz.wire import Wire

FUZZ_SETTINGS = settings(max_examples=60, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                HealthCheck.too_slow])

VERBS = [b"EHLO", b"HELO", b"MAIL", b"RCPT", b"DATA", b"RSET", b"NOOP", b"VRFY", b"EXPN",
         b"HELP", b"AUTH", b"STARTTLS", b"BDAT", b"ETRN", b"mail", b"rcpt", b"ehlo"]
GOODBYE = ("221", "421", "502")
LOCAL_ERROR = "Local error in processing"


def _no_newline(data: bytes) -> bytes:
    return data.replace(b"\n", b"_")


addresses = st.one_of(
    st.sampled_from([b"reminders@practice.test", b"patient@example.org", b"", b"@",
                     b"victim%other.test@practice.test", b"a!b@practice.test",
                     b"@relay.test:victim@other.test", b"p\xc3\xa4tient@ex\xc3\xa4mple.org",
                     b"x" * 300 + b"@example.org", b"reminders@practice.test> SIZE=1"]),
    st.binary(max_size=80).map(_no_newline),
)
params = st.lists(st.sampled_from([b"SIZE=100", b"SIZE=99999999999", b"SIZE=-1",
                                   b"BODY=8BITMIME", b"BODY=BINARYMIME", b"SMTPUTF8",
                                   b"RET=HDRS", b"ENVID=x", b"NOTIFY=NEVER", b"AUTH=<>",
                                   b"=", b"FOO"]), max_size=3)


@st.composite
def envelope_lines(draw: st.DrawFn) -> bytes:
    verb = draw(st.sampled_from([b"MAIL FROM:", b"RCPT TO:", b"mail from: ", b"RCPT TO:"]))
    wrap = draw(st.booleans())
    address = draw(addresses)
    line = verb + (b"<" + address + b">" if wrap else address)
    extra = draw(params)
    return _no_newline(b" ".join([line, *extra]))


command_lines = st.one_of(
    st.builds(lambda verb, arg: verb + (b" " + arg if arg else b""),
              st.sampled_from(VERBS), st.binary(max_size=60).map(_no_newline)),
    envelope_lines(),
    st.sampled_from([b"", b" ", b"\r", b"\x00", b"\xff\xfe", b"AUTH PLAIN", b"AUTH LOGIN",
                     b"AUTH CRAM-MD5", b"AUTH PLAIN =", b"AUTH PLAIN !!!", b"*",
                     b"EHLO " + b"h" * 600, b"NOOP " + b"n" * 2100, b"STARTTLS",
                     b"DATA", b"BDAT 10 LAST", b"HELO \xe4\xf6\xfc"]),
    st.binary(min_size=1, max_size=40).map(_no_newline),
)

header_names = st.sampled_from([b"From", b"To", b"Subject", b"X-Phigate-Class",
                                b"X-Phigate-Campaign", b"Content-Type",
                                b"Content-Transfer-Encoding", b"MIME-Version", b"Received",
                                b"Message-ID", b"Date", b"From ", b"", b"\xc3\xa4"])
header_values = st.one_of(
    st.sampled_from([b"reminders@practice.test", b"<reminders@practice.test>",
                     b"a@practice.test, b@practice.test", b"treatment", b"marketing",
                     b"spam", b"multipart/mixed; boundary=", b"text/plain; charset=bogus",
                     b"base64", b"=?utf-8?b?!!!?=", b"=?x-unknown?q?=FF?=", b"\xff\xfe\xfd",
                     b"x" * 1200]),
    st.binary(max_size=60).map(lambda v: v.replace(b"\r", b"").replace(b"\n", b"")),
)


@st.composite
def message_contents(draw: st.DrawFn) -> bytes:
    headers = []
    if draw(st.booleans()):
        headers.append(b"From: reminders@practice.test")
    for name, value in draw(st.lists(st.tuples(header_names, header_values), max_size=6)):
        headers.append(name + b": " + value)
    body = draw(st.one_of(
        st.binary(max_size=400),
        st.sampled_from([b"", b".", b"..\r\n.", b"\r\n.\r\n", b"line\nbare LF",
                         b"bare\rCR", b"nul\x00byte", b"y" * 1500, b"\xff" * 50]),
    ))
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


async def run_session(wire: Wire, lines: list[bytes], contents: list[bytes],
                      tls: ssl.SSLContext) -> list[str]:
    """Send each line; follow STARTTLS and DATA; return the replies. Asserts on silence."""
    replies: list[str] = []
    for line in lines:
        reply = await wire.command(line)
        assert reply, f"connection closed without a reply (after {replies[-3:]})"
        replies.append(reply)
        if reply.startswith(GOODBYE):
            break
        if reply.startswith("220") and line.upper().startswith(b"STARTTLS"):
            await wire.starttls(tls)
        elif reply.startswith("354"):
            content = contents.pop() if contents else b"Subject: x\r\n\r\nempty\r\n"
            reply = await wire.data(content)
            assert reply, "connection closed without a reply to the end of DATA"
            replies.append(reply)
    return replies


def assert_no_internal_errors(replies: list[str], caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in replies if LOCAL_ERROR in r], replies
    errors = [r for r in caplog.records if r.getMessage() == "session_error"]
    assert not errors, [getattr(r, "phigate_fields", {}) for r in errors]


async def assert_still_serving(relay: RelayHandle) -> None:
    wire, greeting = await Wire.open(relay.port, timeout=5)
    assert greeting.startswith("220")
    assert (await wire.command(b"EHLO check.test")).startswith("250")
    await wire.close()


@FUZZ_SETTINGS
@given(lines=st.lists(command_lines, min_size=1, max_size=12),
       contents=st.lists(message_contents(), max_size=2))
async def test_any_command_sequence_before_auth_gets_a_reply(
    relay: RelayHandle, client_tls: ssl.SSLContext, caplog: pytest.LogCaptureFixture,
    lines: list[bytes], contents: list[bytes],
) -> None:
    caplog.set_level(logging.INFO, logger="phigate")
    wire, greeting = await Wire.open(relay.port, timeout=5)
    try:
        assert greeting.startswith("220")
        replies = await run_session(wire, lines, contents, client_tls)
    finally:
        await wire.close()
    # Nothing but AUTH-less probing happened: no message may have been accepted.
    assert not [r for r in replies if r.startswith("250 2.0.0 Queued")], replies
    assert_no_internal_errors(replies, caplog)
    await assert_still_serving(relay)


@st.composite
def transactions(draw: st.DrawFn) -> list[bytes]:
    """Fuzzed commands, mostly followed by a transaction that reaches DATA, so that the
    content fuzzing meets the header checks, the policy and the queue."""
    lines = draw(st.lists(st.one_of(envelope_lines(), command_lines), max_size=6))
    if draw(st.integers(0, 4)) > 0:
        lines += [b"RSET", b"MAIL FROM:<reminders@practice.test>",
                  b"RCPT TO:<patient@example.org>", b"DATA"]
    return lines or [b"NOOP"]


@FUZZ_SETTINGS
@given(lines=transactions(), contents=st.lists(message_contents(), max_size=3))
async def test_any_envelope_and_content_after_auth_gets_a_reply(
    relay: RelayHandle, client_tls: ssl.SSLContext, caplog: pytest.LogCaptureFixture,
    lines: list[bytes], contents: list[bytes],
) -> None:
    caplog.set_level(logging.INFO, logger="phigate")
    wire, greeting = await Wire.open(relay.port, timeout=5)
    try:
        await wire.login(client_tls, "clinic", "correct horse")
        replies = await run_session(wire, lines, contents, client_tls)
    finally:
        await wire.close()
    for reply in replies:
        event(f"reply {reply[:3]}")  # --hypothesis-show-statistics: how deep sessions got
    assert_no_internal_errors(replies, caplog)
    await assert_still_serving(relay)


async def test_well_formed_message_after_the_fuzz_style_session_is_queued(
    relay: RelayHandle, client_tls: ssl.SSLContext
) -> None:
    """The session driver itself can get a message through: the properties above are not
    vacuous because every session fails early."""
    wire, _ = await Wire.open(relay.port)
    await wire.login(client_tls, "clinic", "correct horse")
    replies = await run_session(
        wire, [b"MAIL FROM:<reminders@practice.test>", b"RCPT TO:<patient@example.org>",
               b"DATA", b"QUIT"],
        [b"From: reminders@practice.test\r\nSubject: hi\r\n\r\n.leading dot\r\nok"],
        client_tls)
    await wire.close()
    assert replies[3].startswith("250 2.0.0 Queued as"), replies
    assert replies[-1].startswith("221")
