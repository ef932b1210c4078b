"""Slow, salted password hashes (scrypt) in a self-describing string format.

``scrypt$<log2 n>$<r>$<p>$<salt b64>$<hash b64>``: the parameters travel with the hash, so they
can be raised later without invalidating stored passwords.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

# n=2**15, r=8: ~32 MiB and some tens of milliseconds per check on this class of machine,
# which is the OWASP recommendation for scrypt; brute force is further slowed by the lockout.
DEFAULT_LOG2_N = 15
DEFAULT_R = 8
DEFAULT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32


def hash_password(password: str, *, log2_n: int = DEFAULT_LOG2_N) -> str:
    salt = os.urandom(SALT_BYTES)
    digest = _kdf(salt, log2_n, DEFAULT_R, DEFAULT_P).derive(password.encode("utf-8"))
    return "$".join(
        ["scrypt", str(log2_n), str(DEFAULT_R), str(DEFAULT_P), _b64(salt), _b64(digest)]
    )


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, log2_n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        kdf = _kdf(base64.b64decode(salt), int(log2_n), int(r), int(p))
        kdf.verify(password.encode("utf-8"), base64.b64decode(digest))
    except (ValueError, InvalidKey):
        return False
    return True


def _kdf(salt: bytes, log2_n: int, r: int, p: int) -> Scrypt:
    return Scrypt(salt=salt, length=HASH_BYTES, n=2**log2_n, r=r, p=p)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
