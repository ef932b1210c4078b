"""The MIME parse writes the text of simple header values itself and still extracts, part for
part and character for character, what ``email.policy.default`` extracts (issue 16).

``extract._OneMessagePolicy`` hands a header the scanner reads back as the text its header
object would have, written by ``extract.header_text`` when the value is simple, instead of
building the object (~0.1 ms each, most of a newsletter's MIME parse). Two things make that
safe, and each is tested here: that text is exactly the text of the header object the
default policy builds (a property test over the simple grammar, folded or not, and over text
full of the characters the header parser decodes or repairs), and the extraction is the
default policy's on every message at hand: the practice emails, the benchmarks' messages,
the PhysioNet and presidio-research notes as the cache test mails them, every file of
shared/eval's mail corpora (bounces, feedback reports, DKIM and SMTP suites), the hostile
MIME of the fuzz tests and generated messages with awkward header values (``FULL`` below:
the default run samples two of the sets).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
from fuzz.hostile_mime import HOSTILE
from helpers.shared import EVAL
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phigate.phi_scanner import extract
from phigate.phi_scanner.extract import (
    SIMPLE_HEADER_VALUES,
    Extraction,
    Limits,
    extract_message,
    header_text,
)

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
EMAILS = BENCH / "data/practice_emails/emails.jsonl"
PHYSIONET = EVAL / "phi/physionet-deid-dev/id.text"
PRESIDIO = EVAL / "phi/presidio-research/data/synth_dataset_v2.json"
RECORD = re.compile(r"START_OF_RECORD=(\d+)\|\|\|\|(\d+)\|\|\|\|\n(.*?)\|\|\|\|END_OF_RECORD",
                    re.S)
#: The default run takes an evenly spaced sample of the two large sets (all of one shape:
#: the benchmarks' generated messages, the notes mailed by EmailMessage); with
#: ``PHIGATE_MIME_EQUIVALENCE_FULL=1`` every message of every set is compared.
FULL = os.environ.get("PHIGATE_MIME_EQUIVALENCE_FULL") == "1"
SAMPLE = {"benchmark messages": 300, "evaluation notes": 200}
# The bombs' MIME is base64-garbage-pdf's (one attachment); reading them twice takes long.
BOMBS = {"docx-bomb-100MB", "zip-bomb-200MB", "pdf-flate-bomb-200MB"}
LIMITS = Limits()
NAMES = sorted(SIMPLE_HEADER_VALUES)

# -- the written text is the header object's --------------------------------------------

#: What the header parser decodes, unquotes or repairs, what lies outside the grammar, and
#: pieces of simple values to put them among.
AWKWARD = st.lists(st.sampled_from(
    list("abc/;= \t\"\\()*'%?,:@<>[]{}.-_+") + [
        "=?", "?=", "=?utf-8?q?x?=", "\x00", "\x7f", "\xe9", "\udcff", "\r\n ", "\n\t",
        "text/plain", "; charset=", '"utf-8"', "utf-8", "; name=", '"a b.pdf"', "attachment"]),
    max_size=12).map("".join)

def _simple_or_awkward(name: str) -> st.SearchStrategy[str]:
    grammar = st.from_regex(SIMPLE_HEADER_VALUES[name], fullmatch=True)
    folded = st.tuples(grammar, st.integers(0, 40)).map(
        lambda drawn: _fold(drawn[0], drawn[1]))
    return st.one_of(grammar, folded, AWKWARD)


def _fold(value: str, at: int) -> str:
    """``value`` folded before its first white space from ``at`` on, as a long header is."""
    spaces = [i for i, char in enumerate(value) if char in " \t" and i >= at]
    return value if not spaces else value[:spaces[0]] + "\r\n" + value[spaces[0]:]


@settings(max_examples=int(os.environ.get("PHIGATE_HEADER_EXAMPLES", "1500")), deadline=None,
          database=None)
@given(data=st.data())
def test_the_written_text_is_the_default_policys_header(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(NAMES))
    value = data.draw(_simple_or_awkward(name))
    text = header_text(name, value)
    if text is not None:
        assert text == str(policy.default.header_fetch_parse(name.title(), value))


@pytest.mark.parametrize(("name", "value"), [
    ("subject", "=?utf-8?q?Ihr_Befund?="),
    ("subject", "R\xe9sultats"),
    ("content-type", 'text/plain; name="=?utf-8?b?bGFicy5wZGY=?="'),
    ("content-type", "text/plain; charset=utf-8 (a comment)"),
    ("content-type", 'application/pdf; name="a\\"b.pdf"'),
    ("content-type", 'application/pdf; name="never closed'),
    ("content-disposition", "attachment; filename*=utf-8''labs%20M%C3%BCller.pdf"),
    ("content-disposition", "attachment; filename*0=a; filename*1=b.pdf"),
    ("content-transfer-encoding", "base64 (sure)"),
    ("content-type", ""),
    ("from", "a@practice.test"),  # a header the scanner does not read: as the policy has it
])
def test_values_the_header_parser_changes_are_parsed(name: str, value: str) -> None:
    assert header_text(name, value) is None


def test_simple_values_are_written_as_the_header_objects_read() -> None:
    assert header_text("Content-Type", 'multipart/alternative;\r\n boundary="=_b=="') \
        == 'multipart/alternative; boundary="=_b=="'
    assert header_text("content-type", "text/plain;charset=UTF-8;  format=flowed") \
        == 'text/plain; charset="UTF-8"; format="flowed"'
    assert header_text("SUBJECT", "Your visit (Tuesday)") == "Your visit (Tuesday)"
    assert header_text("Content-Transfer-Encoding", "quoted-printable") == "quoted-printable"


# -- the extraction is the default policy's on every message at hand ------------------------


def _bench_module(name: str, path: Path) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # the bench scripts import load.* from there
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _as_email(text: str) -> bytes:
    message = EmailMessage()
    message["From"] = "nurse@practice.example.org"
    message["To"] = "colleague@example.net"
    message["Subject"] = "Note"
    message.set_content(text, charset="utf-8")
    return bytes(message)


def _crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@cache
def practice_emails() -> list[bytes]:
    rows = [json.loads(line) for line in EMAILS.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    emails = [row["eml"].encode("utf-8") for row in rows]
    return emails + [_crlf(raw) for raw in emails]  # as they arrive over SMTP too


@cache
def bench_messages() -> list[bytes]:
    messages = _bench_module("bench_messages", BENCH / "load/messages.py")
    built = messages.build_messages(1000, sender="reminders@practice.test",
                                    recipient_domain="patients.example")
    warm_up = messages.build_messages(20, sender="reminders@practice.test",
                                      recipient_domain="patients.example", seed=99)
    campaign = _bench_module("bench_campaign", BENCH / "campaign_bench.py")
    newsletters = [_crlf(raw) for _, raw in campaign.campaign_messages(50)]
    return [raw for _, raw in built + warm_up] + newsletters


@cache
def evaluation_notes() -> list[bytes]:
    notes: list[bytes] = []
    if PHYSIONET.is_file():
        text = PHYSIONET.read_text(encoding="latin-1")
        notes.extend(_as_email(m.group(3)) for m in RECORD.finditer(text))
    if PRESIDIO.is_file():
        items = json.loads(PRESIDIO.read_text(encoding="utf-8"))
        notes.extend(_as_email(item["full_text"]) for item in items)
    return notes


@cache
def shared_eval_mail() -> list[bytes]:
    if not EVAL.is_dir():
        return []
    return [path.read_bytes() for path in sorted(EVAL.rglob("*"))
            if path.is_file() and path.stat().st_size <= 1_000_000
            and "/phi/" not in path.as_posix()]


def hostile_mime() -> list[bytes]:
    return [raw for name, raw in sorted(HOSTILE.items()) if name not in BOMBS]


CORPORA: dict[str, Callable[[], list[bytes]]] = {
    "practice emails": practice_emails, "benchmark messages": bench_messages,
    "evaluation notes": evaluation_notes, "shared/eval mail": shared_eval_mail,
    "hostile MIME": hostile_mime}


def _extracted(raw: bytes) -> Extraction | str:
    try:
        return extract_message(raw, LIMITS)
    except RecursionError:
        return "RecursionError"  # the scanner turns it into an unscannable result


def _reference(raw: bytes) -> Extraction | str:
    """What the stock ``email.policy.default`` gives: every header an object, every read."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(extract, "_OneMessagePolicy", lambda: policy.default)
        return _extracted(raw)


