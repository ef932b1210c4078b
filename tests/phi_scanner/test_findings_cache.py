"""The findings caches change what scanning costs, never what it finds (issue 16 items 2-3).

Two caches per worker: the cheap recognizers' findings per paragraph, and NER's entities per
chunk of text the model reads.

Cached and uncached scanning are compared on every evaluation set: the PhysioNet deid
development notes, the presidio-research sentences and the labelled practice emails. The
default run takes an evenly spaced sample of each set (a few hundred documents in all, to
keep the suite quick); ``PHIGATE_CACHE_EQUIVALENCE_FULL=1`` compares every document.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import pytest
from helpers.shared import EVAL

from phigate.config import ScannerSettings
from phigate.phi_scanner import Scanner
from phigate.phi_scanner.cache import FindingsCache, paragraphs
from phigate.phi_scanner.extract import html_to_text
from phigate.phi_scanner.findings import ScanResult

REPO = Path(__file__).resolve().parents[2]
PHYSIONET = EVAL / "phi/physionet-deid-dev/id.text"
PRESIDIO = EVAL / "phi/presidio-research/data/synth_dataset_v2.json"
EMAILS = REPO / "bench/data/practice_emails/emails.jsonl"
FULL = os.environ.get("PHIGATE_CACHE_EQUIVALENCE_FULL") == "1"
SAMPLE = {"physionet": 60, "presidio": 150, "emails": 120, "emails-crlf": 120}
RECORD = re.compile(r"START_OF_RECORD=(\d+)\|\|\|\|(\d+)\|\|\|\|\n(.*?)\|\|\|\|END_OF_RECORD",
                    re.S)


def _sample(items: list[bytes], name: str) -> list[bytes]:
    if FULL or len(items) <= SAMPLE[name]:
        return items
    return items[:: len(items) // SAMPLE[name]][: SAMPLE[name]]


def _as_email(text: str) -> bytes:
    message = EmailMessage()
    message["From"] = "nurse@practice.example.org"
    message["To"] = "colleague@example.net"
    message["Subject"] = "Note"
    message.set_content(text, charset="utf-8")
    return bytes(message)


def _documents(name: str) -> list[bytes]:
    if name == "physionet":
        if not PHYSIONET.is_file():
            pytest.skip("the PhysioNet deid development notes are not in shared/eval")
        notes = [m.group(3) for m in RECORD.finditer(PHYSIONET.read_text(encoding="latin-1"))]
        return _sample([_as_email(note) for note in notes], name)
    if name == "presidio":
        if not PRESIDIO.is_file():
            pytest.skip("the presidio-research set is not in shared/eval")
        items = json.loads(PRESIDIO.read_text(encoding="utf-8"))
        return _sample([_as_email(item["full_text"]) for item in items], name)
    rows = [json.loads(line) for line in EMAILS.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    emails = [row["eml"].encode("utf-8") for row in rows]
    if name == "emails-crlf":  # as they arrive over SMTP: text parts keep CRLF line ends
        emails = [raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for raw in emails]
    return _sample(emails, name)


@pytest.fixture(scope="module")
def scanners() -> tuple[Scanner, Scanner]:
    cached = Scanner(ScannerSettings())
    uncached = Scanner(replace(ScannerSettings(), cache_paragraphs=0))
    return cached, uncached


def _same(a: ScanResult, b: ScanResult) -> bool:
    return (a.verdict, a.score, a.categories, a.findings, a.notes) == (
        b.verdict, b.score, b.categories, b.findings, b.notes)


@pytest.mark.parametrize("name", ["physionet", "presidio", "emails", "emails-crlf"])
def test_cached_and_uncached_scans_agree_on_the_evaluation_sets(
        name: str, scanners: tuple[Scanner, Scanner]) -> None:
    cached, uncached = scanners
    documents = _documents(name)
    assert documents
    differing = []
    for index, raw in enumerate(documents):
        reference = uncached.scan_message(raw)
        cold = cached.scan_message(raw)
        warm = cached.scan_message(raw)  # every paragraph a hit now
        if not (_same(reference, cold) and _same(reference, warm)):
            differing.append(index)  # indexes only: the documents are PHI
    assert differing == []
    assert cached._cache is not None and cached._cache.hits > 0
    assert cached._ner_cache is not None and cached._ner_cache.hits > 0
    assert uncached._cache is None and uncached._ner_cache is None


def test_the_cache_holds_no_text() -> None:
    cache: FindingsCache[object] = FindingsCache(max_entries=8)
    scanner = Scanner(replace(ScannerSettings(ner="never"), cache_paragraphs=8))
    secret = "Patient Zebediah Quartermaine, DOB 03/14/1961, MRN 4471902, has metastatic gout."
    result = scanner.scan_text(secret)
    assert result.findings
    assert scanner._cache is not None
    for key, stages in scanner._cache._entries.items():
        assert len(key) == 32 and key not in (secret.encode(), cache.key(secret))
        dumped = repr(stages)
        for word in ("Zebediah", "Quartermaine", "03/14/1961", "4471902", "gout"):
            assert word not in dumped
    # keyed: another process (another key) cannot recompute a key from a guessed text
    assert scanner._cache.key(secret) != cache.key(secret)


def test_the_ner_cache_holds_no_text() -> None:
    scanner = Scanner(replace(ScannerSettings(ner="always"), cache_paragraphs=8))
    secret = ("Yesterday Zebediah Quartermaine walked in from Tallahassee and asked about "
              "the results.")
    result = scanner.scan_text(secret)
    assert any(f.reason == "NER person" for f in result.findings)
    assert scanner._ner_cache is not None and len(scanner._ner_cache) > 0
    for key, entities in scanner._ner_cache._entries.items():
        assert len(key) == 32
        assert all(label in ("PERSON", "GPE", "DATE") and isinstance(start, int)
                   and isinstance(end, int) for label, start, end in entities)
        for word in ("Zebediah", "Quartermaine", "Tallahassee", "Yesterday"):
            assert word not in repr(entities)


def _newsletter(name: str) -> bytes:
    shared = ("Our nutrition workshop starts in Riverton next month. Yesterday Zebediah "
              "Quartermaine walked in from Tallahassee to help us plan it.")
    return _alternative(f"Dear {name},\n\n{shared}\n\nNorthgate Family Practice",
                        f"<p>Dear {name},</p><p>{shared}</p><p>Northgate Family Practice</p>")


def test_crlf_paragraphs_are_cached_one_by_one() -> None:
    # Mail submitted over SMTP keeps CRLF in its text/plain part: each paragraph is still an
    # entry, so only the greeting of another patient's copy is read again.
    scanner = Scanner(replace(ScannerSettings(ner="never"), cache_paragraphs=64))
    assert scanner._cache is not None
    body = "\r\n\r\n".join(["Dear Ms. Okafor,", "Our clinic now opens at 7am on Mondays.",
                              "Parking is free in the north lot.",
                              "Northgate Family Practice, call (555) 201-3344 to book."])
    scanner.scan_text(body)
    misses = scanner._cache.misses
    assert misses == 3  # greeting, two paragraphs, the tail
    scanner.scan_text(body.replace("Okafor", "Brennan"))
    assert scanner._cache.misses == misses + 1


def test_a_campaigns_shared_text_goes_to_the_model_once() -> None:
    scanner = Scanner(replace(ScannerSettings(ner="always"), cache_paragraphs=64))
    uncached = Scanner(replace(ScannerSettings(ner="always"), cache_paragraphs=0))
    assert scanner._ner_cache is not None
    first = scanner.scan_message(_newsletter("Ms. Okafor"))
    chunks_read = scanner._ner_cache.misses
    assert chunks_read > 0
    # another patient of the same campaign: only the greeting's name differs, and the cue
    # name needs no model
    second = scanner.scan_message(_newsletter("Ms. Brennan"))
    assert scanner._ner_cache.misses == chunks_read
    assert scanner._ner_cache.hits >= chunks_read
    for raw, result in ((_newsletter("Ms. Okafor"), first), (_newsletter("Ms. Brennan"), second)):
        assert _same(result, uncached.scan_message(raw))
    assert any(f.reason == "NER person" for f in second.findings)


def test_the_cache_is_bounded_and_least_recently_used_goes_first() -> None:
    scanner = Scanner(replace(ScannerSettings(ner="never"), cache_paragraphs=3))
    assert scanner._cache is not None
    for n in range(5):
        scanner.scan_text(f"Paragraph number {n} about the clinic hours.")
    assert len(scanner._cache) == 3
    hits = scanner._cache.hits
    scanner.scan_text("Paragraph number 4 about the clinic hours.")
    assert scanner._cache.hits == hits + 1
    scanner.scan_text("Paragraph number 0 about the clinic hours.")  # evicted: a miss
    assert scanner._cache.hits == hits + 1


def test_repeated_boilerplate_is_scanned_once_per_worker() -> None:
    scanner = Scanner(replace(ScannerSettings(ner="never"), cache_paragraphs=64))
    assert scanner._cache is not None
    footer = "Clinic hours Monday to Friday 8am-6pm. Call 555-201-3344."
    text = "\n\n".join(["Dear Ms. Okafor, your flu shot is due."] + [footer] * 40)
    first = scanner.scan_text(text)
    # the greeting, the footer once, and the text's tail (its last paragraphs, read whole)
    assert scanner._cache.misses == 3 and scanner._cache.hits == 40 - 3
    phones = [f for f in first.findings if f.category == "PHONE_NUMBER"]
    assert len(phones) == 40 and all(f.text == "555-201-3344" for f in phones)
    assert [text[f.start:f.end] for f in first.findings] == [f.text for f in first.findings]


def test_html_block_elements_are_paragraphs() -> None:
    html = ("<html><body><table><tr><td>Dear Ms. Okafor,<br>your results</td></tr>"
            "<tr><td>Clinic hours 8am-6pm</td></tr></table><p>Call us</p></body></html>")
    text = html_to_text(html)
    assert [p for _, p in paragraphs(text)] == ["Dear Ms. Okafor,\nyour results",
                                              "Clinic hours 8am-6pm", "Call us"]


def _alternative(plain: str, html: str) -> bytes:
    message = EmailMessage()
    message["From"] = "front-desk@practice.example.org"
    message["To"] = "patient@example.net"
    message["Subject"] = "Your visit"
    message.set_content(plain)
    message.add_alternative(html, subtype="html")
    return bytes(message)


def _parts(result: ScanResult) -> Iterator[str]:
    return iter(sorted({f.part for f in result.findings if f.part.startswith("body")}))


def test_an_html_alternative_equal_to_the_text_is_scanned_once() -> None:
    scanner = Scanner(replace(ScannerSettings(ner="never"), cache_paragraphs=64))
    plain = "Dear Ms. Okafor,\n\nyour biopsy on 03/14/2026 showed no melanoma."
    html = ("<html><body><p>Dear Ms. Okafor,</p><p>your biopsy on 03/14/2026 showed no "
            "melanoma.</p></body></html>")
    same = scanner.scan_message(_alternative(plain, html))
    assert list(_parts(same)) == ["body"]
    different = scanner.scan_message(_alternative(
        plain, html.replace("no melanoma", "melanoma, call 555-201-3344")))
    assert list(_parts(different)) == ["body", "body[2]"]
    assert any(f.category == "PHONE_NUMBER" and f.part == "body[2]"
               for f in different.findings)
    assert different.verdict == "phi"
