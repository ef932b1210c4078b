"""The master key's check value: a wrong but well-formed key is caught before any mail.

``phigate init`` seals a known text under the master key and stores it in the ``meta``
table. ``check-config`` and ``serve`` unseal it with the configured key: a key that cannot
is not the one the database was made with, and ``serve`` refuses to start (before, it
started and parked every due message ``corrupt``).

A database made before the check existed (or migrated by ``phigate db upgrade`` alone)
has no value yet. Then the key's id is compared with the ids stored with the queued
bodies (there is one master key per installation); if none of them disagree, ``serve``
records the value at its first start.
"""

from __future__ import annotations

import base64
import enum
import json

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from phigate.errors import ConfigError
from phigate.queue.crypto import DecryptionError, MasterKey, SealedBody
from phigate.queue.models import Message
from phigate.queue.policy_models import MetaValue

META_KEY = "master_key_check"
_TEXT = b"phigate master key check"
_AD = b"phigate:key-check"

WRONG_KEY = ("[storage] master_key_file: this is not the master key this database was "
             "made with (its key-check value does not unseal); restore the right key file")


class KeyCheck(enum.Enum):
    MATCHED = "matched"
    #: No value stored yet, and nothing in the database contradicts the key.
    UNRECORDED = "unrecorded"


def _encode(sealed: SealedBody) -> str:
    return json.dumps({part: base64.b64encode(getattr(sealed, part)).decode()
                       for part in ("wrapped_key", "nonce", "ciphertext")}
                      | {"key_id": sealed.key_id})


def _decode(text: str) -> SealedBody:
    fields = json.loads(text)
    return SealedBody(base64.b64decode(fields["wrapped_key"]), base64.b64decode(fields["nonce"]),
                      base64.b64decode(fields["ciphertext"]), str(fields["key_id"]))


def verify_master_key(engine: Engine, key: MasterKey) -> KeyCheck:
    """MATCHED or UNRECORDED; raises :class:`ConfigError` (one line) for a wrong key."""
    with Session(engine) as session:
        row = session.get(MetaValue, META_KEY)
        if row is None:
            ids = set(session.scalars(select(Message.key_id).distinct().limit(10)))
            if ids and key.key_id not in ids:
                raise ConfigError(WRONG_KEY.replace(
                    "its key-check value does not unseal", "the queued messages were sealed "
                    "with another key"))
            return KeyCheck.UNRECORDED
        text = row.value
    try:
        plaintext = key.open(_decode(text), associated_data=_AD)
    except (DecryptionError, ValueError, KeyError, TypeError):
        raise ConfigError(WRONG_KEY) from None
    if plaintext != _TEXT:
        raise ConfigError(WRONG_KEY)
    return KeyCheck.MATCHED


def record_key_check(engine: Engine, key: MasterKey) -> None:
    """Store the check value for ``key`` unless one is stored already (never replaced)."""
    with Session(engine) as session, session.begin():
        if session.get(MetaValue, META_KEY) is None:
            session.add(MetaValue(key=META_KEY,
                                  value=_encode(key.seal(_TEXT, associated_data=_AD))))


def ensure_master_key(engine: Engine, key: MasterKey) -> None:
    """For ``serve``: refuse a wrong key; record the value at the first start without one."""
    if verify_master_key(engine, key) is KeyCheck.UNRECORDED:
        record_key_check(engine, key)
        verify_master_key(engine, key)
