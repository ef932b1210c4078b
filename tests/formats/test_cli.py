"""``phigate dkim keygen`` and ``phigate feedback classify`` through the real entry point."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pytest
from helpers.shared import EVAL

from phigate.cli.main import main
from phigate.mta.delivery.dkim import dns_record
from phigate.mta.delivery.dsn import FailedRecipient, build_dsn
from phigate.policy.token_registry import SqlTokenRegistry
from phigate.policy.tokens import TokenClaims, TokenSigner, verp_address
from phigate.queue.db import make_engine, upgrade

NO_CONFIG = ["--config", "/nonexistent/phigate.toml"]
ARF_002 = EVAL / "arf/stalwart-mail-auth/resources/arf/002.eml"


@pytest.mark.parametrize("key_type", ["rsa", "ed25519"])
def test_keygen_writes_a_private_key_and_prints_the_record(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        key_type: Literal["rsa", "ed25519"]) -> None:
    out = tmp_path / "k.key"
    args = [*NO_CONFIG, "dkim", "keygen", "--domain", "Clinic.Example", "--selector", "s1",
            "--type", key_type, "--out", str(out)]
    assert main(args) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    printed = capsys.readouterr().out
    assert "s1._domainkey.clinic.example" in printed
    assert f"value: {dns_record(out.read_bytes(), key_type)}\n" in printed

    before = out.read_bytes()
    assert main(args) == 1
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_keygen_rejects_bad_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*NO_CONFIG, "dkim", "keygen", "--domain", "bad domain", "--selector", "s",
                 "--out", str(tmp_path / "k")]) == 1
    assert "--domain" in capsys.readouterr().err
    assert not (tmp_path / "k").exists()


@pytest.mark.skipif(not ARF_002.is_file(),
                    reason=f"evaluation material absent: {ARF_002} (set PHIGATE_SHARED_DIR)")
def test_feedback_classify_json_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key_file = tmp_path / "token.key"
    key_file.write_bytes(b"0123456789abcdef0123456789abcdef\n")
    config = tmp_path / "phigate.toml"
    url = f"sqlite:///{tmp_path / 'phigate.db'}"
    config.write_text(f'[policy]\ntoken_key_file = "{key_file}"\n[storage]\nurl = "{url}"\n')
    engine = make_engine(url)
    upgrade(engine)
    signer = TokenSigner(key_file.read_bytes().strip(), SqlTokenRegistry(engine))
    verp = verp_address(signer, TokenClaims("verp", "pat@example.net"), "clinic.example")
    dsn = build_dsn(original=b"From: dr@clinic.example\r\n\r\nbody\r\n",
                    envelope_sender=verp,
                    failed=[FailedRecipient("pat@example.net", "5.1.1", None,
                                            "smtp; 550 5.1.1 no such user")],
                    reporting_mta="mx.example.net", arrival=datetime.now(UTC))
    assert dsn is not None
    bounce = tmp_path / "bounce.eml"
    bounce.write_bytes(dsn)

    engine.dispose()
    assert main(["--config", str(config), "feedback", "classify", str(bounce), str(ARF_002),
                 "--json", "--no-dkim"]) == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["file"] == str(bounce) and first["kind"] == "bounce"
    assert first["recipients"] == [{"address": "pat@example.net", "permanent": True,
                                    "status": "5.1.1", "reason": "550 5.1.1 no such user",
                                    "category": "userunknown", "reply_code": "550"}]
    assert first["token"]["kind"] == "verp"  # the key from the config verified the To: token
    assert second["kind"] == "complaint" and second["feedback_type"] == "abuse"
    assert second["recipients"][0]["address"] == "user@example.com"


def test_feedback_classify_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*NO_CONFIG, "feedback", "classify", "/nonexistent.eml", "--json"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err
