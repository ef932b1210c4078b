"""sisimai's bounce reason names, and what each means for the recipient."""

from __future__ import annotations

from enum import StrEnum


class BounceReason(StrEnum):
    USERUNKNOWN = "userunknown"
    HOSTUNKNOWN = "hostunknown"
    HASMOVED = "hasmoved"
    NOTACCEPT = "notaccept"
    MAILBOXFULL = "mailboxfull"
    SUSPEND = "suspend"
    EXPIRED = "expired"
    BLOCKED = "blocked"
    SPAMDETECTED = "spamdetected"
    VIRUSDETECTED = "virusdetected"
    POLICYVIOLATION = "policyviolation"
    AUTHFAILURE = "authfailure"
    REQUIREPTR = "requireptr"
    BADREPUTATION = "badreputation"
    SECURITYERROR = "securityerror"
    REJECTED = "rejected"
    NORELAYING = "norelaying"
    TOOMANYCONN = "toomanyconn"
    SPEEDING = "speeding"
    EXCEEDLIMIT = "exceedlimit"
    MESGTOOBIG = "mesgtoobig"
    CONTENTERROR = "contenterror"
    NOTCOMPLIANTRFC = "notcompliantrfc"
    SYNTAXERROR = "syntaxerror"
    SYSTEMERROR = "systemerror"
    SYSTEMFULL = "systemfull"
    NETWORKERROR = "networkerror"
    MAILERERROR = "mailererror"
    FAILEDSTARTTLS = "failedstarttls"
    FILTERED = "filtered"
    ONHOLD = "onhold"
    UNDEFINED = "undefined"


class ReasonGroup(StrEnum):
    """What a reason means for the recipient (what :mod:`feedback_actions` does with it)."""

    ADDRESS = "address"  # the address is bad: suppress it (when permanent)
    MAILBOX = "mailbox"  # the mailbox has a problem: a soft bounce
    SENDER = "sender"  # our side (IP, authentication, sender address): never the recipient
    MESSAGE = "message"  # this message (size, content, virus): nothing about the address
    TRANSPORT = "transport"  # the way there (network, remote system): a soft bounce
    GRAY = "gray"  # cannot tell: soft, never suppress on the first one


class SmtpStage(StrEnum):
    CONNECT = "connect"
    HELO = "helo"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"


_R = BounceReason
_GROUPS: dict[ReasonGroup, frozenset[BounceReason]] = {
    ReasonGroup.ADDRESS: frozenset({_R.USERUNKNOWN, _R.HOSTUNKNOWN, _R.HASMOVED, _R.NOTACCEPT}),
    ReasonGroup.MAILBOX: frozenset({_R.MAILBOXFULL, _R.SUSPEND, _R.EXPIRED, _R.EXCEEDLIMIT}),
    ReasonGroup.SENDER: frozenset({
        _R.BLOCKED, _R.SPAMDETECTED, _R.AUTHFAILURE, _R.REQUIREPTR, _R.BADREPUTATION,
        _R.SECURITYERROR, _R.REJECTED, _R.POLICYVIOLATION, _R.TOOMANYCONN, _R.SPEEDING}),
    ReasonGroup.MESSAGE: frozenset({
        _R.VIRUSDETECTED, _R.MESGTOOBIG, _R.CONTENTERROR, _R.NOTCOMPLIANTRFC}),
    ReasonGroup.TRANSPORT: frozenset({
        _R.NORELAYING, _R.SYNTAXERROR, _R.SYSTEMERROR, _R.SYSTEMFULL, _R.NETWORKERROR,
        _R.MAILERERROR, _R.FAILEDSTARTTLS}),
    ReasonGroup.GRAY: frozenset({_R.FILTERED, _R.ONHOLD, _R.UNDEFINED}),
}
GROUP_OF = {reason: group for group, members in _GROUPS.items() for reason in members}


def reason_group(reason: BounceReason) -> ReasonGroup:
    return GROUP_OF[reason]


def is_sender_side(category: str | None) -> bool:
    """A problem on our side (blocked IP, authentication, rejected sender, rate limits)."""
    if not category:
        return False
    try:
        return GROUP_OF[BounceReason(category)] is ReasonGroup.SENDER
    except ValueError:
        return False


def counts_against_address(category: str | None) -> bool:
    """Whether a non-hard bounce of this category counts as a soft bounce of the address.
    Unknown categories (older records, unrecognised formats) count, as before."""
    try:
        group = GROUP_OF[BounceReason(category)] if category else ReasonGroup.GRAY
    except ValueError:
        return True
    return group not in (ReasonGroup.SENDER, ReasonGroup.MESSAGE)
