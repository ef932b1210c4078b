"""Where the public evaluation material (``shared/eval``) lies: beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("PHIGATE_SHARED_DIR", REPO.parent / "shared"))
EVAL = SHARED / "eval"
