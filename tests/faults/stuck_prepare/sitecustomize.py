"""Loaded by a ``phigate serve`` subprocess of tests/faults/test_sigterm.py (this directory
first on its PYTHONPATH), never by the product: DKIM signing of a message that carries
``STUCK-PREPARE`` spins on the CPU for ever, as dkimpy did on a poison header (issue 14
finding 3), after touching the file named by ``PHIGATE_TEST_STUCK_MARK``."""

from __future__ import annotations

import os
from pathlib import Path


def _install() -> None:
    mark = os.environ.get("PHIGATE_TEST_STUCK_MARK")
    if not mark:
        return
    from phigate.mta.delivery.dkim_keyring import DkimKeyring

    sign = DkimKeyring.sign

    def stuck(self: DkimKeyring, message: bytes) -> bytes:
        if b"STUCK-PREPARE" not in message:
            return sign(self, message)
        Path(mark).touch()
        spun = b""
        while True:  # pure Python: a thread that cannot be interrupted, only abandoned
            spun = (spun + b"x")[-4096:]

    DkimKeyring.sign = stuck  # type: ignore[method-assign]


_install()
