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
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from phigate.policy.feedback import classify

DEFAULT_EVAL = Path("/work/shared/eval")


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
        right = got == expected and all(r.permanent == permanent for r in report.recipients)
        by_row.total += 1
        by_row.right += right
        if not right:
            found = [(r.address, "permanent" if r.permanent else "temporary")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    by_row, by_file, per_message = score_bounces(args.eval_dir)
    types, recipients = score_arf(args.eval_dir)
    baseline = score_flufl_alone(args.eval_dir)
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


if __name__ == "__main__":
    main()
