"""The settings loader's typed conversion: Literal choices (and unions of them) and
``X | None`` keys, by the dataclass annotations alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from phigate.config import settings_from_mapping
from phigate.config.loading import _build
from phigate.errors import ConfigError


@dataclass(frozen=True)
class _Section:
    mode: Literal["a", "b"] | Literal[""] = ""
    limit: int | None = None


def test_a_literal_union_admits_each_member_and_nothing_else() -> None:
    assert _build(_Section, {"mode": "b"}, prefix="s").mode == "b"
    assert _build(_Section, {"mode": ""}, prefix="s").mode == ""
    with pytest.raises(ConfigError, match=r"^\[s\] mode: must be one of a, b$"):
        _build(_Section, {"mode": "c"}, prefix="s")


def test_an_optional_key_is_converted_as_its_type_and_stays_none_when_absent() -> None:
    assert _build(_Section, {}, prefix="s").limit is None
    assert _build(_Section, {"limit": 3}, prefix="s").limit == 3
    with pytest.raises(ConfigError, match=r"^\[s\] limit: expected an integer$"):
        _build(_Section, {"limit": "three"}, prefix="s")


def test_defaults_are_valid_choices_and_a_domain_table_takes_its_own() -> None:
    settings = settings_from_mapping({"delivery": {"domains": {"x.test": {"tls": "verify"}}}})
    assert settings.delivery.domains["x.test"].tls == "verify"
    assert settings.scanner.action_for("marketing") == "quarantine"
    assert settings.scanner.action_for("no-such-class") == "quarantine"
