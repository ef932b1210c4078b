"""sd_notify over a real AF_UNIX datagram socket, as systemd's manager would receive it."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from phigate.observability import sdnotify


@pytest.fixture
def receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_ready_with_status(receiver: socket.socket) -> None:
    assert sdnotify.notify_ready("listening on 587")
    assert received(receiver) == "READY=1\nSTATUS=listening on 587"


def test_watchdog_stopping_and_status(receiver: socket.socket) -> None:
    assert sdnotify.notify_watchdog()
    assert received(receiver) == "WATCHDOG=1"
    assert sdnotify.notify_stopping()
    assert received(receiver) == "STOPPING=1"
    # A status is one line: an embedded newline would start a bogus KEY=VALUE assignment.
    assert sdnotify.notify_status("draining\nREADY=1  3 sessions")
    assert received(receiver) == "STATUS=draining READY=1 3 sessions"


def test_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"phigate-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.notify_ready()
        assert received(sock) == "READY=1"


def test_without_systemd_is_a_quiet_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify_ready() is False
    assert sdnotify.notify_watchdog() is False


def test_unreachable_socket_does_not_raise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert sdnotify.notify_ready() is False
    assert "sd_notify failed state=READY" in caplog.text


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "junk"}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        # The watchdog belongs to another process (e.g. a wrapper that exec'd us wrongly).
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert sdnotify.watchdog_interval(environ) == expected
