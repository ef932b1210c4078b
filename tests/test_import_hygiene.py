"""The core never imports textual or spaCy: checked in a fresh interpreter (harlequin's way)."""

from __future__ import annotations

import json
import subprocess
import sys

CORE = [
    "phigate.cli.main", "phigate.serve", "phigate.mta.server", "phigate.queue.store",
    "phigate.policy.engine", "phigate.phi_scanner",
]


def loaded_modules(*imports: str) -> set[str]:
    code = ("import json, sys\n" + "".join(f"import {name}\n" for name in imports)
            + "print(json.dumps(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    return set(json.loads(result.stdout))


def test_core_imports_neither_textual_nor_spacy() -> None:
    modules = loaded_modules(*CORE)
    assert not {m for m in modules if m == "textual" or m.startswith("textual.")}
    assert not {m for m in modules if m == "spacy" or m.startswith("spacy.")}


def test_building_the_cli_parser_stays_light() -> None:
    code = ("import json, sys\nfrom phigate.cli.main import build_parser\nbuild_parser()\n"
            "print(json.dumps(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    modules = set(json.loads(result.stdout))
    assert "textual" not in modules and "spacy" not in modules
