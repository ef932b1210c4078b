"""Issue 14 item 7: zero limits that meant "unlimited" or "nothing" are refused on one line
(``max_message_size = 0`` let any size in, ``[delivery] workers = 0`` was taken silently);
the limits where zero is a documented "no cap" are warned about."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from phigate.config import Settings
from phigate.config.limits import POSITIVE, check_limits, unlimited_warnings
from phigate.config.validation import validate
from phigate.errors import ConfigError


def with_value(section: str, key: str, value: object) -> Settings:
    settings = Settings()
    changed = dataclasses.replace(getattr(settings, section), **{key: value})
    return dataclasses.replace(settings, **{section: changed})


def test_the_defaults_pass() -> None:
    check_limits(Settings())
    assert unlimited_warnings(Settings()) == []


@pytest.mark.parametrize(("section", "key"), POSITIVE)
def test_every_positive_limit_refuses_zero_and_names_its_key(section: str, key: str) -> None:
    zero = 0.0 if isinstance(getattr(getattr(Settings(), section), key), float) else 0
    with pytest.raises(ConfigError) as raised:
        check_limits(with_value(section, key, zero))
    assert str(raised.value) == f"[{section}] {key}: must be greater than 0 (got {zero})"


def test_a_negative_float_is_refused_too() -> None:
    # The loader refuses negative integers; floats reach validation as they are.
    with pytest.raises(ConfigError, match=r"\[delivery\] shutdown_timeout_seconds"):
        check_limits(with_value("delivery", "shutdown_timeout_seconds", -1.0))


def test_a_retry_cap_below_its_base_is_refused() -> None:
    settings = dataclasses.replace(Settings(), delivery=dataclasses.replace(
        Settings().delivery, retry_base_seconds=600, retry_max_seconds=60))
    with pytest.raises(ConfigError, match="retry_max_seconds: must be at least"):
        check_limits(settings)


@pytest.mark.parametrize("nice", [20, -1])
def test_the_delivery_childs_nice_increment_is_0_to_19(nice: int) -> None:
    with pytest.raises(ConfigError) as raised:
        check_limits(with_value("delivery", "process_nice", nice))
    assert str(raised.value) == f"[delivery] process_nice: must be 0 to 19 (got {nice})"
    check_limits(with_value("delivery", "process_nice", 19))
    check_limits(with_value("delivery", "process_nice", 0))


def test_a_zero_session_cap_is_allowed_with_a_warning(caplog: pytest.LogCaptureFixture
                                                      ) -> None:
    settings = with_value("submission", "max_sessions", 0)
    with caplog.at_level(logging.WARNING, logger="phigate.config"):
        validate(settings, check_files=False)
    assert [r.getMessage() for r in caplog.records] == [
        "config: [submission] max_sessions = 0: no cap on concurrent sessions"]


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("limits") / "i"
    result = subprocess.run([sys.executable, "-m", "phigate", "init", "--dir", str(base),
                             "--domain", "practice.test"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return base


@pytest.mark.parametrize(("variable", "line"), [
    ("PHIGATE_SUBMISSION__MAX_MESSAGE_SIZE",
     "phigate: error: [submission] max_message_size: must be greater than 0 (got 0)"),
    ("PHIGATE_DELIVERY__WORKERS",
     "phigate: error: [delivery] workers: must be greater than 0 (got 0)"),
])
def test_check_config_and_serve_refuse_a_zero_on_one_line(installation: Path, variable: str,
                                                          line: str) -> None:
    config = str(installation / "phigate.toml")
    env = {**os.environ, variable: "0"}
    for command in (["check-config"], ["serve", "--role", "delivery"]):
        result = subprocess.run([sys.executable, "-m", "phigate", "--config", config,
                                 *command], capture_output=True, text=True, timeout=60,
                                env=env)
        lines = [text for text in result.stderr.splitlines() if text.strip()]
        assert result.returncode != 0 and lines == [line], (command, result.stderr)
