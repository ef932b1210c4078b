"""The README's configuration reference names every key the settings object accepts."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from phigate.config import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_config_key_is_documented() -> None:
    missing = []
    for section in dataclasses.fields(Settings):
        if section.name == "source":
            continue
        assert f"`[{section.name}]`" in README, section.name
        section_type = typing.get_type_hints(Settings)[section.name]
        for key in dataclasses.fields(section_type):
            if f"`{key.name}`" not in README:
                missing.append(f"[{section.name}] {key.name}")
    assert missing == []


def test_readme_states_the_two_fresh_machine_commands() -> None:
    assert "scripts/quickstart" in README and "scripts/test" in README
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "scripts/test" in ci
