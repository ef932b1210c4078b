"""Finding PHI that leaked into a message on the wire, without chance matches.

A short secret ("HIV", "4417") turns up by chance in a message's machine-made parts: the
DKIM-Signature's base64 holds "HIV" about once in 700 signatures, and make_msgid's ~37
digits or a MIME boundary's 19 hold "4417" about once in 300 messages. So the signature
field (hashes and a signature, nothing the sender wrote) is left out, and a secret that
starts or ends with a letter or digit counts only where it is not part of a longer run of
them: a leak is text the sender wrote ("…-4417.pdf", "HIV-positive"), not digits inside
a random number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from phigate.mta.header_block import HeaderBlock, split_header_block


def without_signature(raw: bytes) -> bytes:
    """``raw`` without its header's DKIM-Signature fields (each with its folded lines)."""
    block = split_header_block(raw)
    assert isinstance(block, HeaderBlock), block
    kept = b"".join(f.raw for f in block.fields if f.key != "dkim-signature")
    return kept + raw[block.block_end:]


def _as_written(secret: bytes) -> re.Pattern[bytes]:
    before = rb"(?<![A-Za-z0-9])" if secret[:1].isalnum() else b""
    after = rb"(?![A-Za-z0-9])" if secret[-1:].isalnum() else b""
    return re.compile(before + re.escape(secret) + after)


def leaks(raw: bytes, secrets: Iterable[str | bytes]) -> list[str]:
    """The ``secrets`` found in ``raw`` as written, outside its DKIM signature."""
    unsigned = without_signature(raw)
    found = []
    for secret in secrets:
        encoded = secret.encode() if isinstance(secret, str) else secret
        if _as_written(encoded).search(unsigned):
            found.append(encoded.decode(errors="replace"))
    return found
