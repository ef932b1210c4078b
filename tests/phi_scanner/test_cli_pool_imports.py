"""The scan command, the process pool (fail closed) and import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from phigate.cli.main import main
from phigate.config import ScannerSettings
from phigate.phi_scanner import ScannerPool

ROOT = Path(__file__).resolve().parents[2]
PHI_MESSAGE = (b"From: clinic@example.org\r\nTo: p@example.net\r\nSubject: Your results\r\n\r\n"
               b"Dear Maria Lopez,\r\nYour A1c was 8.2% and we will adjust your metformin.\r\n")
PLAIN_MESSAGE = b"From: a@example.org\r\nSubject: lunch\r\n\r\nsee you at noon\r\n"


def test_importing_the_scanner_package_does_not_import_spacy():
    code = ("import sys; import phigate.phi_scanner as p; from phigate.phi_scanner import "
            "Scanner, ScannerPool, redact, Finding, ScanResult; import phigate.cli.main; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('spacy', 'thinc', 'torch')))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=ROOT).stdout
    assert output.strip() == "[]"


def test_only_the_nlp_module_imports_spacy():
    package = ROOT / "phigate"
    importers = sorted(str(path.relative_to(ROOT)) for path in package.rglob("*.py")
                       if "import spacy" in path.read_text(encoding="utf-8"))
    assert importers == ["phigate/phi_scanner/nlp.py"]


def test_scan_cli_json_lines_for_several_files(tmp_path, capsys):
    first, second = tmp_path / "a.eml", tmp_path / "b.eml"
    first.write_bytes(PHI_MESSAGE)
    second.write_bytes(PLAIN_MESSAGE)
    status = main(["--config", str(tmp_path / "absent.toml"), "scan", str(first), str(second),
                   "--json"])
    assert status == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["file"] for line in lines] == [str(first), str(second)]
    assert lines[0]["verdict"] == "phi" and lines[1]["verdict"] == "none"
    finding = lines[0]["findings"][0]
    assert set(finding) >= {"category", "text", "start", "end", "part", "confidence"}
    assert "Maria Lopez" in [f["text"] for f in lines[0]["findings"]]


def test_scan_cli_single_file_json_has_no_file_key(tmp_path, capsys):
    path = tmp_path / "a.eml"
    path.write_bytes(PHI_MESSAGE)
    assert main(["--config", str(tmp_path / "absent.toml"), "scan", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "file" not in data and data["verdict"] == "phi"


def test_scan_cli_uses_the_config_file(tmp_path, capsys):
    config = tmp_path / "phigate.toml"
    config.write_text("[scanner]\nphi_threshold = 0.99\nner = \"never\"\n")
    path = tmp_path / "a.eml"
    path.write_bytes(PHI_MESSAGE)
    assert main(["--config", str(config), "scan", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "identifiers"


def test_scan_cli_missing_file_is_one_clear_error(tmp_path, capsys):
    status = main(["--config", str(tmp_path / "absent.toml"), "scan",
                   str(tmp_path / "nope.eml")])
    assert status == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"phigate: error: {tmp_path / 'nope.eml'}: no such file"]


@pytest.mark.slow
async def test_pool_scans():
    settings = ScannerSettings(workers=1, timeout_seconds=60)
    pool = ScannerPool(settings)
    try:
        result = await pool.scan(PHI_MESSAGE)
        assert result.verdict == "phi" and not result.unscannable
        assert (await pool.scan(b"\x00\xff not a message")).verdict in ("none", "identifiers",
                                                                        "phi")
    finally:
        pool.close()
    # A scan that cannot finish in time (a worker that hangs): tests/phi_scanner/
    # test_pool_workers.py; a worker's start-up no longer counts against its first message.


@pytest.mark.slow
def test_eval_script_smoke():
    output = subprocess.run(
        [sys.executable, "bench/scanner_eval.py", "--limit", "20", "--no-presidio"],
        capture_output=True, text=True, check=True, cwd=ROOT, timeout=240).stdout
    assert "message level" in output and "docs/s" in output
