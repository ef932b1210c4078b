"""Which addresses phigate relays to (shared by submission and the consent registry)."""

from __future__ import annotations

import re

# A local part or domain we will relay to. Rejects the %-hack, bang paths and source routes,
# which old relays honoured and which open-relay probes still try.
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$&'*+/=?^_`{|}~.-]{1,64}$")
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)


def valid_forward_path(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    if not at or "%" in local or "!" in local or address.startswith("@"):
        return False
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    return bool(_LOCAL_PART.match(local) and _DOMAIN.match(domain))
