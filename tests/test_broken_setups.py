"""Issue 14 item 7: broken setups refuse to start, on one line with exit 2, or report
unhealthy: a wrong but well-formed master key, a missing spaCy model, a scanner pool down."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from phigate.errors import ConfigError
from phigate.queue.crypto import MasterKey
from phigate.queue.db import make_engine
from phigate.queue.key_check import KeyCheck, verify_master_key


def phigate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "phigate", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


@pytest.fixture
def installation(tmp_path: Path) -> Path:
    base = tmp_path / "i"
    result = phigate("init", "--dir", str(base), "--domain", "practice.test")
    assert result.returncode == 0, result.stderr
    return base


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [text for text in result.stderr.splitlines() if text.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_init_stores_a_key_check_and_a_wrong_master_key_is_refused(installation: Path
                                                                   ) -> None:
    config = str(installation / "phigate.toml")
    key_file = installation / "keys" / "master.key"
    url = f"sqlite:///{installation / 'phigate.db'}"
    engine = make_engine(url)
    try:
        assert verify_master_key(engine, MasterKey.load(key_file)) is KeyCheck.MATCHED
    finally:
        engine.dispose()
    ok = phigate("--config", config, "check-config", env={"PHIGATE_SCANNER__NER": "never"})
    assert ok.returncode == 0, ok.stderr
    key_file.unlink()
    MasterKey.generate().write(key_file)  # well-formed, but not this database's key
    for command in (["check-config"], ["serve", "--role", "delivery"]):
        result = phigate("--config", config, *command)
        assert result.returncode == 2, result.stderr
        assert one_line(result).startswith(
            "phigate: error: [storage] master_key_file: this is not the master key this "
            "database was made with"), command


def test_a_database_without_a_key_check_gets_one_at_the_first_start_unless_mail_disagrees(
        tmp_path: Path) -> None:
    from phigate.queue.db import upgrade
    from phigate.queue.key_check import ensure_master_key
    from phigate.queue.store import NewMessage, SqlQueueStore

    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    try:
        upgrade(engine)  # as `phigate db upgrade` leaves a database: no value stored
        old, new = MasterKey.generate(), MasterKey.generate()
        assert verify_master_key(engine, new) is KeyCheck.UNRECORDED
        SqlQueueStore(engine, old).enqueue(NewMessage(
            sender="a@practice.test", recipients=["b@example.org"], body=b"x\r\n",
            username="clinic"))
        with pytest.raises(ConfigError, match="sealed with another key"):
            ensure_master_key(engine, new)
        ensure_master_key(engine, old)
        assert verify_master_key(engine, old) is KeyCheck.MATCHED
        with pytest.raises(ConfigError, match="does not unseal"):
            verify_master_key(engine, new)
    finally:
        engine.dispose()


def test_a_missing_spacy_model_fails_check_config_and_serve_on_one_line(installation: Path
                                                                        ) -> None:
    config = str(installation / "phigate.toml")
    env = {"PHIGATE_SCANNER__MODEL": "no_such_spacy_model"}
    for command in (["check-config"], ["serve", "--role", "smtp"]):
        result = phigate("--config", config, *command, env=env)
        assert result.returncode == 2, result.stderr
        assert one_line(result) == (
            "phigate: error: [scanner] model: the spaCy model 'no_such_spacy_model' is not "
            "installed (install its package, or set [scanner] ner = \"never\" to scan "
            "without NER)"), command


async def test_healthz_reports_the_scanner_and_the_last_unseal_and_fails_when_the_pool_is_down(
        relay_factory: Callable[..., Any]) -> None:
    async with relay_factory(("smtp", "http"),
                             scanner={"enabled": True, "ner": "never", "workers": 1}) as running:
        base = f"http://127.0.0.1:{running.runtime.settings.http.listen.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
                body = await response.json()
            assert body["checks"]["scanner"] is True and body["scanner"] == "ok"
            assert body["last_unseal"] is not None  # the key check at start unsealed
            pool = running.submission.scanner
            pool.close()  # the pool goes down (shutdown closes it again: no harm)
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 503
                body = await response.json()
            assert body["checks"]["scanner"] is False
            assert body["scanner"].startswith("unscannable")
