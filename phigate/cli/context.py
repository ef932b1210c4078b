"""What every command handler receives besides its parsed arguments."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from phigate.config import Settings

DEFAULT_CONFIG = Path("/etc/phigate/phigate.toml")


@dataclass
class CliContext:
    """Loads the settings once, and only for commands that need them."""

    config_path: Path = DEFAULT_CONFIG
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        if self._settings is None:
            from phigate.config import load_settings

            self._settings = load_settings(self.config_path)
        return self._settings

    def has_config(self) -> bool:
        return self.config_path.exists()


# What each command module's ``register`` receives.
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
