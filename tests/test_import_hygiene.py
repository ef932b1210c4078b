"""The core never imports textual or spaCy (checked in a fresh interpreter, harlequin's way),
and the packages import each other only along the arrows of the mail path."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

CORE = [
    "phigate.cli.main", "phigate.serve", "phigate.mta.submission.server", "phigate.queue.store",
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


# The package arrows of docs/design.md: submission -> policy -> queue <- delivery. Read from the
# source (every import statement, also the ones inside functions), so a lazy import cannot hide.
PACKAGE = Path(__file__).resolve().parents[1] / "phigate"
FORBIDDEN = {
    "phigate.queue": ("phigate.mta", "phigate.policy", "phigate.admin", "phigate.serve"),
    "phigate.policy": ("phigate.mta", "phigate.admin", "phigate.serve"),
    "phigate.phi_scanner": ("phigate.mta", "phigate.policy", "phigate.queue", "phigate.admin"),
    "phigate.mta.delivery": ("phigate.mta.submission",),
    # Secure pickup sits beside delivery: delivery calls it, it never calls back.
    "phigate.pickup": ("phigate.mta", "phigate.policy", "phigate.admin", "phigate.serve"),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_package_arrows_run_one_way() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        for package, forbidden in FORBIDDEN.items():
            if not under(name, package):
                continue
            for imported in imported_modules(path):
                if any(under(imported, target) for target in forbidden):
                    wrong.append(f"{name} imports {imported}")
    assert not wrong, "\n".join(wrong)


def test_the_arrow_check_sees_a_lazy_import(tmp_path: Path) -> None:
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    from phigate.mta.delivery.dsn import build_dsn\n")
    assert "phigate.mta.delivery.dsn" in imported_modules(source)
