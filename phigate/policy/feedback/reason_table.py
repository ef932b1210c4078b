"""The reason table: phrases, enhanced status codes and pseudo statuses per bounce reason.

Our own table, written from the published meaning of each sisimai reason, RFC 3463 and the
IANA enhanced status code registry, and the wording mail systems typically use.
"""

from __future__ import annotations

import re

from phigate.policy.feedback.reason_names import BounceReason

_R = BounceReason


def phrases(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{pattern})" for pattern in patterns))


# Three tiers. Decisive phrases (a blocklist, a failed SPF check, a missing PTR, a null MX,
# a spam verdict) win wherever they are (the first in the text): "550 5.7.1 Service
# unavailable; client host blocked using a DNSBL" is a blocklisting, not an unavailable
# service. Then specific phrases: the one that comes first in the text wins. Then vague
# ones ("service unavailable", "policy", "timed out"), again the first in the text.
DECISIVE_COUNT = 11  # the first eleven rules below
VAGUE = frozenset({_R.EXPIRED, _R.FILTERED, _R.CONTENTERROR,
                    _R.SYSTEMERROR, _R.SYNTAXERROR})
TEXT_RULES: tuple[tuple[BounceReason, re.Pattern[str]], ...] = (
    (_R.REQUIREPTR, phrases(
        r"reverse dns", r"\bptr\b", r"\brdns\b", r"reverse (lookup|hostname|mapping)",
        r"cannot find your (host ?name|reverse)", r"no reverse",
        r"(ip|address) (has|have) no (host ?name|name)", r"hostname (is )?not resolv",
        r"mismatches client ip", r"generic (dns|rdns|ptr)", r"ip name lookup failed",
        r"forward dns .{0,40}(sending ip|does not point)", r"unresolvable relay host",
        r"unverifi?able sending ips?")),
    (_R.BADREPUTATION, phrases(
        r"reputation", r"unusual rate of unsolicited", r"low sender score",
        r"unexpected volume", r"user complaints")),
    (_R.AUTHFAILURE, phrases(
        r"spf (check )?(fail|validation|error|record)", r"(fail(ed|s)?|did not pass|"
        r"does not pass|doesn'?t pass) "
        r"(the )?(spf|dkim|dmarc)", r"dkim (signature )?(fail|invalid|verification|check)",
        r"dmarc (policy|fail|check|reject)", r"sender policy framework",
        r"unauthenticated (e-?mail|mail|message)", r"fails? to pass authentication",
        r"authentication (check|checks) failed", r"not authenticated by",
        r"(spf|dkim|dmarc)[ :=]+(fail|hardfail|softfail|reject)",
        r"(spf|dkim|dmarc) (check|test|verification|validation)[ :=]+(fail|hardfail|reject)",
        r"spf (settings|policy)", r"per (it'?s|its|the) spf", r"spf\.",
        r"(sender|message|mail) (is )?unauthenticated",
        r"authenticate (with|using) (either )?(spf|dkim|dmarc)")),
    # an address (ours) or a link in the message on a list is not our IP on a blocklist
    (_R.REJECTED, phrases(
        r"(sender|from|envelope|your) (e-?mail )?address .{0,30}(black|block) ?list",
        r"sender (is )?(in .{0,20})?(black|block) ?list", r"address that has been (black|"
        r"block) ?listed")),
    (_R.SPAMDETECTED, phrases(
        r"\buribl\b", r"\bsurbl\b", r"(url|link|domain)s? in (the |your )?message",
        r"sender domain listed")),
    (_R.BLOCKED, phrases(
        r"dnsbl", r"\brbl\b", r"spamhaus", r"spamcop", r"\bsorbs\b", r"barracudacentral",
        r"blocked using", r"(?<!not )listed (in|on|at|by) ", r"black ?list", r"block ?list",
        r"blacklisted", r"client host .{0,60}(blocked|rejected|refused|denied)",
        r"(your|sending|sender|source|client|connecting) ip( address)? .{0,60}"
        r"(blocked|listed|rejected|banned|refused|denied|not allowed)",
        r"ip( address)? .{0,40}(is|has been|was) (blocked|blacklisted|banned|listed)",
        r"messages from \d+\.\d+\.\d+\.\d+ weren't sent", r"banned sending ip",
        r"invalid ip", r"(host|ip|connection|access) (is |has been )?(blocked|banned)",
        r"helo command rejected", r"(invalid|bad) (helo|ehlo)", r"your host ?name",
        r"connection (refused|rejected|denied) (by|from|due)",
        r"not allowed to (connect|send from)", r"refused to talk to me",
        r"connection (was )?(dropped|reset)", r"dropped by (the )?remote host",
        r"(dynamic|residential|dial-?up|zombie\w*)[ /]ips?\b", r"hosts? with dynamic ip",
        r"not (currently )?accepting (mail|connections) from (your|this) ip",
        r"not accepting connections", r"ip profile",
        r"(host|network) (network )?(is )?not allowed", r"not allowed to send (mail )?from",
        r"(access|connections?) from (your |the )?(ip|mail server|host)",
        r"forbidden by your ip", r"smtp server of your (isp|provider)", r"open proxy",
        r"closing transmission channel", r"(you are|currently) sending spam",
        r"(spams?|unwanted messages) (have been )?(sent )?from (your|the following|this) ip",
        r"\b(blocked|refused) - see\b", r"(^|\s)[45]\d\d[ -]blocked\b",
        r"listed as (abusive|spam)",
        # refused because we sent to many bad addresses, or over IPv6: our sending, not
        # the address ("too many invalid recipients" names no recipient's fault)
        r"too many (invalid|unknown|bad|non-?existent) (recipients|addresses|users)",
        r"(does not|do not|doesn't|don't|cannot|can't|will not|won't) accept .{0,30}"
        r"(over|via) ipv6",
        r"ipv6 (is )?not (supported|allowed|accepted)",
        r"(mail )?server at .{0,40}(is )?blocked", r"service refused", r"blocked for abuse",
        # a blocklist in other languages (accents are dropped before matching)
        r"liste noire", r"lista (negra|nera)", r"schwarze(n)? liste", r"sperrliste",
        r"zwarte lijst", r"svartelist", r"\b(ip|adresse ip|direccion ip|indirizzo ip|"
        r"endereco ip|ip-adresse) .{0,40}(gesperrt|bloquee?|bloqueada|bloccato|bloqueado)",
        r"not accepted from (this|your|the sending) ip")),
    (_R.NOTCOMPLIANTRFC, phrases(
        r"rfc ?(5322|2822|5321)", r"not (rfc|standards?)[- ]compliant",
        r"not compliant with", r"duplicate header", r"multiple (addresses|.{0,20}headers)",
        r"bare (lf|line ?feed|cr)")),
    (_R.NOTACCEPT, phrases(
        r"null mx", r"does not accept (any )?(e-?mail|mail|messages)",
        r"not accepting (any )?(e-?mail|mail|messages)(?! with)", r"accepts no (e-?mail|mail)",
        r"receiving (is )?disabled",
        r"no mail service", r"domain does not receive mail", r"no mx (record )?found",
        r"indicated no smtp service")),
    # the domain (not the user) could not be found: a DNS answer, which may yet change; it
    # outweighs a summary title naming the address ("Address not found") beside it
    (_R.NETWORKERROR, phrases(
        r"\bdomain .{0,60}(couldn'?t|could not|cannot|can'?t) be (found|resolved)")),
    (_R.POLICYVIOLATION, phrases(r"for policy reasons", r"policy violation",
                                  r"violat\w* .{0,20}polic")),
    (_R.SPAMDETECTED, phrases(
        r"(rejected|refused|blocked) (due to|as|because of) (being )?spam",
        r"spam classification", r"(classified|scored|detected|identified) as spam",
        r"looks like spam", r"considered (as )?spam")),
    (_R.HASMOVED, phrases(r"\bhas (been )?moved\b", r"address has changed",
                           r"has been replaced by",
                           r"no longer (valid|in use|at this address)",
                           r"no longer on (this |the )?server")),
    (_R.SECURITYERROR, phrases(
        r"authentication (is )?required", r"must (be )?authenticat", r"insecure",
        r"security (policy|violation|error)", r"authentication credentials",
        r"\bsmtp auth", r"unauthenticated senders?", r"authentication (failure|turned on)",
        r"verification failure", r"not authori[sz]ed to perform", r"authentification")),
    (_R.NORELAYING, phrases(
        r"relay(ing)? (access )?(denied|not (permitted|allowed))", r"unable to relay",
        r"not permitted to relay", r"(we )?do not relay", r"no relaying",
        r"relaying (is )?(prohibited|not)", r"configured to relay", r"relay (mail|messages)",
        r"as a relay", r"relay(ing)? (mail )?(to|through)", r"not an open relay",
        r"not a gateway", r"not local host", r"we don'?t handle mail for",
        r"specified domain is not allowed", r"list of allowed rcpthosts?",
        r"when attempting to send to a non-local", r"address is not verified")),
    (_R.SPAMDETECTED, phrases(
        r"spam", r"junk (e-?mail|mail)", r"unsolicited", r"bulk (e-?mail|mail)",
        r"considered (as )?(junk|bulk)", r"content (was )?rejected as", r"\bube\b",
        r"content filter", r"message filtered", r"(blocked|rejected) by (our|the|a) "
        r"(spam |content )?filter", r"(unacceptable|banned) content",
        r"(mail|message) content (denied|rejected)", r"rejecting (mail|banned) content",
        r"bulk.?advertising", r"recurrent pattern", r"detected that this message is")),
    (_R.VIRUSDETECTED, phrases(r"virus", r"malware", r"infected", r"trojan",
                                r"(potentially )?executable attachment")),
    (_R.FAILEDSTARTTLS, phrases(
        r"starttls", r"tls (is |was )?required", r"(must|should) use tls",
        r"encryption (is )?required", r"tls negotiation failed")),
    (_R.TOOMANYCONN, phrases(
        r"too many (connections|concurrent|simultaneous|smtp sessions|sessions|recipients)",
        r"connection (rate )?limit", r"concurrent connections",
        r"max(imum)? (e-?mails|messages) per (hour|day)", r"too many errors from your ip",
        r"trop de connexions")),
    (_R.SPEEDING, phrases(
        r"rate limit", r"too many (messages|emails|mails)", r"at a rate that",
        r"sending rate", r"throttl", r"exceeded .{0,30}rate", r"too fast",
        r"(message|mail) (volume|flood)", r"try again slower", r"slow down")),
    (_R.MESGTOOBIG, phrases(
        r"message (is |was )?too (big|large)", r"message size (exceeds|too|limit)",
        r"exceeds? (the )?(maximum|max|fixed|allowed) (message )?size",
        r"size (exceeds|limit exceeded)", r"file too (big|large)",
        r"(inbound )?message size (exceeded|limit)", r"max(imum)? message size",
        r"\bsize limit\b", r"line limit exceeded", r"taille limite")),
    (_R.EXCEEDLIMIT, phrases(
        r"exceeds? (the )?administrative limit", r"message length exceeds")),
    (_R.MAILBOXFULL, phrases(
        r"mailbox (is )?(full|over|exceeded|size limit)", r"(over|exceeded?)( the)? quota",
        r"quota (exceeded|full|limit)", r"\bquota\b", r"full mailbox",
        r"(mailbox|mail ?box|account|inbox) .{0,30}(is |has )?(full|exceeded)",
        r"insufficient (disk )?(space|storage) (for|in) (the )?(user|mailbox|account)",
        r"too much mail", r"exceeded (storage|its storage)", r"storage (limit|allocation)",
        r"out of (storage|space) (for|in) ",
        r"(insufficient|not enough|not sufficient) (disk |storage )+space",
        r"space has been used up", r"(mail ?)?folder is full", r"no space left on device",
        r"does not have enough space", r"would exceed .{0,40}(storage|quota|size)",
        r"has too many messages", r"boite .{0,40}pleine",
        # the same in other languages (accents are dropped before matching)
        r"(postfach|mailbox|speicher(platz)?) .{0,30}(ist )?(voll|uberfullt)\b",
        r"speicherplatz .{0,30}(erschopft|uberschritten)", r"buzon .{0,30}(lleno|completo)",
        r"casella .{0,30}(piena|satura)", r"caixa .{0,30}(cheia|lotada)",
        r"(postvak|mailbox|brievenbus) .{0,20}\bvol\b")),
    (_R.SUSPEND, phrases(
        r"suspended", r"(account|mailbox|user|address|recipient) .{0,40}"
        r"(disabled|deactivated|inactive|locked|closed|expired|frozen|not active)",
        r"(disabled|inactive|deactivated|suspended) (account|mailbox|user)",
        r"temporarily (disabled|deactivated)", r"temporar(il)?y locked",
        r"archived (recipient|mailbox|account)", r"archivee", r"\bterminated\b",
        r"suspend the service", r"no longer accepts (e-?)?mail",
        r"(konto|postfach|compte|cuenta|conta|casella) .{0,30}(gesperrt|deaktiviert|"
        r"desactivee?|suspendue?|suspendida|desactivada|disattivata|sospesa|desativada)")),
    (_R.POLICYVIOLATION, phrases(
        r"polic(y|ies)", r"prohibited", r"violation", r"attachment", r"executable",
        r"forbidden", r"members-only list", r"closed mailing list",
        r"not subscribed to this (group|list)", r"organi[sz]ational (settings|policy)",
        r"organi[sz]ation policy", r"mass mailer", r"low priority", r"captcha",
        r"headers? (are|is) not accepted", r"content presents a potential",
        r"not accepting mail with")),
    (_R.USERUNKNOWN, phrases(r"recipient address rejected: access denied")),
    (_R.REJECTED, phrases(
        r"sender (e-?mail )?(address |domain )?(rejected|refused|denied|not allowed|blocked|"
        r"invalid)",
        r"(invalid|bad|unknown|unverified) sender", r"sender verif\w* failed",
        r"domain of sender address", r"sender (is )?(not permitted|unknown)",
        r"from address (rejected|not allowed)", r"(envelope|mail) from .{0,40}rejected",
        r"sender .{0,20}(does not exist|not found)", r"send mail as",
        r"all recipient(s| addresses) (were |are )?(rejected|refused|denied)",
        r"recipient addresses rejected", r"\bbatv\b", r"(null|empty|blank) (envelope )?"
        r"senders?", r"bogus mail from", r"third-party dsns", r"unsigned dsn",
        r"administrative prohibition", r"delivery not authori[sz]ed, message refused",
        r"(fully qualified|valid) (e-?mail )?(address|sender domain) (is )?required",
        r"sender domain (is )?(empty|invalid|must exist)", r"unrout\w* sender",
        r"from: domain is invalid", r"emetteur invalide", r"not owned by user",
        r"senders? (is |was )?not (pre-?approved|allowed|authori[sz]ed)",
        r"list of senders", r"sender was rejected", r"returned mail not accepted",
        r"not allowed to post to", r"purported responsible address",
        r"not a registered gateway user",
        r"envelope (sender )?(blocked|rejected)")),
    (_R.NETWORKERROR, phrases(
        r"network (error|is unreachable)", r"no route to host", r"lost connection",
        r"mail (for .{0,60})?loops? back", r"routing loop", r"too many hops", r"mail loop",
        r"dns (error|failure|lookup|problem)", r"name server", r"name service error",
        r"temporary failure in name resolution", r"nxdomain", r"host not found",
        r"dns (query|queries|resolution) (failed|failure)",
        r"host is unreachable", r"(host ?name|dns) lookup fail", r"forwarding loop",
        r"message looping", r"resolve route", r"could not connect and send",
        r"dns records for .{0,40}could not be found")),
    (_R.HOSTUNKNOWN, phrases(
        r"host (or domain name )?unknown", r"unknown (host|domain)", r"invalid domain",
        r"host or domain name not found",
        r"domain (does not exist|doesn't exist|unknown|is not reachable)",
        r"no such domain", r"unrouteable", r"(domain|host) .{0,20}not resolv",
        r"domain must exist", r"name or service not known", r"unrout\w*able address",
        r"\bdomain\b.{0,40}\bis unknown",
        r"\bdomain [a-z0-9][a-z0-9.-]*\.[a-z]{2,} (does not|doesn't) exist",
        r"domain ?non-?existent")),
    (_R.FILTERED, phrases(
        r"filter", r"refused by recipient", r"rejected by (the )?recipient",
        r"recipient preferences",
        r"recipient .{0,40}(refuses|does not accept|not accept) mail from",
        r"blocked by (the )?recipient", r"not authori[sz]ed to (receive|send)",
        r"only accepting mail from", r"bounced address", r"restricted sms",
        r"user rules", r"rst\.notauthorized", r"account is protected",
        r"refuses? to (receive|accept)", r"user reject")),
    (_R.MAILERERROR, phrases(
        r"mailer error", r"program exited", r"exit (code|status)", r"command died",
        r"procmail", r"pipe to", r"\|\| exit\b", r"maildrop", r"command (failed|output)")),
    (_R.USERUNKNOWN, phrases(
        r"user (is )?unknown", r"unknown (user|recipient|local[- ]part|address|mailbox)",
        r"no such (user|mailbox|recipient|address|account|local user|person)",
        r"(recipient|user|mailbox|address|account) (name )?(is )?"
        r"(not found|unknown|invalid|does not exist|doesn't exist|not exist)",
        r"does not exist", r"doesn't exist", r"not a valid (mailbox|user|recipient)",
        r"invalid (recipient|mailbox|user|address)", r"mailbox (is )?unavailable",
        r"mailbox not (available|found)", r"no valid recipients",
        r"address (unknown|not found)",
        r"(is )?not a known user", r"no account", r"bad destination",
        r"undeliverable address", r"user not", r"mailbox .{0,20}does not exist",
        r"no mailbox", r"unknown or illegal alias", r"address .{0,30}not exist",
        r"couldn't be found", r"could not be found", r"doesn't have an? .{0,40}account",
        r"not a registered", r"recipient <address> (was )?not found",
        r"recip(ient)?notfound",  # Exchange's resolver: RESOLVER.ADR.RecipNotFound
        # the same in other languages (accents are dropped before matching)
        r"(benutzer|empfanger|adresse|mailbox|postfach) .{0,20}(ist )?(unbekannt|"
        r"existiert nicht)", r"(utilisateur|destinataire|adresse|boite) .{0,20}(inconnue?|"
        r"n'existe pas)", r"(usuario|destinatario|direccion|buzon) .{0,20}(desconocid[oa]|"
        r"no existe)", r"(utente|destinatario|indirizzo) .{0,20}(sconosciut[oa]|non esiste)",
        r"(usuario|destinatario|endereco) .{0,20}(desconhecid[oa]|nao existe)",
        r"(gebruiker|ontvanger|adres) .{0,20}(onbekend|bestaat niet)")),
    (_R.SYSTEMFULL, phrases(
        r"disk full", r"insufficient system storage", r"mail system full",
        r"out of disk", r"file system full")),
    (_R.EXPIRED, phrases(
        r"expired", r"retry time(out)? (exceeded|not reached)", r"giving up",
        r"could not be delivered (within|for)", r"has not been delivered",
        r"too long (in|on) (the )?queue", r"time ?out exceeded",
        r"(undeliverable|undelivered) for (more than )?\d+ (days|hours)",
        r"delivery time", r"max(imum)? (queue|delivery) time", r"not going to try again",
        r"connection (timed out|refused|reset)", r"timed out", r"could not connect",
        r"unable to connect", r"did not accept our requests to connect",
        r"(wasn't|was not|were not) able to (establish|connect)",
        r"not (been )?delivered within", r"(is|was) not responding", r"did not respond",
        r"no answer from", r"could not find a gateway", r"delivery attempts will continue",
        r"has been delayed", r"failing for a long time", r"not been collected",
        r"queue too long", r"after (multiple|many|several|repeated) (retries|attempts)",
        r"not reachable within", r"failed to deliver to domain")),
    (_R.CONTENTERROR, phrases(
        r"header (is )?(invalid|error|malformed)", r"(invalid|malformed|bad) "
        r"(message )?(header|content|mime)", r"content error", r"message content")),
    (_R.SYSTEMERROR, phrases(
        r"system (error|problem|failure)", r"internal (server )?error", r"server error",
        r"local error", r"configuration (error|problem)", r"misconfigur",
        r"forwarding loop broken", r"can'?t create (user )?output file",
        r"interrupted system call", r"error while being processed", r"no mdb",
        r"config(uration)? error", r"timeout waiting for input",
        r"temporary (local )?(problem|failure)", r"transaction failed",
        r"service (is )?(currently )?unavailable", r"could not load", r"write error",
        r"(i/o|input/output) error")),
    (_R.SYNTAXERROR, phrases(
        r"syntax error", r"(command|syntax|parameter) (unrecognized|not recognized|"
        r"not implemented)", r"unrecognized command", r"bad sequence of commands")),
)


