"""Relay throughput, phigate side by side with Postfix, on loopback (issue 8, benchmark 1).

The same aiosmtplib load generator sends N practice messages (2-20 KB, see
``load/messages.py``) over M STARTTLS connections:

  phigate (scanning on)   ``phigate serve`` (all roles): AUTH, PHI scan, policy, durable
                          SQLite queue, DKIM signing, delivery to the sink
  phigate (scanning off)  the same with ``PHIGATE_SCANNER__ENABLED=false``
  postfix                 a Postfix instance (STARTTLS required, relay for 127.0.0.0/8: no
                          SASL here) relaying over mandatory TLS to its own sink

Each relay delivers over STARTTLS to a fresh counting sink (``load/tls_sink.py``). Printed per
system: accepted msg/s (first MAIL to last 250), delivered msg/s (to the last message at
the sink), p50/p99 acceptance latency, CPU seconds per 1,000 messages of the relay's whole
process tree (from /proc), peak PSS (proportional set size) of that tree, and the
phigate/Postfix ratios.

    .venv/bin/python bench/relay_vs_postfix.py                 # N=500, M=10
    .venv/bin/python bench/relay_vs_postfix.py -n 2000 -c 20 --skip-postfix
    .venv/bin/python bench/relay_vs_postfix.py --skip-scan --skip-postfix   # relay only
    .venv/bin/python bench/relay_vs_postfix.py --skip-noscan --skip-postfix --profile /tmp/prof

``--profile DIR`` runs py-spy (``pip install py-spy``) over the relay's process tree (serve
and its scanner workers) during the measured load and prints where the samples fall.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load.cpu_timeline import CpuTimeline, delivery_split
from load.generator import LoadResult, run_load
from load.messages import build_messages
from load.postfix_relay import PostfixRelay
from load.procstat import PeakRss, tree_cpu_by_role, tree_cpu_seconds
from load.timings import joined, read_timings, report_timings

SENDER = "reminders@practice.test"
RECIPIENT_DOMAIN = "patients.example"
PHIGATE = [sys.executable, "-m", "phigate"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"server exited:\n{log.read_text()[-2000:]}") from None
            time.sleep(0.1)
    raise RuntimeError("server did not start listening within 60 s")


class Sink:
    """A STARTTLS sink on a loopback port (``load/tls_sink.py``: Postfix's smtp-sink has no
    TLS, and phigate sends PHI only over TLS); ``count`` is the messages it accepted."""

    def __init__(self, directory: Path, cert: Path, key: Path) -> None:
        self.port = free_port()
        self.output = directory / f"sink-{self.port}.out"
        with self.output.open("wb") as stream:
            self.process = subprocess.Popen(
                [sys.executable, str(Path(__file__).parent / "load" / "tls_sink.py"),
                 str(self.port), str(cert), str(key)],
                stdout=stream, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)

    def count(self) -> int:
        found = re.findall(rb"mesg=(\d+)", self.output.read_bytes())
        return int(found[-1]) if found else 0

    def wait_for(self, total: int, timeout: float) -> float | None:
        """Seconds until ``total`` messages arrived (polling), None on timeout."""
        started = time.perf_counter()
        while self.count() < total:
            if time.perf_counter() - started > timeout:
                return None
            time.sleep(0.05)
        return time.perf_counter()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@dataclass
class Figures:
    name: str
    load: LoadResult
    delivered: int
    delivered_seconds: float | None
    cpu_seconds: float
    peak_rss: int
    #: CPU seconds of the run per role in the tree (serve, delivery child, scanner workers).
    cpu_by_role: dict[str, float]
    #: Accepted but not yet at the sink when the load ended.
    backlog: int = 0
    #: ``--timings``: per accepted message, serve's stages and the client's latency.
    timings: list[dict[str, float]] | None = None
    #: ``--timings``: CPU per role every 100 ms while the load ran (cpu_timeline).
    timeline: list[tuple[float, dict[str, float]]] | None = None

    @property
    def accepted_rate(self) -> float:
        return self.load.accepted / self.load.seconds if self.load.seconds else 0.0

    @property
    def delivered_rate(self) -> float | None:
        if not self.delivered_seconds:
            return None
        return self.delivered / self.delivered_seconds

    @property
    def cpu_per_1000(self) -> float:
        return self.cpu_seconds / max(1, self.load.accepted) * 1000


def measure(name: str, root_pid: int, port: int, sink: Sink, messages: list[tuple[str, bytes]],
            *, connections: int, tls: ssl.SSLContext, login: tuple[str, str] | None,
            delivery_timeout: float, profile: Path | None = None,
            timeline: bool = False) -> Figures:
    before = sink.count()
    cpu_before = tree_cpu_seconds(root_pid)
    roles_before = tree_cpu_by_role(root_pid)
    client_before, sink_before = _own_cpu_seconds(), tree_cpu_seconds(sink.process.pid)
    peak = PeakRss(root_pid)
    peak.start()
    spy = start_profiler(root_pid, profile, name) if profile else None
    sampler = CpuTimeline(root_pid) if timeline else None
    if sampler is not None:
        sampler.start()
    load = asyncio.run(run_load(port, messages, connections=connections, sender=SENDER,
                                tls=tls, login=login))
    samples = sampler.stop() if sampler is not None else None
    # Delivered while the load ran (a delivery process at a lower priority lags behind
    # during the burst and catches up after it: both figures are printed).
    backlog = before + load.accepted - sink.count()
    if spy is not None:
        stop_profiler(spy)
    arrived = sink.wait_for(before + load.accepted, delivery_timeout)
    delivered = sink.count() - before
    delivered_seconds = (arrived - load.started) if arrived else None
    cpu = tree_cpu_seconds(root_pid) - cpu_before
    roles = {role: seconds - roles_before.get(role, 0.0)
             for role, seconds in tree_cpu_by_role(root_pid).items()}
    # The machine's other tenants of the run, for the budget: 2 cores are shared by all.
    roles["(client)"] = _own_cpu_seconds() - client_before
    roles["(sink)"] = tree_cpu_seconds(sink.process.pid) - sink_before
    return Figures(name, load, delivered, delivered_seconds, cpu, peak.stop(), roles,
                   backlog=backlog, timeline=samples)


def _own_cpu_seconds() -> float:
    """The bench process's CPU so far: the load generator runs on its event loop."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def start_profiler(root_pid: int, directory: Path, name: str) -> tuple[subprocess.Popen[bytes],
                                                                     Path]:
    """py-spy over the whole tree (serve and the spawned scanner workers), raw collapsed
    stacks with one line per process so the relay and the workers can be told apart."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    directory.mkdir(parents=True, exist_ok=True)
    output = directory / (re.sub(r"\W+", "-", name) + ".txt")
    process = subprocess.Popen([py_spy, "record", "--pid", str(root_pid), "--subprocesses",
                                "--nonblocking", "--rate", "50", "--format", "raw",
                                "--output", str(output)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attaches before the load starts
    return process, output


def stop_profiler(spy: tuple[subprocess.Popen[bytes], Path]) -> None:
    process, output = spy
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
    if output.exists():
        print(f"profile: {output}", file=sys.stderr)
        for line in summarise_profile(output):
            print(line, file=sys.stderr)


def summarise_profile(path: Path, top: int = 25) -> list[str]:
    """Samples per process (serve or worker) and per leaf-most phigate/library frame."""
    by_process: dict[str, int] = {}
    by_frame: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        process = frames[0]
        kind = "scanner worker" if any("_scan_in_worker" in f for f in frames) else (
            "worker idle" if "spawn_main" in stack else process.split(" ")[0])
        by_process[kind] = by_process.get(kind, 0) + count
        # attribute to the innermost phigate frame, with its module
        phigate = [f for f in frames if "phigate/" in f]
        key = phigate[-1] if phigate else frames[-1]
        by_frame[key] = by_frame.get(key, 0) + count
    lines = [f"{total} samples"]
    lines += [f"  {count:>7} {count / max(total, 1):6.1%}  {kind}"
              for kind, count in sorted(by_process.items(), key=lambda kv: -kv[1])]
    lines += [f"  {count:>7} {count / max(total, 1):6.1%}  {frame}"
              for frame, count in sorted(by_frame.items(), key=lambda kv: -kv[1])[:top]]
    return lines


def warm_up(port: int, sink: Sink, tls: ssl.SSLContext, login: tuple[str, str] | None,
            count: int) -> None:
    """Start scanner workers, load the model, open the queue: not part of the figures."""
    if count <= 0:
        return
    messages = build_messages(count, sender=SENDER, recipient_domain=RECIPIENT_DOMAIN,
                              seed=99)
    before = sink.count()
    load = asyncio.run(run_load(port, messages, connections=min(4, count), sender=SENDER,
                                tls=tls, login=login))
    if load.refused:
        raise RuntimeError(f"warm-up messages refused: {load.refused}")
    sink.wait_for(before + load.accepted, 120)


@dataclass
class RunningRelay:
    """A started ``phigate serve`` and the sink it delivers to."""

    pid: int
    port: int
    config: Path
    sink: Sink
    tls: ssl.SSLContext
    login: tuple[str, str]


@contextmanager
def phigate_relay(directory: Path, sink_dir: Path, *, scanning: bool,
                  classes: str = "treatment,operations", env: dict[str, str] | None = None,
                  setup: Callable[[Path], None] | None = None) -> Iterator[RunningRelay]:
    """``phigate init`` in ``directory``, a submission account ``bench`` allowed ``classes``,
    ``setup(config)`` (consents, campaigns...), then ``serve`` delivering to a fresh sink;
    stopped with SIGTERM on leaving."""
    subprocess.run([*PHIGATE, "init", "--dir", str(directory), "--domain", "practice.test"],
                   check=True, capture_output=True)
    config = directory / "phigate.toml"
    subprocess.run([*PHIGATE, "--config", str(config), "user", "add", "bench", "--classes",
                    classes],
                   input=b"bench-password\n", check=True, capture_output=True)
    if setup is not None:
        setup(config)
    cert = directory / "tls" / "cert.pem"
    sink = Sink(sink_dir, cert, directory / "tls" / "key.pem")
    port = free_port()
    environment = {
        **os.environ,
        "PHIGATE_SUBMISSION__LISTEN": f"127.0.0.1:{port}",
        "PHIGATE_HTTP__LISTEN": f"127.0.0.1:{free_port()}",
        "PHIGATE_FEEDBACK__LISTEN": f"127.0.0.1:{free_port()}",
        "PHIGATE_DELIVERY__SMARTHOST": f"127.0.0.1:{sink.port}",
        # The sink's certificate is phigate's own self-signed one: trust it, so PHI goes
        # out over verified TLS as in production.
        "PHIGATE_DELIVERY__CA_FILE": str(cert),
        # One destination gets all the mail; the default per-domain throttle (600/min)
        # would measure the throttle, not the relay. Postfix has none by default.
        "PHIGATE_DELIVERY__RATE_PER_MINUTE_PER_DOMAIN": "1000000",
        "PHIGATE_DELIVERY__MAX_CONNECTIONS_PER_DOMAIN": "20",
        "PHIGATE_POLICY__PHI_ALLOWED_DOMAINS": f'["practice.test", "{RECIPIENT_DOMAIN}"]',
        "PHIGATE_SCANNER__ENABLED": "true" if scanning else "false",
        **(env or {}),
    }
    log = directory / "serve.log"
    with log.open("wb") as output:
        server = subprocess.Popen([*PHIGATE, "--config", str(config), "serve"],
                                  env=environment, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, server, log)
        yield RunningRelay(server.pid, port, config, sink,
                           ssl.create_default_context(cafile=str(cert)),
                           ("bench", "bench-password"))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        sink.stop()


def run_phigate(workdir: Path, messages: list[tuple[str, bytes]], *, scanning: bool,
                args: argparse.Namespace) -> Figures:
    name = "phigate, scanning " + ("on" if scanning else "off")
    directory = workdir / ("phigate-scan" if scanning else "phigate-noscan")
    env = {"PHIGATE_LOGGING__LEVEL": "debug"} if args.timings else None
    with phigate_relay(directory, workdir, scanning=scanning, env=env) as relay:
        warm_up(relay.port, relay.sink, relay.tls, relay.login, args.warmup)
        figures = measure(name, relay.pid, relay.port, relay.sink, messages,
                          connections=args.connections, tls=relay.tls, login=relay.login,
                          delivery_timeout=args.delivery_timeout, profile=args.profile,
                          timeline=args.timings)
        if args.timings:
            figures.timings = joined(figures.load, read_timings(directory / "serve.log"))
            if args.timings_out:
                args.timings_out.write_text(json.dumps(figures.timings))
        return figures


def run_postfix(workdir: Path, messages: list[tuple[str, bytes]],
                args: argparse.Namespace) -> Figures:
    tls_dir = workdir / "phigate-scan" / "tls"  # the same self-signed certificate
    if not tls_dir.exists():
        tls_dir = workdir / "phigate-noscan" / "tls"
    sink = Sink(workdir, tls_dir / "cert.pem", tls_dir / "key.pem")
    relay = PostfixRelay(workdir / "postfix", free_port(), sink.port, tls_dir / "cert.pem",
                         tls_dir / "key.pem")
    relay.start()
    try:
        pid = relay.master_pid()
        if pid is None:
            raise RuntimeError(f"postfix did not start:\n{relay.log_tail()}")
        tls = ssl.create_default_context(cafile=str(tls_dir / "cert.pem"))
        warm_up(relay.port, sink, tls, None, args.warmup)
        return measure("postfix", pid, relay.port, sink, messages,
                       connections=args.connections, tls=tls, login=None,
                       delivery_timeout=args.delivery_timeout)
    finally:
        relay.stop()
        sink.stop()


def report(results: list[Figures], args: argparse.Namespace, sizes: list[int]) -> None:
    print(f"\n{len(sizes)} messages ({min(sizes) / 1024:.1f}-{max(sizes) / 1024:.1f} KB, "
          f"mean {sum(sizes) / len(sizes) / 1024:.1f} KB) on {args.connections} connections, "
          f"{os.cpu_count()} cores shared by client, relay and sink\n")
    header = (f"{'system':<24}{'accepted':>9}{'acc msg/s':>11}{'dlv msg/s':>11}"
              f"{'p50 ms':>9}{'p99 ms':>9}{'CPU s/1k':>10}{'peak PSS':>10}")
    print(header)
    print("-" * len(header))
    for figures in results:
        delivered = figures.delivered_rate
        print(f"{figures.name:<24}{figures.load.accepted:>9}{figures.accepted_rate:>11.1f}"
              f"{(f'{delivered:.1f}' if delivered else 'n/a'):>11}"
              f"{figures.load.percentile(0.5) * 1000:>9.1f}"
              f"{figures.load.percentile(0.99) * 1000:>9.1f}"
              f"{figures.cpu_per_1000:>10.1f}{figures.peak_rss / 2**20:>8.0f}MB")
        if figures.cpu_by_role:
            split = ", ".join(f"{role} {seconds / max(1, figures.load.accepted) * 1000:.1f}"
                              for role, seconds in sorted(figures.cpu_by_role.items()))
            print(f"{'':<24}CPU ms/msg: {split}")
        if figures.load.refused:
            print(f"{'':<24}refused: {figures.load.refused}")
        if figures.load.reconnects:
            print(f"{'':<24}sessions ended by a 421 and opened again: "
                  f"{figures.load.reconnects}")
        if figures.delivered_seconds:
            drain = figures.delivered_seconds - figures.load.seconds
            print(f"{'':<24}at the load's end {figures.backlog} accepted not yet delivered; "
                  f"all delivered {drain:.1f} s later")
        if figures.delivered < figures.load.accepted:
            print(f"{'':<24}delivered only {figures.delivered} of {figures.load.accepted} "
                  f"within {args.delivery_timeout:.0f} s")
    for figures in results:
        if figures.timings is not None:
            print(f"\n{figures.name}: where acceptances' time goes (--timings)")
            for line in report_timings(figures.timings):
                print(f"  {line}")
            if figures.timeline is not None:
                print(f"\n{figures.name}: acceptances ended while delivery was busy "
                      f"(> 0.3 core) / idle (< 0.1), cores per role in those 100 ms bins")
                for line in delivery_split(figures.timeline, figures.timings):
                    print(f"  {line}")
    postfix = next((f for f in results if f.name == "postfix"), None)
    if postfix is None:
        return
    print("\nratios phigate/Postfix (throughput: >1 is faster; CPU and memory: >1 is more)")
    for figures in results:
        if figures is postfix:
            continue
        delivered = (figures.delivered_rate / postfix.delivered_rate
                     if figures.delivered_rate and postfix.delivered_rate else float("nan"))
        print(f"  {figures.name:<22} accepted x{figures.accepted_rate / postfix.accepted_rate:.2f}"
              f"  delivered x{delivered:.2f}"
              f"  p50 x{figures.load.percentile(0.5) / postfix.load.percentile(0.5):.1f}"
              f"  CPU/msg x{figures.cpu_per_1000 / postfix.cpu_per_1000:.1f}"
              f"  PSS x{figures.peak_rss / postfix.peak_rss:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--messages", type=int, default=500)
    parser.add_argument("-c", "--connections", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=20,
                        help="messages sent before measuring (model load, queue open)")
    parser.add_argument("--delivery-timeout", type=float, default=180.0)
    parser.add_argument("--skip-postfix", action="store_true")
    parser.add_argument("--skip-noscan", action="store_true")
    parser.add_argument("--skip-scan", action="store_true",
                        help="leave out the scanning-on run (the relay's own costs only)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy the phigate runs into this directory")
    parser.add_argument("--timings", action="store_true",
                        help="serve at debug level: per-message stage times (accept_timing "
                             "lines), the slowest acceptances' breakdown")
    parser.add_argument("--timings-out", type=Path, default=None,
                        help="with --timings: write the per-message rows here (JSON)")
    args = parser.parse_args()
    if os.geteuid() != 0 and not args.skip_postfix:
        parser.error("the Postfix instance needs root here (or pass --skip-postfix)")
    if shutil.which("postfix") is None and not args.skip_postfix:
        parser.error("postfix not found (apt-get install postfix, or pass --skip-postfix)")

    messages = build_messages(args.messages, sender=SENDER, recipient_domain=RECIPIENT_DOMAIN)
    workdir = Path(tempfile.mkdtemp(prefix="phigate-bench-"))
    results: list[Figures] = []
    try:
        if not args.skip_scan:
            results.append(run_phigate(workdir, messages, scanning=True, args=args))
            print(f"done: {results[-1].name}", file=sys.stderr)
        if not args.skip_noscan:
            results.append(run_phigate(workdir, messages, scanning=False, args=args))
            print(f"done: {results[-1].name}", file=sys.stderr)
        if not args.skip_postfix:
            results.append(run_postfix(workdir, messages, args))
            print(f"done: {results[-1].name}", file=sys.stderr)
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(results, args, [len(content) for _, content in messages])
    return 0


if __name__ == "__main__":
    sys.exit(main())
