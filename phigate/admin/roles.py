"""Who is acting, and what they may do: ``[admin] viewers`` look, ``[admin] operators`` act.

Identity is the OS user running the command (``getpass.getuser()``) and the groups the system
gives that user; an entry ``@group`` in the settings matches every member of the group. There
is no phigate password for admins on purpose: the appliance is administered over SSH, and the
OS account is the unique user id HIPAA asks for.
"""

from __future__ import annotations

import enum
import grp
import os
import pwd
from collections.abc import Iterable
from dataclasses import dataclass, field

from phigate.audit.log import Actor
from phigate.config import AdminSettings
from phigate.errors import UserError


class Role(enum.IntEnum):
    NONE = 0
    VIEWER = 1
    OPERATOR = 2

    def __str__(self) -> str:
        return self.name.lower()


class AccessDenied(UserError):
    """The acting user's role does not allow this; the attempt has been audited."""


@dataclass(frozen=True)
class Identity:
    user: str
    groups: frozenset[str] = field(default_factory=frozenset)
    #: The SSH client address, when the session came in over SSH.
    ip: str | None = None

    @classmethod
    def current(cls) -> Identity:
        actor = Actor.from_environment()
        return cls(actor.name, frozenset(groups_of(actor.name)), actor.ip)

    @property
    def actor(self) -> Actor:
        return Actor(self.user, self.ip)


def groups_of(user: str) -> set[str]:
    """Names of the user's primary and supplementary groups (empty for an unknown user)."""
    try:
        primary_gid = pwd.getpwnam(user).pw_gid
        gids: Iterable[int] = os.getgrouplist(user, primary_gid)
    except KeyError:
        # A user the password database does not know (e.g. "uid:1234"): only the process's
        # own groups are trustworthy.
        gids = {os.getgid(), *os.getgroups()}
    names = set()
    for gid in gids:
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return names


def _matches(identity: Identity, entries: Iterable[str]) -> bool:
    for entry in entries:
        entry = entry.strip()
        if entry.startswith("@"):
            if entry[1:] in identity.groups:
                return True
        elif entry == identity.user:
            return True
    return False


def role_of(identity: Identity, settings: AdminSettings) -> Role:
    if _matches(identity, settings.operators):
        return Role.OPERATOR
    if _matches(identity, settings.viewers):
        return Role.VIEWER
    return Role.NONE