# "550 : User unknown", a reply naming no address (where the address would be), is how some
# large receivers (au/KDDI's ezweb.ne.jp and au.com among them) answer DATA when the
# recipient's own filter refuses the sender: the address was accepted at RCPT. With an
# address ("550 <a@b>: User unknown") it is the plain unknown user.
UNADDRESSED_UNKNOWN = re.compile(r"(?<![\d.])[45]\d\d:?\s+:\s*user unknown")


# Enhanced status (class dropped: "1.1" for 5.1.1 and 4.1.1) -> reason; RFC 3463 + IANA.
STATUS_RULES: dict[str, BounceReason] = {
    "1.0": _R.USERUNKNOWN, "1.1": _R.USERUNKNOWN, "1.3": _R.USERUNKNOWN,
    "1.4": _R.FILTERED, "1.2": _R.HOSTUNKNOWN, "1.6": _R.HASMOVED,
    "1.7": _R.REJECTED, "1.8": _R.REJECTED, "1.10": _R.NOTACCEPT,
    "2.1": _R.SUSPEND, "2.2": _R.MAILBOXFULL, "2.3": _R.EXCEEDLIMIT, "2.4": _R.SYSTEMERROR,
    "3.0": _R.SYSTEMERROR, "3.1": _R.SYSTEMFULL, "3.2": _R.NOTACCEPT, "3.3": _R.SYSTEMERROR,
    "3.4": _R.MESGTOOBIG, "3.5": _R.SYSTEMERROR,
    "4.0": _R.NETWORKERROR, "4.1": _R.EXPIRED, "4.2": _R.NETWORKERROR,
    "4.3": _R.SYSTEMERROR, "4.4": _R.NETWORKERROR, "4.5": _R.TOOMANYCONN,
    "4.6": _R.NETWORKERROR, "4.7": _R.EXPIRED,
    "5.0": _R.SYNTAXERROR, "5.1": _R.SYNTAXERROR, "5.2": _R.SYNTAXERROR,
    "5.3": _R.EXCEEDLIMIT, "5.4": _R.SYNTAXERROR, "5.5": _R.SYNTAXERROR,
    "6.0": _R.CONTENTERROR, "6.1": _R.CONTENTERROR, "6.2": _R.CONTENTERROR,
    "6.3": _R.CONTENTERROR, "6.4": _R.CONTENTERROR, "6.5": _R.CONTENTERROR,
    "6.6": _R.CONTENTERROR, "6.7": _R.CONTENTERROR, "6.8": _R.CONTENTERROR,
    "7.0": _R.SECURITYERROR, "7.1": _R.SECURITYERROR, "7.2": _R.POLICYVIOLATION,
    "7.3": _R.SECURITYERROR, "7.4": _R.SECURITYERROR, "7.5": _R.SECURITYERROR,
    "7.6": _R.SECURITYERROR, "7.7": _R.SECURITYERROR, "7.8": _R.SECURITYERROR,
    "7.9": _R.SECURITYERROR, "7.10": _R.FAILEDSTARTTLS, "7.11": _R.FAILEDSTARTTLS,
    "7.12": _R.SECURITYERROR, "7.13": _R.SUSPEND, "7.14": _R.SECURITYERROR,
    "7.15": _R.POLICYVIOLATION, "7.16": _R.MESGTOOBIG, "7.17": _R.HASMOVED,
    "7.18": _R.HASMOVED, "7.19": _R.HASMOVED, "7.20": _R.AUTHFAILURE,
    "7.21": _R.AUTHFAILURE, "7.22": _R.AUTHFAILURE, "7.23": _R.AUTHFAILURE,
    "7.24": _R.AUTHFAILURE, "7.25": _R.REQUIREPTR, "7.26": _R.AUTHFAILURE,
    "7.27": _R.REJECTED, "7.28": _R.SPEEDING, "7.29": _R.AUTHFAILURE,
    "7.30": _R.FAILEDSTARTTLS,
}

