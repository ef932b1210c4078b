"""serve's own CPU per accepted message, scanning off (issue 16: the accept path's share).

Starts ``phigate serve`` delivering to a counting sink exactly as ``relay_vs_postfix.py``
does, warms it up, then sends ``--rounds`` loads of N messages (``load/messages.py``'s mix)
over M STARTTLS+AUTH connections and prints, per round, the CPU milliseconds per accepted
message of the serve process alone (/proc stat of its pid: not the delivery child, not
the scanner workers, not the client or sink) and the median.

    .venv/bin/python bench/serve_cpu.py -n 500 -c 10 --rounds 3
    .venv/bin/python bench/serve_cpu.py --profile /tmp/serve.txt   # py-spy --gil samples
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load.generator import run_load
from load.messages import build_messages
from load.procstat import process_cpu_seconds
from relay_vs_postfix import RECIPIENT_DOMAIN, SENDER, phigate_relay, warm_up


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--messages", type=int, default=500)
    parser.add_argument("-c", "--connections", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--scanning", action="store_true")
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy --gil raw samples of serve during the rounds")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="phigate-servecpu-"))
    figures: list[float] = []
    try:
        with phigate_relay(workdir / "phigate", workdir, scanning=args.scanning) as relay:
            warm_up(relay.port, relay.sink, relay.tls, relay.login, args.warmup)
            spy = None
            if args.profile:
                py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
                spy = subprocess.Popen([py_spy, "record", "--pid", str(relay.pid), "--gil",
                                        "--nonblocking", "--rate", "200", "--format", "raw",
                                        "--output", str(args.profile)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)
            for round_ in range(args.rounds):
                messages = build_messages(args.messages, sender=SENDER,
                                          recipient_domain=RECIPIENT_DOMAIN, seed=round_)
                before = process_cpu_seconds(relay.pid) or 0.0
                load = asyncio.run(run_load(relay.port, messages,
                                            connections=args.connections, sender=SENDER,
                                            tls=relay.tls, login=relay.login))
                cpu = (process_cpu_seconds(relay.pid) or 0.0) - before
                per = cpu / max(1, load.accepted) * 1000
                figures.append(per)
                print(f"round {round_ + 1}: {load.accepted} accepted "
                      f"({sum(load.refused.values())} refused), serve {per:.2f} ms CPU/msg, "
                      f"{load.accepted / load.seconds:.0f} msg/s", flush=True)
                # let delivery drain so the next round starts from the same state
                relay.sink.wait_for(relay.sink.count(), 0)
            if spy is not None:
                spy.send_signal(2)
                spy.wait(timeout=60)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"median serve CPU: {statistics.median(figures):.2f} ms/msg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
