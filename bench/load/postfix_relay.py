"""A throwaway Postfix instance on loopback, relaying everything to one sink.

Follows the recipe in FACTS.md ("Postfix as a comparison relay"): its own config
directory, queue and data directories, a log file instead of syslog, chroot off, a
STARTTLS-only listener, relaying for 127.0.0.0/8 (no SASL: see RESULTS.md for why).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {root}/log/maillog
maillog_file_prefixes = /var, /dev/stdout, {root}/log
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = postfix-bench.practice.test
mydomain = practice.test
myorigin = practice.test
mynetworks = 127.0.0.0/8
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 local delivery disabled
alias_maps =
alias_database =
relayhost = [127.0.0.1]:{sink_port}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = encrypt
smtpd_tls_protocols = >=TLSv1.2
smtp_tls_security_level = encrypt
message_size_limit = 26214400
default_process_limit = 100
smtp_destination_concurrency_limit = 20
default_destination_concurrency_limit = 20
"""

# master.cf: the services a relay needs, chroot off (column 5 = n).
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


@dataclass
class PostfixRelay:
    root: Path
    port: int
    sink_port: int
    cert: Path
    key: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    def _postfix(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["postfix", "-c", str(self.config_dir), *argv],
                              capture_output=True, text=True)

    def start(self) -> None:
        for name in ("etc", "queue", "data", "log"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        # The postfix user must reach its directories (mkdtemp makes 0700 ones).
        for directory in (self.root.parent, self.root):
            directory.chmod(0o755)
        # Postfix insists on owning its queue and data directories.
        shutil.chown(self.root / "data", "postfix")
        fields = {"root": self.root, "sink_port": self.sink_port, "cert": self.cert,
                  "key": self.key, "port": self.port}
        (self.config_dir / "main.cf").write_text(MAIN_CF.format(**fields))
        (self.config_dir / "master.cf").write_text(MASTER_CF.format(**fields))
        self._postfix("set-permissions")
        started = self._postfix("start")
        if started.returncode != 0:
            raise RuntimeError(f"postfix start failed: {started.stderr.strip()}\n"
                               f"{self.log_tail()}")
        deadline = time.monotonic() + 15
        while self.master_pid() is None and time.monotonic() < deadline:
            time.sleep(0.1)

    def master_pid(self) -> int | None:
        pid_file = self.root / "queue" / "pid" / "master.pid"
        try:
            return int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def queue_size(self) -> int:
        listing = subprocess.run(["postqueue", "-c", str(self.config_dir), "-j"],
                                 capture_output=True, text=True)
        return len([line for line in listing.stdout.splitlines() if line.strip()])

    def stop(self) -> None:
        self._postfix("stop")
        deadline = time.monotonic() + 15
        while self.master_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.root / "log" / "maillog").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def errors_in_log(self) -> list[str]:
        try:
            text = (self.root / "log" / "maillog").read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines()
                if re.search(r"\b(fatal|panic|error)\b", line)][:10]
