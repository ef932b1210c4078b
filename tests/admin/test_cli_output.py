"""What the listing commands print: aligned columns, no ``None``, quiet on a closed pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from phigate.cli.main import main

from .test_cli import config  # noqa: F401  (fixture)

Enqueue = Callable[..., str]


def cli(config: Path, *args: str) -> int:  # noqa: F811  (the fixture name)
    return main(["--config", str(config), *args])


def test_queue_list_columns_line_up_with_senders_of_any_length(
        config: Path, enqueue: Enqueue, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    enqueue("a@one.example", sender="x@p.test")
    enqueue("b@two.example", sender="newsletter-department-with-a-long-name@practice.test")
    assert cli(config, "queue", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    header, rows = lines[0], lines[1:-1]
    column = header.index("RECIPIENT")
    assert len(rows) == 2
    for row in rows:
        assert row[column - 2:column] == "  " and row[column] != " "
        assert "None" not in row
    assert lines[-1] == "-- 2 recipient(s)"


def test_queue_show_prints_no_none_and_no_empty_rule_hit(
        config: Path, enqueue: Enqueue, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    message_id = enqueue("pat@example.org")
    assert cli(config, "queue", "show", message_id) == 0
    out = capsys.readouterr().out
    assert "None" not in out and "-:" not in out
    assert "rule hits\n  (none)\n" in out


def test_queue_list_into_a_closed_pipe_exits_quietly(
        config: Path, enqueue: Enqueue, tmp_path: Path) -> None:  # noqa: F811
    # Enough rows to overflow a pipe buffer (64 KiB) after the reader has gone.
    enqueue(*[f"patient{n:04d}@clinic{n % 7}.example" for n in range(1500)])
    env = {**os.environ, "PHIGATE_CONFIG": str(config)}
    process = subprocess.Popen([sys.executable, "-m", "phigate", "queue", "list"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # what `| head -1` does after its line
    stderr = process.stderr.read().decode()
    process.stderr.close()
    status = process.wait(timeout=60)
    assert first.startswith(b"ID ")
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert stderr == ""
    assert status == 141
