"""CPU per message of delivery as ``serve``'s delivery child does it (not a test).

    .venv/bin/python bench/delivery_relay_bench.py -n 1000              # queue filled first
    .venv/bin/python bench/delivery_relay_bench.py -n 1000 --rate 60    # fed while delivering
    .venv/bin/python bench/delivery_relay_bench.py -n 1000 --profile /tmp/dlv.txt

Unlike ``delivery_bench.py`` (DKIM off, no token key, plain smtp-sink, 2 KB messages) this
measures what ``bench/relay_vs_postfix.py``'s delivery child does: a ``phigate init``
configuration (DKIM signing, the token key, so a VERP return path recorded per recipient),
the smarthost a STARTTLS sink (``load/tls_sink.py``) verified against phigate's own
certificate, and the relay's message mix (``load/messages.build_messages``, 2-20 KB) with
the header lines submission prepends. The sink runs in its own process; with ``--rate`` a
feeder process enqueues the messages at that pace (as ``serve`` does while the child
delivers: small claims, small group commits), otherwise they are enqueued before the
clock starts. Printed: CPU ms per delivered message of this (the delivering) process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from email.utils import formatdate
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load.messages import build_messages

from phigate.config.loading import load_settings
from phigate.mta.delivery.scheduler import DeliveryScheduler
from phigate.queue.models import MessageClass
from phigate.queue.store import NewMessage
from phigate.runtime import Runtime

SENDER = "reminders@practice.test"
RECIPIENT_DOMAIN = "patients.example"
PHIGATE = [sys.executable, "-m", "phigate"]

#: The feeder: enqueue the pickled messages at a pace, in its own process (serve's part).
FEEDER = """
import pickle, sys, time
from phigate.config.loading import load_settings
from phigate.runtime import Runtime
from pathlib import Path
settings = load_settings(Path(sys.argv[1]))
rate = float(sys.argv[3])
messages = pickle.loads(Path(sys.argv[2]).read_bytes())
with Runtime.open(settings) as runtime:
    started = time.monotonic()
    for index, message in enumerate(messages):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        runtime.store.enqueue(message)
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def as_submitted(recipient: str, content: bytes, index: int) -> NewMessage:
    """The message as submission stores it: Received:, Message-ID:, Date: prepended."""
    klass = re.search(rb"^X-Phigate-Class: (\w+)", content, re.MULTILINE)
    message_class = MessageClass(klass.group(1).decode()) if klass else MessageClass.TREATMENT
    head = (f"Received: by mail.practice.test (phigate) with ESMTPSA; {formatdate()}\r\n"
            f"Message-ID: <bench{index}@mail.practice.test>\r\nDate: {formatdate()}\r\n")
    return NewMessage(sender=SENDER, recipients=[recipient], body=head.encode() + content,
                      username="bench", client_ip="127.0.0.1", message_class=message_class)


def sink_count(output: Path) -> int:
    found = re.findall(rb"mesg=(\d+)", output.read_bytes()[-64:])
    return int(found[-1]) if found else 0


async def deliver(scheduler: DeliveryScheduler, output: Path, total: int) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    while sink_count(output) < total and not task.done():  # noqa: ASYNC110 - another process writes it
        await asyncio.sleep(0.1)
    stop.set()
    await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--messages", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="messages/s fed while delivering (default: queue filled first)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy (--gil: CPU in Python) into this raw collapsed file")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="phigate-dlvbench-"))
    try:
        subprocess.run([*PHIGATE, "init", "--dir", str(workdir), "--domain", "practice.test"],
                       check=True, capture_output=True)
        cert, key = workdir / "tls" / "cert.pem", workdir / "tls" / "key.pem"
        port = free_port()
        output = workdir / "sink.out"
        with output.open("wb") as stream:
            sink = subprocess.Popen(
                [sys.executable, str(Path(__file__).parent / "load" / "tls_sink.py"),
                 str(port), str(cert), str(key)], stdout=stream, stderr=subprocess.STDOUT)
        environ = {
            "PHIGATE_DELIVERY__SMARTHOST": f"127.0.0.1:{port}",
            "PHIGATE_DELIVERY__CA_FILE": str(cert),
            "PHIGATE_DELIVERY__RATE_PER_MINUTE_PER_DOMAIN": "1000000",
            "PHIGATE_DELIVERY__MAX_CONNECTIONS_PER_DOMAIN": "20",
            "PHIGATE_POLICY__PHI_ALLOWED_DOMAINS": f'["practice.test", "{RECIPIENT_DOMAIN}"]',
        }
        os.environ.update(environ)  # the feeder reads the same configuration
        config = workdir / "phigate.toml"
        settings = load_settings(config)
        pairs = build_messages(args.warmup + args.messages, sender=SENDER,
                               recipient_domain=RECIPIENT_DOMAIN)
        messages = [as_submitted(r, c, i) for i, (r, c) in enumerate(pairs)]
        time.sleep(0.5)  # the sink listens
        with Runtime.open(settings) as runtime:
            scheduler = DeliveryScheduler(settings, runtime.store)
            for message in messages[:args.warmup]:
                runtime.store.enqueue(message)
            asyncio.run(deliver(scheduler, output, args.warmup))
            measured = messages[args.warmup:]
            feeder = None
            if args.rate > 0:
                pickled = workdir / "messages.pickle"
                pickled.write_bytes(pickle.dumps(measured))
                feeder = subprocess.Popen([sys.executable, "-c", FEEDER, str(config),
                                           str(pickled), str(args.rate)])
            else:
                for message in measured:
                    runtime.store.enqueue(message)
            scheduler = DeliveryScheduler(settings, runtime.store)
            spy = None
            if args.profile is not None:
                py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
                spy = subprocess.Popen([py_spy, "record", "--pid", str(os.getpid()), "--gil",
                                        "--rate", "200", "--format", "raw",
                                        "--output", str(args.profile)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)
            before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            asyncio.run(deliver(scheduler, output, args.warmup + args.messages))
            elapsed = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            if feeder is not None:
                feeder.wait(60)
            delivered = sink_count(output) - args.warmup
        user = after.ru_utime - before.ru_utime
        system = after.ru_stime - before.ru_stime
        print(f"delivered={delivered} elapsed={elapsed:.1f}s rate={args.rate or 'prefilled'} "
              f"cpu={user + system:.2f}s ({(user + system) / max(delivered, 1) * 1000:.2f} "
              f"ms/msg; user {user / max(delivered, 1) * 1000:.2f}, "
              f"sys {system / max(delivered, 1) * 1000:.2f})")
    finally:
        if "sink" in locals():
            sink.terminate()
            sink.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
