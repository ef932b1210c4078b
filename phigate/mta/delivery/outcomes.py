"""Delivery outcomes as data, and the one function that turns failures into them.

A delivery attempt ends, for every recipient, in a :class:`RecipientOutcome`: the SMTP
reply code and text we got (or made up for a local failure), and whether the failure is
permanent. Everything that can go wrong on the way (DNS, sockets, timeouts, TLS policy,
SMTP replies) goes through :func:`outcome_for_exception`, so the rule "a socket error is
temporary" lives in exactly one place (Mailman's ``mta/base.py`` shape).

Texts never contain message content. A remote reply may name the recipient (``550 5.1.1
<bob@example.org>: unknown user``) or quote the message; it is shown in the DSN (reduced
to its codes for PHI mail) but stored only as :attr:`RecipientOutcome.stored_text` (its
enhanced status), and callers must not log it.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from enum import StrEnum

import aiosmtplib

from phigate.policy.feedback.reasons import SmtpStage, judge

_ENHANCED_STATUS = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_STAGES = frozenset(stage.value for stage in SmtpStage)
#: What a 4.7.x deferral says when it is about our pace, not about this recipient or this
#: message: "421 4.7.0 too many connections", "450 4.7.1 rate limited", Gmail's "4.7.28
#: unusual rate", Microsoft's "451 4.7.500 server busy". A 4.7.x without such words is
#: greylisting ("451 4.7.1 please try again later") or a policy deferral of one recipient.
_SLOW_DOWN_WORDS = re.compile(
    r"\brat(e|es|ed|ing)\b|rate[- ]?limit|too many|throttl|slow(ing)? down|busy|volume"
    r"|exceed|concurren", re.IGNORECASE)


class Backoff(StrEnum):
    """What a failure asks of the destination as a whole; decided once, where the failure
    becomes an outcome (:func:`outcome_for_exception`), and read by the scheduler's throttle.

    Only :attr:`SLOW_DOWN` slows the destination: a greylisted recipient, a lost connection
    or our own refusal to send without TLS waits for its own next attempt while the
    rest of the destination's mail goes on at full speed.
    """

    #: Delivered, or failed for good: nothing to wait for.
    NONE = "none"
    #: A temporary failure of this recipient or this attempt (greylisting, a busy mailbox,
    #: a dropped connection, a timeout): that recipient is retried on its own schedule.
    RETRY = "retry"
    #: Our own refusal (the TLS the message needs, routing, DNS): slows nothing.
    OWN_POLICY = "own_policy"
    #: The destination asked us to slow down (421; a 4.7.x deferral about rate or too many
    #: connections or messages; a refused connection): pause it, then send slowly.
    SLOW_DOWN = "slow_down"

    @classmethod
    def of(cls, slow: bool) -> Backoff:
        """An attempt's backoff for the throttle, which only cares about slowing down."""
        return cls.SLOW_DOWN if slow else cls.NONE


@dataclass(frozen=True)
class TlsInfo:
    """What protected one connection; recorded with every attempt."""

    version: str | None = None  # "TLSv1.3"; None: sent (or failed) without TLS
    cipher: str | None = None
    cert_verified: bool = False

    @property
    def encrypted(self) -> bool:
        return self.version is not None


PLAINTEXT = TlsInfo()


@dataclass(frozen=True)
class RecipientOutcome:
    """The result for one recipient of one delivery attempt."""

    address: str
    code: int
    text: str
    permanent: bool = False
    #: The code and text are a remote server's reply (not a local reason such as DNS or
    #: TLS policy); DSNs say "smtp; ..." only for these.
    remote: bool = False
    #: The command the remote refused (``SmtpStage`` value: mail, rcpt, data, ...).
    stage: str | None = None
    backoff: Backoff = Backoff.NONE

    @property
    def delivered(self) -> bool:
        return 200 <= self.code < 300

    @property
    def category(self) -> str | None:
        """The bounce reason of a failure (sisimai's names; the same classifier reads
        asynchronous DSNs): ``blocked`` for "550 5.7.1 ... blocked using a DNSBL" at RCPT,
        ``userunknown`` for "550 5.1.1 no such user"."""
        if self.delivered:
            return None
        stage = SmtpStage(self.stage) if self.stage in _STAGES else None
        return judge(reply_code=str(self.code), text=self.text, stage=stage,
                     temporary=not self.permanent).reason.value

    @property
    def status(self) -> str:
        """RFC 3463 enhanced status code (from the reply when it has one)."""
        return enhanced_status(self.code, self.text)

    @property
    def stored_text(self) -> str:
        """What the queue keeps of this outcome (issue 13 item 7): our own reasons (DNS,
        TLS policy, timeouts: fixed phrases and host names) as they are, a remote server's
        reply reduced to its enhanced status (``5.1.1``; the code is kept beside it). A
        reply's free text may quote the message or name a patient; it reaches the live
        DSN to the sender, never the database, ``queue show`` or the TUI."""
        return self.status if self.remote else self.text


@dataclass(frozen=True)
class Failure:
    """A failure that applies to every recipient of a transaction (no per-RCPT detail)."""

    code: int
    text: str
    permanent: bool
    remote: bool = False
    backoff: Backoff = Backoff.RETRY

    def __post_init__(self) -> None:
        if self.permanent:  # nothing is retried, so nothing waits
            object.__setattr__(self, "backoff", Backoff.NONE)

    def for_recipient(self, address: str, stage: str | None = None) -> RecipientOutcome:
        return RecipientOutcome(address, self.code, self.text, self.permanent, self.remote,
                                stage if self.remote else None, self.backoff)


