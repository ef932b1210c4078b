"""Reading the settings: TOML, ``PHIGATE_*`` overrides, and typed conversion by field."""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from phigate.config.sections import HostPort, Settings
from phigate.errors import ConfigError

ENV_PREFIX = "PHIGATE_"


def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``path``, apply ``PHIGATE_*`` overrides, validate; raise :class:`ConfigError`."""
    try:
        with path.open("rb") as stream:
            raw = tomllib.load(stream)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except PermissionError:
        raise ConfigError(f"{path}: configuration file not readable (permission denied)") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    apply_env_overrides(raw, os.environ if environ is None else environ)
    settings = _build(Settings, raw, prefix="")
    return dataclasses.replace(settings, source=path)


def settings_from_mapping(raw: dict[str, Any]) -> Settings:
    """Build settings from an already-parsed mapping (tests, ``init``)."""
    return _build(Settings, raw, prefix="")


def apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].partition("__")
        section, key = section.lower(), key.lower()
        if section not in _field_types(Settings):
            raise ConfigError(f"{name}: unknown configuration section [{section}]")
        target = raw.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"[{section}]: expected a table")
        target[key] = _parse_env_value(value)


def _parse_env_value(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name != "source"}


def _build(cls: type[Any], raw: Any, *, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'top level'}: expected a table")
    types_by_name = _field_types(cls)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{prefix}.{key}" if prefix else key
        if key not in types_by_name:
            where = f"[{prefix}] " if prefix else ""
            kind = "key" if prefix else "section"
            raise ConfigError(f"{where}{key}: unknown configuration {kind}")
        values[key] = _convert(types_by_name[key], value, name=_display(name))
    return cls(**values)


def _display(dotted: str) -> str:
    section, _, rest = dotted.partition(".")
    return f"[{section}] {rest}" if rest else f"[{section}]"


def _convert(annotation: Any, value: Any, *, name: str) -> Any:
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation) and (
        annotation is not HostPort
    ):
        return _build(annotation, value, prefix=name.strip("[]").replace("] ", "."))
    if annotation is HostPort:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a \"HOST:PORT\" string")
        return HostPort.parse(value, key=name)
    if annotation is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a path string")
        return Path(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer")
        if value < 0:
            raise ConfigError(f"{name}: must not be negative")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name}: expected a number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string")
        return value
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise ConfigError(f"{name}: expected a list")
        return [_convert(item_type, item, name=f"{name}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        _, item_type = typing.get_args(annotation)
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a table")
        return {k: _convert(item_type, v, name=f"{name}.{k}") for k, v in value.items()}
    choices = _literal_choices(annotation)
    if choices is not None:
        if value not in choices:
            shown = ", ".join(str(choice) for choice in choices if choice != "")
            raise ConfigError(f"{name}: must be one of {shown}")
        return value
    if origin in (typing.Union, types.UnionType):
        # ``X | None``: TOML has no null, so a present key is an X (absent keeps None).
        members = [member for member in typing.get_args(annotation) if member is not type(None)]
        if len(members) == 1:
            return _convert(members[0], value, name=name)
        raise ConfigError(f"{name}: unsupported type")  # pragma: no cover
    raise ConfigError(f"{name}: unsupported type {annotation!r}")  # pragma: no cover


def _literal_choices(annotation: Any) -> tuple[Any, ...] | None:
    """The values a ``Literal`` (or a union of them) admits; None for other types."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [_literal_choices(member) for member in typing.get_args(annotation)]
        if all(member is not None for member in members):
            return tuple(choice for member in members for choice in member or ())
    return None
