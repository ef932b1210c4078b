"""Open-files limit at start, and loop errors (accept() out of descriptors) rate-limited."""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from phigate.resources import RateLimitedLoopErrors, ensure_open_files


def test_the_soft_limit_is_raised_towards_what_is_needed_and_a_shortfall_warned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        check = ensure_open_files(min(1024, hard))
        assert check is not None and check.enough and check.soft == min(1024, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == min(1024, hard)
        if hard != resource.RLIM_INFINITY:
            with caplog.at_level("WARNING", logger="phigate.resources"):
                short = ensure_open_files(hard + 1)
            assert short is not None and not short.enough
            assert "open_files_limit_low" in caplog.text
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_each_kind_of_loop_error_is_logged_once_per_interval() -> None:
    now = [0.0]
    handler = RateLimitedLoopErrors(interval=10, clock=lambda: now[0])
    loop = asyncio.new_event_loop()
    try:
        context = {"message": "socket.accept() out of system resource",
                   "exception": OSError(24, "Too many open files")}
        for _ in range(100_000):
            handler(loop, context)
        handler(loop, {"message": "another kind"})
        assert handler.logged == 2
        now[0] = 10.5
        handler(loop, context)
        assert handler.logged == 3
    finally:
        loop.close()


SERVER = textwrap.dedent("""
    import asyncio, logging, resource, sys
    from phigate.resources import RateLimitedLoopErrors

    async def main(limited):
        if limited:
            RateLimitedLoopErrors().install(asyncio.get_running_loop())
        held = []
        async def hold(reader, writer):
            held.append(writer)
            await asyncio.sleep(60)
        server = await asyncio.start_server(hold, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(4)

    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    asyncio.run(main(sys.argv[1] == "limited"))
""")


def flood(script: Path, mode: str) -> int:
    """Log lines a server out of descriptors writes while 300 clients knock for 3 s."""
    with subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as server:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        clients = []
        for _ in range(300):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", port))
            clients.append(client)
        time.sleep(3)
        _, err = server.communicate(timeout=20)
        for client in clients:
            client.close()
    # asyncio's handler writes its message; ours the event name (its fields need
    # phigate's formatter, which this bare script does not configure).
    return sum("out of system resource" in line or "event_loop_error" in line
               for line in err.splitlines())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux accept() semantics")
def test_accept_out_of_descriptors_is_logged_a_few_times_not_once_per_retry(
    tmp_path: Path,
) -> None:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    unlimited = flood(script, "plain")
    limited = flood(script, "limited")
    assert unlimited > 50  # asyncio's own handler: a line per failed accept() retry
    assert 1 <= limited <= 2


def test_serve_warns_at_start_when_the_open_files_limit_is_below_its_session_caps(
    tmp_path: Path,
) -> None:
    from helpers.net import free_port

    init = subprocess.run([sys.executable, "-m", "phigate", "init", "--dir", str(tmp_path),
                           "--domain", "practice.test"], capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    port = free_port()
    env = {**os.environ, "PHIGATE_SUBMISSION__LISTEN": f"127.0.0.1:{port}",
           "PHIGATE_FEEDBACK__LISTEN": f"127.0.0.1:{free_port()}",
           "PHIGATE_SCANNER__ENABLED": "false"}

    def low_limit() -> None:  # soft and hard: serve cannot raise it
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))

    relay = subprocess.Popen(
        [sys.executable, "-m", "phigate", "--config", str(tmp_path / "phigate.toml"), "serve",
         "--role", "smtp"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        preexec_fn=low_limit)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert relay.poll() is None, "serve died"
                time.sleep(0.05)
    finally:
        relay.terminate()
        output, _ = relay.communicate(timeout=30)
    text = output.decode(errors="replace")
    assert "open_files_limit_low" in text
    assert "1456" in text  # needed: 256 + 1000 submission + 200 feedback sessions
