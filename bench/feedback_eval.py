"""Feedback classification against the shared samples: prints the figures for RESULTS.md.

    .venv/bin/python bench/feedback_eval.py [--eval-dir /work/shared/eval] [--verbose]

Bounces: flufl.bounce's 103 expectations (expected.json). A row is right when the set of
addresses phigate reports equals the expected set AND each is reported with the expected
permanent/temporary kind. groupwise_02.txt has two rows that contradict each other for a
whole-message classifier (the groupwise detector alone finds nothing, the exchange
detector finds the address), so the per-file figure scores each file once against its
non-empty expectation.

ARF: each stalwart sample's feedback type must match, and where the sample's expected
parse has Original-Rcpt-To, the first recipient phigate reports must be that address.

sisimai (development part, sisimai-dev/expected.json): per file and recipient index,
sisimai's status, reply code, reason and hard-bounce flag. See :func:`score_sisimai`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from phigate.policy.feedback.classify import FeedbackReport, classify

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers.shared import EVAL as DEFAULT_EVAL

NOT_BOUNCES = frozenset({"delivered", "vacation", "feedback"})


@dataclass
class Score:
    right: int = 0
    total: int = 0
    misses: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.right / self.total if self.total else 0.0


def _no_dns(name: bytes, timeout: int = 5) -> bytes | None:
    return None  # offline: report DKIM as permerror instead of querying the network


def score_bounces(eval_dir: Path) -> tuple[Score, Score, float]:
    """(per expectation row, per file, seconds per message)."""
    base = eval_dir / "bounce/flufl.bounce"
    rows = json.loads((base / "expected.json").read_text())
    by_row, by_file = Score(), Score()
    file_expectation: dict[str, dict[str, object]] = {}
    verdicts: dict[str, bool] = {}
    started = time.perf_counter()
    for row in rows:
        report = classify((base / row["file"]).read_bytes(), verify_dkim=False)
        got = {r.address.lower() for r in report.recipients}
        expected = {a.lower() for a in row["expected_addresses"]}
        permanent = row["kind"] == "permanent"
        right = got == expected and all(r.temporary != permanent for r in report.recipients)
        by_row.total += 1
        by_row.right += right
        if not right:
            found = [(r.address, "temporary" if r.temporary else "permanent")
                     for r in report.recipients]
            by_row.misses.append(f"{row['file'].rsplit('/', 1)[-1]} ({row['detector']}): "
                                 f"expected {sorted(expected)} {row['kind']}, got {found}")
        if expected or row["file"] not in file_expectation:
            file_expectation[row["file"]] = row
            verdicts[row["file"]] = right
    elapsed = time.perf_counter() - started
    by_file.total = len(verdicts)
    by_file.right = sum(verdicts.values())
    by_file.misses = [name for name, ok in verdicts.items() if not ok]
    return by_row, by_file, elapsed / len(rows)


def score_flufl_alone(eval_dir: Path) -> Score:
    """The comparison: flufl.bounce's all_failures() on its own, scored the same way."""
    import email

    from flufl.bounce import all_failures

    base = eval_dir / "bounce/flufl.bounce"
    score = Score()
    for row in json.loads((base / "expected.json").read_text()):
        temporary, permanent = all_failures(email.message_from_bytes((base / row["file"])
                                                                     .read_bytes()))
        wanted, other = (permanent, temporary) if row["kind"] == "permanent" else (
            temporary, permanent)
        expected = {a.lower() for a in row["expected_addresses"]}
        score.total += 1
        score.right += {a.decode().lower() for a in wanted} == expected and not other
    return score


def _kebab(rust_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", rust_name).lower()


def score_arf(eval_dir: Path) -> tuple[Score, Score]:
    """(feedback type right, original recipient right where the sample has one)."""
    directory = eval_dir / "arf/stalwart-mail-auth/resources/arf"
    types, recipients = Score(), Score()
    for sample in sorted(directory.glob("*.eml")):
        expected = json.loads(sample.with_suffix(".json").read_text())
        report = classify(sample.read_bytes(), dns=_no_dns)
        types.total += 1
        if report.feedback_type == _kebab(expected["feedback_type"]):
            types.right += 1
        else:
            types.misses.append(f"{sample.name}: {report.feedback_type}")
        if expected["original_rcpt_to"]:
            recipients.total += 1
            want = expected["original_rcpt_to"].strip("<>").lower()
            got = report.recipients[0].address.lower() if report.recipients else None
            if got == want:
                recipients.right += 1
            else:
                recipients.misses.append(f"{sample.name}: {got}")
    return types, recipients


@dataclass
class SisimaiScores:
    """Figures on sisimai's expectations. Rows are (file, recipient index) pairs."""

    bounce_files: Score = field(default_factory=Score)  # kind bounce, right recipient(s)
    hard: Score = field(default_factory=Score)  # permanent == sisimai's hardbounce
    category: Score = field(default_factory=Score)  # category == sisimai's reason
    status: Score = field(default_factory=Score)
    reply_code: Score = field(default_factory=Score)  # where sisimai has one
    complaints: Score = field(default_factory=Score)
    left_alone: Score = field(default_factory=Score)  # delivered/vacation: not a bounce
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)


