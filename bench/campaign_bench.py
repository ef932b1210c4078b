"""One campaign's personalised newsletters through the relay, scanner caches on vs off
(issue 16 item 3).

A marketing campaign sends one body (HTML alternative and footer included) to thousands of
patients with the greeting and name changed per recipient. This benchmark does what a
marketing tool does: it submits N such messages of ONE approved campaign over SMTP
(STARTTLS, AUTH, ``X-Phigate-Class: marketing``, ``X-Phigate-Campaign``) to a real
``phigate serve`` (``bench/relay_vs_postfix.py``'s relay and TLS sink), with a marketing
consent recorded for every recipient (``phigate consent import``) and the campaign approved
(``phigate campaign approve``) before the first message. It runs twice, with the scanner's
caches on (the defaults) and off (``[scanner] cache_paragraphs = 0``: no paragraph findings
cache, no NER chunk cache), and prints per run: accepted msg/s, p50/p99 acceptance latency,
the CPU per message of the scanner worker processes (from /proc) and of the whole relay,
and the ratio of scanner CPU off/on.

    .venv/bin/python bench/campaign_bench.py                # N=10,000, M=10
    .venv/bin/python bench/campaign_bench.py -n 2000
    .venv/bin/python bench/campaign_bench.py --in-process -n 2000   # the scanner alone

The newsletter greets its patient by name and says "our patient": the scanner judges it PHI,
so with ``action_marketing = "quarantine"`` (the default) the messages are accepted and held
for review, not delivered; the "delivered" column says how many reached the sink.

``--in-process`` scans the same messages with one ``Scanner`` in this process
(``scan_message``, as a worker does), no relay: quick, and what to profile.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from load.generator import LoadResult, run_load
from load.procstat import spawned_worker_cpu, tree_cpu_seconds
from relay_vs_postfix import PHIGATE, RECIPIENT_DOMAIN, RunningRelay, phigate_relay

CAMPAIGN = "spring-newsletter-2026"
SENDER = "news@practice.test"
POSTAL_ADDRESS = "Northgate Family Practice, 1200 Harbor Road, Suite 300, Springfield"
FIRST = ["Maria", "James", "Aisha", "Wei", "Olga", "Tomas", "Priya", "Kwame", "Sofia", "Liam"]
LAST = ["Lopez", "Okafor", "Nguyen", "Schmidt", "Patel", "Kowalski", "Haddad", "Brennan"]
PARAGRAPHS = [
    "Spring is here, and with it our new extended hours: the clinic is now open until 7pm "
    "on Thursdays, and on the first Saturday of every month from 9am to 1pm.",
    "Our nutrition workshop series starts next month. Sessions are free for everyone in "
    "the community, and you can bring a friend or a family member along.",
    "We have moved our patient portal to a new address. Your login stays the same; "
    "bookmarks to the old page will forward you for the next three months.",
    "Parking: the north lot is being resurfaced until the end of the month. Please use the "
    "garage on Elm Street; we validate tickets at the front desk.",
]
FOOTER = ("Northgate Family Practice, 1200 Harbor Road, Suite 300, Springfield. Phone "
          "(555) 201-3344. You receive this newsletter because you asked to. Unsubscribe: "
          "https://practice.test/unsubscribe")


def recipient(index: int) -> str:
    return f"patient{index}@{RECIPIENT_DOMAIN}"


def newsletter(index: int, rng: random.Random) -> bytes:
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    greeting = f"Dear {name},"
    plain = "\n\n".join([greeting, *PARAGRAPHS, FOOTER]) + "\n"
    html = ("<html><body><table width=\"600\"><tr><td>"
            + "".join(f"<p>{p}</p>" for p in [greeting, *PARAGRAPHS])
            + f"</td></tr><tr><td><small>{FOOTER}</small></td></tr></table></body></html>")
    message = EmailMessage()
    message["From"] = f"Northgate Family Practice <{SENDER}>"
    message["To"] = f"{name} <{recipient(index)}>"
    message["Subject"] = "Northgate news: spring hours and workshops"
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain="practice.test")
    message["X-Phigate-Class"] = "marketing"
    message["X-Phigate-Campaign"] = CAMPAIGN
    message.set_content(plain)
    message.add_alternative(html, subtype="html")
    return bytes(message)


def campaign_messages(count: int, first_index: int = 0, seed: int = 16
                      ) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    return [(recipient(i), newsletter(i, rng)) for i in range(first_index, first_index + count)]


# -- through the relay ----------------------------------------------------------------------


@dataclass
class Run:
    label: str
    load: LoadResult
    scanner_cpu: float  # seconds, the scanner worker processes
    relay_cpu: float  # seconds, serve and all its children
    workers: int
    workers_replaced: bool
    delivered: int

    @property
    def accepted_rate(self) -> float:
        return self.load.accepted / self.load.seconds if self.load.seconds else 0.0

    def per_message_ms(self, seconds: float) -> float:
        return seconds / max(1, self.load.accepted) * 1000


def setup_campaign(total: int, consents: Path) -> Callable[[Path], None]:
    """What the practice does before the campaign goes out: every recipient's marketing
    consent on file (an import, as from the sign-up form's export), the campaign approved."""
    def setup(config: Path) -> None:
        consents.write_text("address,purpose,source,evidence\n" + "".join(
            f"{recipient(i)},marketing,newsletter sign-up,web form {i}\n"
            for i in range(total)))
        for command in (["consent", "import", str(consents)],
                        ["campaign", "approve", CAMPAIGN, "--ip", "127.0.0.1"]):
            done = subprocess.run([*PHIGATE, "--config", str(config), *command],
                                  capture_output=True)
            if done.returncode != 0:
                raise RuntimeError(f"{command[0]} {command[1]} failed: "
                                   f"{done.stderr.decode()[-500:]}")
    return setup


def run_relay(label: str, cache_entries: int, args: argparse.Namespace, workdir: Path,
              warmup: list[tuple[str, bytes]], messages: list[tuple[str, bytes]]) -> Run:
    directory = workdir / label.replace(" ", "-")
    setup = setup_campaign(len(warmup) + len(messages),
                           workdir / f"consents-{label.replace(' ', '-')}.csv")
    env = {"PHIGATE_POLICY__POSTAL_ADDRESS": POSTAL_ADDRESS,
           "PHIGATE_SCANNER__CACHE_PARAGRAPHS": str(cache_entries)}
    relay: RunningRelay
    with phigate_relay(directory, workdir, scanning=True, classes="marketing", env=env,
                       setup=setup) as relay:
        load = asyncio.run(run_load(relay.port, warmup, connections=min(4, len(warmup)),
                                    sender=SENDER, tls=relay.tls, login=relay.login))
        if load.refused:
            raise RuntimeError(f"warm-up messages refused: {load.refused}")
        before_workers = spawned_worker_cpu(relay.pid)
        before_tree = tree_cpu_seconds(relay.pid)
        delivered_before = relay.sink.count()
        load = asyncio.run(run_load(relay.port, messages, connections=args.connections,
                                    sender=SENDER, tls=relay.tls, login=relay.login))
        after_workers = spawned_worker_cpu(relay.pid)
        relay_cpu = tree_cpu_seconds(relay.pid) - before_tree
        relay.sink.wait_for(delivered_before + load.accepted, args.delivery_timeout)
        delivered = relay.sink.count() - delivered_before
    replaced = set(after_workers) != set(before_workers)
    scanner_cpu = sum(cpu - before_workers.get(pid, 0.0) for pid, cpu in after_workers.items())
    return Run(label, load, scanner_cpu, relay_cpu, len(after_workers), replaced, delivered)


def report_relay(runs: list[Run], args: argparse.Namespace) -> None:
    print(f"\n{args.messages} personalised newsletters of one approved campaign, "
          f"{args.connections} connections (STARTTLS, AUTH), marketing consent for every "
          "recipient\n")
    header = (f"{'scanner caches':<16}{'accepted':>9}{'acc msg/s':>11}{'p50 ms':>9}"
              f"{'p99 ms':>9}{'scanner CPU ms/msg':>20}{'relay CPU ms/msg':>18}"
              f"{'delivered':>11}")
    print(header)
    print("-" * len(header))
    for run in runs:
        print(f"{run.label:<16}{run.load.accepted:>9}{run.accepted_rate:>11.1f}"
              f"{run.load.percentile(0.5) * 1000:>9.1f}{run.load.percentile(0.99) * 1000:>9.1f}"
              f"{run.per_message_ms(run.scanner_cpu):>20.2f}"
              f"{run.per_message_ms(run.relay_cpu):>18.2f}{run.delivered:>11}")
        if run.load.refused:
            print(f"{'':<16}refused: {run.load.refused}")
        if run.load.reconnects:
            print(f"{'':<16}sessions ended by a 421 and opened again: "
                  f"{run.load.reconnects}")
        if run.workers_replaced:
            print(f"{'':<16}a scanner worker was replaced during the run: its CPU is missing")
    cached, uncached = (run.per_message_ms(run.scanner_cpu) for run in runs)
    print(f"\nscanner CPU per message: caches on {cached:.2f} ms, off {uncached:.2f} ms: "
          f"on is {uncached / max(cached, 1e-9):.1f}x cheaper")


# -- the scanner alone ----------------------------------------------------------------------


def in_process(messages: list[bytes]) -> None:
    from phigate.config import ScannerSettings
    from phigate.phi_scanner import Scanner

    rows = []
    for label, entries in (("caches on", ScannerSettings().cache_paragraphs), ("caches off", 0)):
        scanner = Scanner(replace(ScannerSettings(), cache_paragraphs=entries))
        scanner.scan_message(messages[0])  # model warm, as in a started worker
        verdicts: set[str] = set()
        cpu, wall = time.process_time(), time.perf_counter()
        for raw in messages:
            verdicts.add(scanner.scan_message(raw).verdict)
        rows.append((label, time.process_time() - cpu, time.perf_counter() - wall, verdicts))
    print(f"{len(messages)} personalised newsletters of one campaign, one scanner process\n")
    print(f"{'scanner':<12}{'CPU ms/msg':>12}{'msg/s':>10}  verdicts")
    for label, cpu, wall, verdicts in rows:
        print(f"{label:<12}{cpu / len(messages) * 1000:>12.2f}{len(messages) / wall:>10.1f}"
              f"  {sorted(verdicts)}")
    print(f"\ncaches on is {rows[1][1] / rows[0][1]:.1f}x cheaper in scanner CPU per message")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--messages", type=int, default=10_000)
    parser.add_argument("-c", "--connections", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=20,
                        help="messages of the campaign sent first (workers start, model loads)")
    parser.add_argument("--delivery-timeout", type=float, default=30.0,
                        help="seconds to wait for the sink after the load (messages the "
                             "policy holds never arrive)")
    parser.add_argument("--in-process", action="store_true",
                        help="the scanner alone, in this process (no relay)")
    args = parser.parse_args()
    if args.in_process:
        in_process([raw for _, raw in campaign_messages(args.messages)])
        return 0
    warmup = campaign_messages(args.warmup, seed=99)
    messages = campaign_messages(args.messages, first_index=args.warmup)
    workdir = Path(tempfile.mkdtemp(prefix="phigate-campaign-"))
    try:
        runs = [run_relay("caches on", 4096, args, workdir, warmup, messages)]
        print(f"done: {runs[-1].label}", file=sys.stderr)
        runs.append(run_relay("caches off", 0, args, workdir, warmup, messages))
        print(f"done: {runs[-1].label}", file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report_relay(runs, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
