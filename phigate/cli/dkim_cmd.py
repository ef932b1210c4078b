"""``phigate dkim keygen``: create a DKIM key and print the DNS record to publish (the
rollover commands are in :mod:`phigate.cli.dkim_rotate`)."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from phigate.cli.context import CliContext, SubParsers
from phigate.errors import UserError

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.IGNORECASE)
_TXT_CHUNK = 255  # one DNS character-string holds at most 255 bytes


def register(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser("dkim", help="DKIM keys",
                                   description="Manage DKIM signing keys.")
    commands = parser.add_subparsers(dest="dkim_command", metavar="COMMAND", required=True)
    keygen = commands.add_parser(
        "keygen", help="create a signing key and print its DNS TXT record",
        description="Create a DKIM signing key (file mode 0600, never overwritten) and print "
                    "the TXT record to publish at SELECTOR._domainkey.DOMAIN.")
    keygen.add_argument("--domain", required=True, help="signing domain (d=)")
    keygen.add_argument("--selector", required=True, help="selector (s=)")
    keygen.add_argument("--type", choices=("rsa", "ed25519"), default="rsa",
                        help="rsa (2048-bit, default) or ed25519")
    keygen.add_argument("--out", type=Path,
                        help="key file to write (default: SELECTOR.DOMAIN.TYPE.key here)")
    keygen.set_defaults(handler=run_keygen)
    from phigate.cli.dkim_rotate import register_rotation

    register_rotation(commands)


def run_keygen(args: argparse.Namespace, ctx: CliContext) -> int:
    from phigate.mta.delivery.dkim import dns_record, generate_key

    domain = args.domain.strip().rstrip(".").lower()
    selector = args.selector.strip().lower()
    if not domain or not all(_LABEL.match(label) for label in domain.split(".")):
        raise UserError(f"--domain: not a domain name: {args.domain!r}")
    if not all(_LABEL.match(label) for label in selector.split(".")):
        raise UserError(f"--selector: not a valid selector: {args.selector!r}")
    out: Path = args.out or Path(f"{selector}.{domain}.{args.type}.key")
    key = generate_key(args.type)
    _write_new_secret(out, key)
    name = f"{selector}._domainkey.{domain}"
    value = dns_record(key, args.type)
    chunks = " ".join(f'"{value[i:i + _TXT_CHUNK]}"' for i in range(0, len(value), _TXT_CHUNK))
    print(f"wrote {args.type} DKIM private key to {out} (mode 0600)")
    print("publish this DNS TXT record:")
    print(f"name:  {name}")
    print(f"value: {value}")
    print(f"zone:  {name}. IN TXT ( {chunks} )")
    return 0


def _write_new_secret(path: Path, content: bytes) -> None:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UserError(f"{path}: already exists; not overwriting a key") from None
    except FileNotFoundError:
        raise UserError(f"{path}: directory does not exist") from None
    except PermissionError:
        raise UserError(f"{path}: cannot create (permission denied)") from None
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(content)