def _right_recipients(report: FeedbackReport, expected: int, raw: bytes) -> bool:
    """sisimai's expectations name no address: the right recipients are as many as it
    reports, none of them the bounce's own To: (our sender), each named in the message."""
    import email
    from email.utils import getaddresses

    message = email.message_from_bytes(raw)
    own = {a.lower() for _, a in getaddresses([str(v) for v in message.get_all("To", [])])}
    text = raw.decode("utf-8", "replace").lower()
    addresses = [r.address.lower() for r in report.recipients]
    return (report.kind == "bounce" and len(addresses) == expected
            and not own.intersection(addresses) and all(a in text for a in addresses))


def score_sisimai(eval_dir: Path) -> SisimaiScores:
    base = eval_dir / "bounce/sisimai-dev"
    by_file: dict[str, list[dict[str, object]]] = {}
    for row in json.loads((base / "expected.json").read_text()):
        by_file.setdefault(str(row["file"]), []).append(row)
    scores = SisimaiScores()
    for name, rows in sorted(by_file.items()):
        raw = (base / name).read_bytes()
        report = classify(raw, verify_dkim=False)
        short = name.rsplit("/", 1)[-1]
        reasons = {str(row["reason"]) for row in rows}
        if reasons & NOT_BOUNCES:
            target = scores.complaints if "feedback" in reasons else scores.left_alone
            want = "complaint" if "feedback" in reasons else "other"
            target.total += 1
            target.right += report.kind == want
            if report.kind != want:
                target.misses.append(f"{short}: {report.kind}")
            continue
        scores.bounce_files.total += 1
        if _right_recipients(report, len(rows), raw):
            scores.bounce_files.right += 1
        else:
            scores.bounce_files.misses.append(
                f"{short}: {report.kind} {[r.address for r in report.recipients]}")
        for row, got in zip(rows, _padded(report, len(rows)), strict=True):
            _score_row(scores, short, row, got)
    return scores


def _padded(report: FeedbackReport, count: int) -> list[object]:
    found: list[object] = list(report.recipients[:count]) if report.kind == "bounce" else []
    return found + [None] * (count - len(found))


def _score_row(scores: SisimaiScores, short: str, row: dict[str, object], got: object) -> None:
    category = getattr(got, "category", None)
    checks = (
        (scores.hard, getattr(got, "permanent", None) == row["hardbounce"] and got is not None,
         f"hard={getattr(got, 'permanent', None)} want {row['hardbounce']}"),
        (scores.category, category == row["reason"], f"{category} want {row['reason']}"),
        (scores.status, getattr(got, "status", None) == row["status"],
         f"{getattr(got, 'status', None)} want {row['status']}"),
    )
    reason_text = (getattr(got, "reason", None) or "")[:120]
    for score, right, detail in checks:
        score.total += 1
        score.right += bool(right)
        if not right:
            score.misses.append(f"{short}#{row['index']}: {detail} | {reason_text}")
    if row["replycode"]:
        scores.reply_code.total += 1
        scores.reply_code.right += getattr(got, "reply_code", None) == row["replycode"]
    scores.confusion[(str(row["reason"]), str(category))] += 1


def print_sisimai(scores: SisimaiScores, *, verbose: bool) -> None:
    figures = (
        ("bounces recognised, right recipient(s)", scores.bounce_files, "files"),
        ("hard/soft agreement", scores.hard, "rows"),
        ("category = sisimai's reason", scores.category, "rows"),
        ("status agreement", scores.status, "rows"),
        ("reply code agreement (where sisimai has one)", scores.reply_code, "rows"),
        ("complaints recognised", scores.complaints, "files"),
        ("non-bounces left alone (delivered, vacation)", scores.left_alone, "files"),
    )
    for label, score, unit in figures:
        print(f"sisimai-dev, {label}: {score.right}/{score.total} {unit} ({score.rate:.1%})")
    if verbose:
        for label, score, _ in figures:
            for miss in score.misses:
                print(f"  miss ({label}): {miss}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    by_row, by_file, per_message = score_bounces(args.eval_dir)
    types, recipients = score_arf(args.eval_dir)
    baseline = score_flufl_alone(args.eval_dir)
    sisimai = score_sisimai(args.eval_dir) if (args.eval_dir / "bounce/sisimai-dev").is_dir() \
        else None
    print(f"bounces, right address and kind: {by_row.right}/{by_row.total} rows "
          f"({by_row.rate:.1%}); {by_file.right}/{by_file.total} files ({by_file.rate:.1%})")
    print(f"bounces, flufl.bounce all_failures() alone: {baseline.right}/{baseline.total} rows "
          f"({baseline.rate:.1%})")
    print(f"bounces, classification time: {per_message * 1000:.2f} ms/message")
    print(f"ARF feedback type right: {types.right}/{types.total}; "
          f"original recipient right: {recipients.right}/{recipients.total} (where present)")
    if args.verbose:
        for miss in by_row.misses + types.misses + recipients.misses:
            print("  miss:", miss)
    if sisimai is not None:
        print_sisimai(sisimai, verbose=args.verbose)


if __name__ == "__main__":
    main()