class _Counting:
    """Counts the header values written and those parsed (no values kept)."""

    def __init__(self) -> None:
        self.written = 0
        self.parsed = 0

    def __call__(self, name: str, value: str) -> str | None:
        result = header_text(name, value)
        if name.lower() in SIMPLE_HEADER_VALUES:
            if result is None:
                self.parsed += 1
            else:
                self.written += 1
        return result


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_extraction_is_the_default_policys_on_every_message(
        corpus: str, monkeypatch: pytest.MonkeyPatch) -> None:
    messages = CORPORA[corpus]()
    if not FULL and len(messages) > SAMPLE.get(corpus, len(messages)):
        messages = messages[:: len(messages) // SAMPLE[corpus]]
    if not messages:
        pytest.skip(f"{corpus}: not in shared/eval")
    counting = _Counting()
    monkeypatch.setattr(extract, "header_text", counting)
    differing = [index for index, raw in enumerate(messages)  # indexes only: PHI
                 if _extracted(raw) != _reference(raw)]
    assert differing == []
    assert counting.written > 0  # the fast path was taken...
    if corpus in ("shared/eval mail", "hostile MIME"):
        assert counting.parsed > 0  # ...and in the real world's mail, the parser too


AWKWARD_VALUES = {
    "subject": [b"=?utf-8?b?SWhyIEJlZnVuZA==?=", b"=?iso-8859-1?q?R=E9sultats?= du labo",
                b"Caf\xc3\xa9 (utf-8 raw)", b"\xff\xfe", b"a\tb  c", b""],
    "content-type": [b'text/plain; charset="utf-8"', b"text/plain; charset=iso-8859-1",
                     b'text/plain; charset="utf-8" (comment)', b"text/html;charset=utf-8;",
                     b'application/pdf; name="=?utf-8?b?bGFicy5wZGY=?="',
                     b"application/pdf; name*=utf-8''r%C3%A9sultats.pdf",
                     b'text/csv; name="a\\"b.csv"', b'text/plain; name="open',
                     b"TEXT/PLAIN; CHARSET=UTF-8", b"text", b"text/plain;;charset=utf-8",
                     b'application/octet-stream; name="notes.txt"', b"image/png",
                     b'text/html; charset="x-bogus"'],
    "content-disposition": [b'attachment; filename="report.pdf"', b"inline",
                            b'attachment; filename="=?utf-8?q?labs.pdf?="',
                            b"attachment; filename*0=labs; filename*1=.pdf",
                            b"attachment; filename*=utf-8''%E2%82%AC.txt",
                            b"attachment (a comment); filename=x.docx", b"attachment;"],
    "content-transfer-encoding": [b"base64", b"quoted-printable", b"8bit", b" BASE64 ",
                                  b"base64 (comment)", b"x-uuencode", b""],
}
PAYLOADS = [b"Dear Jane Doe, MRN 00482913, type 2 diabetes.", b"SGVsbG8gV29ybGQ=",
            b"Caf=C3=A9 =\r\nsoft break", b"<p>Dear Ms. Okafor</p>", b"\xe9t\xe9"]


@st.composite
def awkward_part(draw: st.DrawFn) -> bytes:
    headers = b"Content-Type: " + draw(st.sampled_from(AWKWARD_VALUES["content-type"]))
    for name in ("content-disposition", "content-transfer-encoding"):
        if draw(st.booleans()):
            headers += (b"\r\n" + name.title().encode() + b": "
                        + draw(st.sampled_from(AWKWARD_VALUES[name])))
    return headers + b"\r\n\r\n" + draw(st.sampled_from(PAYLOADS))


@st.composite
def awkward_message(draw: st.DrawFn) -> bytes:
    parts = draw(st.lists(awkward_part(), min_size=1, max_size=4))
    boundary = draw(st.sampled_from([b'"=_b=="', b"simple", b'"a b"', b"=?x?="]))
    body = b"".join(b"--" + boundary.strip(b'"') + b"\r\n" + part + b"\r\n" for part in parts)
    return (b"From: a@practice.test\r\nSubject: "
            + draw(st.sampled_from(AWKWARD_VALUES["subject"]))
            + b"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed;\r\n boundary="
            + boundary + b"\r\n\r\n" + body + b"--" + boundary.strip(b'"') + b"--\r\n")


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(raw=awkward_message())
def test_extraction_is_the_default_policys_on_awkward_headers(raw: bytes) -> None:
    assert _extracted(raw) == _reference(raw)