@dataclass(frozen=True)
class AttemptResult:
    """One delivery attempt of one message to the recipients of one destination."""

    #: The host we talked to last (``mx1.example.org[192.0.2.1]:25``), or None if none
    #: could be reached.
    host: str | None
    tls: TlsInfo
    outcomes: list[RecipientOutcome] = field(default_factory=list)
    duration: float = 0.0
    #: :attr:`Backoff.SLOW_DOWN` when a reply of this attempt (any host's, any
    #: recipient's) asked us to slow down, or no host would take a connection.
    backoff: Backoff = Backoff.NONE
    #: The TLS policy of the host used or tried last (phigate.mta.delivery.secure.TlsPolicy).
    tls_policy: str | None = None

    @property
    def rate_limited(self) -> bool:
        """The destination asked us to slow down: the throttle should back off."""
        return self.backoff is Backoff.SLOW_DOWN


class DeliveryError(Exception):
    """A local failure with a known outcome (routing, TLS policy); ``str`` is PHI-free."""

    def __init__(self, code: int, text: str, *, permanent: bool) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.permanent = permanent


class NullMxError(DeliveryError):
    """The domain publishes a null MX (RFC 7505): it accepts no mail."""

    def __init__(self, domain: str) -> None:
        super().__init__(556, f"5.1.10 domain {domain} does not accept mail (null MX)",
                         permanent=True)


class TlsPolicyError(DeliveryError):
    """The next hop cannot meet the TLS level the message needs: defer, never downgrade."""

    def __init__(self, text: str) -> None:
        super().__init__(454, f"4.7.5 {text}", permanent=False)


def outcome_for_exception(error: BaseException) -> Failure:
    """Map any failure of a delivery attempt to a :class:`Failure` (the only such mapping).

    SMTP replies keep their code (5xx permanent, anything else temporary). Everything that is
    not a reply (refused or dropped connections, timeouts, TLS handshake errors, DNS
    trouble) is temporary: the next attempt may well succeed.
    """
    if isinstance(error, DeliveryError):
        return Failure(error.code, error.text, error.permanent, backoff=Backoff.OWN_POLICY)
    if isinstance(error, aiosmtplib.SMTPResponseException):
        code = error.code
        text = " ".join(error.message.split())  # multi-line replies on one line
        if 200 <= code < 300 or code < 200 or code >= 600:
            # A success or nonsense code where a failure was raised: treat as temporary.
            return Failure(451, f"4.4.0 unexpected reply {code} {text}".strip(), False)
        return Failure(code, text, permanent=code >= 500, remote=True,
                       backoff=backoff_for_reply(code, text))
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        first = error.recipients[0] if error.recipients else None
        if first is not None:
            return outcome_for_exception(first)
    if isinstance(error, ssl.SSLCertVerificationError):
        # Our refusal to go on with a certificate the policy does not accept.
        return Failure(454, f"4.7.5 TLS certificate not verified: {error.verify_message}",
                       False, backoff=Backoff.OWN_POLICY)
    if isinstance(error, ssl.SSLError):
        return Failure(454, f"4.7.0 TLS handshake failed: {error.reason or 'error'}", False)
    if isinstance(error, TimeoutError | aiosmtplib.SMTPTimeoutError):
        return Failure(451, "4.4.2 connection timed out", False)
    if isinstance(error, aiosmtplib.SMTPServerDisconnected):
        return Failure(451, "4.4.2 connection lost", False)
    if isinstance(error, aiosmtplib.SMTPConnectError | ConnectionError | OSError):
        # A host refusing connections is overloaded or limiting us (Postfix counts it as
        # negative concurrency feedback); other socket errors are this attempt's trouble.
        refused = isinstance(error, ConnectionRefusedError) or isinstance(
            error.__cause__, ConnectionRefusedError)
        return Failure(451, f"4.4.1 connection failed: {_os_reason(error)}", False,
                       backoff=Backoff.SLOW_DOWN if refused else Backoff.RETRY)
    if isinstance(error, aiosmtplib.SMTPException):
        return Failure(451, f"4.4.0 SMTP error: {type(error).__name__}", False)
    # Our own bug or something unforeseen: temporary, so the message is retried (and parked
    # by the scheduler if it keeps happening), never bounced because of us.
    return Failure(451, f"4.3.0 local error: {type(error).__name__}", False)


def _os_reason(error: BaseException) -> str:
    cause = error.__cause__ if isinstance(error.__cause__, OSError) else error
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    return type(cause).__name__


def enhanced_status(code: int, text: str) -> str:
    match = _ENHANCED_STATUS.match(text)
    if match and match.group(1) == str(code)[0]:
        return ".".join(match.groups())
    return f"{str(code)[0]}.0.0" if code >= 400 else "2.0.0"


def backoff_for_reply(code: int, text: str) -> Backoff:
    """What a remote server's reply asks of the destination (see :class:`Backoff`).

    421 (the server closes the connection: too busy, too many connections) and a 4.7.x
    deferral about rate or too many connections/messages slow the destination. Any other
    4xx, "450 4.2.0 greylisted" and "451 4.7.1 try again later" alike, defers only the
    recipients it was given for.
    """
    if code < 400 or code >= 500:
        return Backoff.NONE
    if code == 421:
        return Backoff.SLOW_DOWN
    if enhanced_status(code, text).startswith("4.7.") and _SLOW_DOWN_WORDS.search(text):
        return Backoff.SLOW_DOWN
    return Backoff.RETRY
