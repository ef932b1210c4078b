"""Queue → SMTP sink throughput of the delivery scheduler (not a test; prints figures).

    .venv/bin/python bench/delivery_bench.py                 # 2000 msgs, SQLite, smtp-sink
    .venv/bin/python bench/delivery_bench.py --tls           # aiosmtpd sink, STARTTLS verified
    .venv/bin/python bench/delivery_bench.py --db postgresql+psycopg://postgres@127.0.0.1:5432/x

The queue is filled first (not timed); then one ``DeliveryScheduler.run_until_empty()``
delivers everything: MX lookups against a dnslib server on loopback, DKIM off, recipients
spread over ``--domains`` destination domains, one recipient per message. The sink runs in
its own process (Postfix's smtp-sink, or an aiosmtpd sink with STARTTLS for ``--tls``), so
the figure is phigate's cost, not the sink's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from dnslib import RR
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from phigate.config import settings_from_mapping
from phigate.mta.delivery.scheduler import DeliveryScheduler
from phigate.queue.crypto import MasterKey
from phigate.queue.db import make_engine, upgrade
from phigate.queue.store import NewMessage, SqlQueueStore

TLS_SINK = textwrap.dedent("""
    import ssl, sys, time
    from aiosmtpd.controller import Controller
    class Sink:
        async def handle_DATA(self, server, session, envelope):
            return "250 2.0.0 OK"
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(sys.argv[2], sys.argv[3])
    controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]),
                            tls_context=context, server_hostname="mx.bench.test")
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()
""")


class _Zone(BaseResolver):  # type: ignore[misc]
    def __init__(self, domains: list[str]) -> None:
        self.domains = set(domains)

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".")
        qtype = request.q.qtype
        if name in self.domains and qtype == 15:  # MX
            reply.add_answer(*RR.fromZone(f"{name}. 300 IN MX 10 mx.bench.test."))
        elif name == "mx.bench.test" and qtype == 1:  # A
            reply.add_answer(*RR.fromZone("mx.bench.test. 300 IN A 127.0.0.1"))
        elif name not in self.domains and name != "mx.bench.test":
            reply.header.rcode = 3
        return reply


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sink(port: int, tls: bool, workdir: Path) -> tuple[subprocess.Popen[str], str]:
    if not tls:
        binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        argv = [binary]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]
        sink = subprocess.Popen([*argv, f"127.0.0.1:{port}", "256"], text=True)
        time.sleep(0.3)
        return sink, ""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("mx.bench.test")
    cert_file, key_file, ca_file = (workdir / "cert.pem", workdir / "key.pem",
                                    workdir / "ca.pem")
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    sink = subprocess.Popen([sys.executable, "-c", TLS_SINK, str(port), str(cert_file),
                             str(key_file)], text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
    return sink, str(ca_file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=2048, help="body bytes per message")
    parser.add_argument("--domains", type=int, default=5)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--tls", action="store_true", help="STARTTLS, verified certificate")
    parser.add_argument("--db", default="", help="SQLAlchemy URL (default: SQLite in a tempdir)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="phigate-bench-"))
    domains = [f"d{i}.bench.test" for i in range(args.domains)]
    dns_port, sink_port = free_port(socket.SOCK_DGRAM), free_port()
    dns = DNSServer(_Zone(domains), address="127.0.0.1", port=dns_port,
                    logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data",
                                     prefix=False))
    dns.start_thread()
    sink, ca_file = start_sink(sink_port, args.tls, workdir)
    key_file = workdir / "master.key"
    MasterKey.generate().write(key_file)
    url = args.db or f"sqlite:///{workdir / 'queue.db'}"
    settings = settings_from_mapping({
        "server": {"hostname": "relay.bench.test", "domain": "bench.test"},
        "storage": {"url": url, "master_key_file": str(key_file)},
        "delivery": {"dns_servers": [f"127.0.0.1:{dns_port}"], "mx_port": sink_port,
                     "workers": args.workers, "max_connections_per_domain": 10,
                     "rate_per_minute_per_domain": 10_000_000, "claim_batch_size": 500,
                     "tls_default": "verify" if args.tls else "opportunistic",
                     "ca_file": ca_file},
    })
    engine = make_engine(url)
    upgrade(engine)
    store = SqlQueueStore(engine, MasterKey.load(key_file))
    line = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod. " * 2)
    body_text = (line + "\r\n") * max(1, args.size // (len(line) + 2))
    try:
        for index in range(args.messages):
            domain = domains[index % len(domains)]
            body = (f"From: clinic@bench.test\r\nTo: p{index}@{domain}\r\n"
                    f"Subject: bench {index}\r\nMessage-ID: <{index}@bench.test>\r\n\r\n"
                    f"{body_text}").encode()
            store.enqueue(NewMessage(sender="clinic@bench.test",
                                     recipients=[f"p{index}@{domain}"], body=body))
        scheduler = DeliveryScheduler(settings, store)
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        asyncio.run(scheduler.run_until_empty())
        elapsed = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        counts = store.count_recipients()
        cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime
                                                             - cpu_before.ru_stime)
        delivered = counts.get("delivered", 0)
        backend = url.split(":", 1)[0]
        print(f"backend={backend} tls={'verified' if args.tls else 'none (smtp-sink)'} "
              f"messages={args.messages} size={args.size} domains={args.domains} "
              f"workers={args.workers}")
        others = {state: n for state, n in counts.items() if state != "delivered"}
        print(f"delivered={delivered} other={others}")
        print(f"elapsed={elapsed:.2f}s  throughput={delivered / elapsed:.0f} msg/s  "
              f"cpu={cpu:.2f}s ({cpu / max(delivered, 1) * 1000:.2f} ms/msg)")
    finally:
        engine.dispose()
        if sink.stdin is not None:
            sink.stdin.close()
        sink.terminate()
        sink.wait(10)
        dns.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
