"""Attack-surface tests run against a SQLite relay (the storage matrix is covered by the
submission tests); the relay here also listens for implicit TLS, signs tokens with a key,
and trusts a network the test client is NOT in."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.net import free_port

from phigate.config import Settings

TRUSTED_ELSEWHERE = "10.99.0.0/16"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'queue.db'}"


@pytest.fixture
def token_key(tmp_path: Path) -> Path:
    path = tmp_path / "token.key"
    path.write_text(secrets.token_hex(32))
    return path


@pytest.fixture
def settings(make_settings: Callable[..., Settings], token_key: Path) -> Settings:
    return make_settings(
        submission={"implicit_tls_listen": f"127.0.0.1:{free_port()}",
                     "trusted_networks": [TRUSTED_ELSEWHERE]},
        policy={"token_key_file": str(token_key)},
    )