# Where the class changes the meaning. RFC 3463 X.4.4 "unable to route": the directory
# (DNS) has no routing information for the domain; permanent (5.4.4), the domain has no
# mail host at all, a bad address like 5.1.2; persistent transient (4.4.4), a DNS trouble.
PERMANENT_STATUS_RULES: dict[str, BounceReason] = {"4.4": _R.HOSTUNKNOWN}

# "No status given": the pseudo status X.0.9NN for a reason (sisimai's documented convention).
PSEUDO: dict[BounceReason, int] = {
    _R.UNDEFINED: 900, _R.ONHOLD: 901, _R.SYNTAXERROR: 902, _R.NORELAYING: 909,
    _R.FILTERED: 910, _R.USERUNKNOWN: 911, _R.HOSTUNKNOWN: 912, _R.HASMOVED: 916,
    _R.REJECTED: 918, _R.SUSPEND: 921, _R.MAILBOXFULL: 922, _R.EXCEEDLIMIT: 923,
    _R.SYSTEMERROR: 930, _R.SYSTEMFULL: 931, _R.NOTACCEPT: 932, _R.MESGTOOBIG: 934,
    _R.MAILERERROR: 939, _R.NETWORKERROR: 944, _R.TOOMANYCONN: 945, _R.SPEEDING: 946,
    _R.EXPIRED: 947, _R.CONTENTERROR: 960, _R.NOTCOMPLIANTRFC: 961, _R.SECURITYERROR: 970,
    _R.BLOCKED: 971, _R.POLICYVIOLATION: 972, _R.REQUIREPTR: 973, _R.AUTHFAILURE: 974,
    _R.BADREPUTATION: 975, _R.FAILEDSTARTTLS: 976, _R.SPAMDETECTED: 980,
    _R.VIRUSDETECTED: 980,
}

# Weak words for a refusal of our host, read with the vague tier: any more specific reason
# in the text comes first ("was blocked by our spam filter" is a spam verdict).
WEAK_RULES: tuple[tuple[BounceReason, re.Pattern[str]], ...] = (
    (_R.BLOCKED, phrases(r"\bwas blocked by\b", r"requires? confirmation", r"\bgo away\b")),
    # RFC 3464 diagnostic type "x-unix": a local delivery program answered (bounce.py adds
    # "[x-unix;]" to the evidence); its own words, if telling, come first
    (_R.MAILERERROR, phrases(r"\[x-unix;\]")),
)
