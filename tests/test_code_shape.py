"""Files small enough to hold in your head: no module of phigate/ over 400 lines and no
function over 60 (migrations excepted), read from the source with ``ast``. There is no
list of exceptions: a module that grows over the limit is split by responsibility.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "phigate"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def measured(root: Path = PACKAGE) -> dict[str, int]:
    """Every file over the file limit and every function over the function limit."""
    sizes: dict[str, int] = {}
    for path in sorted(root.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        name = path.relative_to(root).as_posix()
        source = path.read_text()
        lines = len(source.splitlines())
        if lines > MAX_FILE_LINES:
            sizes[name] = lines
        for node in ast.walk(ast.parse(source, name)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                key = f"{name}::{node.name}"
                if length > MAX_FUNCTION_LINES:
                    sizes[key] = max(length, sizes.get(key, 0))
    return sizes


def test_no_file_or_function_over_the_limits() -> None:
    sizes = measured()
    assert not sizes, f"over {MAX_FILE_LINES} lines / {MAX_FUNCTION_LINES}-line functions: {sizes}"


def test_the_measure_sees_long_files_and_functions(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "long.py").write_text(f"async def long():\n{body}\n\n\ndef short():\n    pass\n")
    (tmp_path / "big.py").write_text("x = 1\n" * (MAX_FILE_LINES + 1))
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "huge.py").write_text("x = 1\n" * 1000)
    assert measured(tmp_path) == {"long.py::long": MAX_FUNCTION_LINES + 1,
                                  "big.py": MAX_FILE_LINES + 1}
