"""What the suppress, consent and campaign commands share: the stores, the acting admin."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from phigate.admin.access import Gate
from phigate.admin.roles import Identity, Role
from phigate.audit.log import Actor
from phigate.cli.context import CliContext
from phigate.policy.stores import PolicyStores
from phigate.runtime import Runtime


@contextmanager
def policy_stores(ctx: CliContext) -> Iterator[tuple[Runtime, PolicyStores]]:
    with Runtime.open(ctx.settings()) as runtime:
        yield runtime, PolicyStores.from_runtime(runtime)


def acting_admin(runtime: Runtime, action: str, *, needed: Role = Role.OPERATOR,
                 ip: str | None = None) -> Actor:
    """The acting OS user (with the SSH client address, or ``ip``) if ``[admin]`` gives
    them the role; otherwise the refusal is audited and raised as a one-line error."""
    identity = Identity.current()
    Gate(runtime.audit, runtime.settings.admin, identity).require(needed, action)
    return Actor(identity.user, ip or identity.ip)


def print_json_array(items: Sequence[dict[str, Any]]) -> None:
    print(json.dumps(list(items), indent=2))
