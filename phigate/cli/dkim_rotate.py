"""``phigate dkim rotate|activate|retire|status``: DKIM key rollover with two selectors.

1. ``rotate --domain D`` writes a new key under a new selector and prints its TXT record;
   the old key keeps signing.
2. ``activate --domain D`` signs with the new key once DNS serves its record (the check of
   ``check-config --dns``), or at once with ``--force``; the old key starts retiring.
3. ``retire --domain D`` drops the old key after ``[dkim] retire_after_days`` (its record can
   then be removed).

Every step is audited. A running delivery follows within a minute, and signs with both keys
until ``retire_after_days`` have passed (:mod:`phigate.mta.delivery.dkim_keyring`).
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from phigate.checks.dns_checks import published_key_matches
from phigate.checks.lookup import Dns, LookupFailed
from phigate.cli.context import CliContext
from phigate.cli.policy_common import acting_admin
from phigate.errors import UserError
from phigate.mta.delivery.dkim import dns_record, generate_key
from phigate.mta.delivery.dkim_rotation import (
    DkimKey,
    RotationState,
    iso,
    load_state,
    save_state,
)
from phigate.runtime import Runtime


def register_rotation(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rotate = commands.add_parser("rotate", help="start a rollover: new key, new selector")
    rotate.add_argument("--domain", required=True)
    rotate.add_argument("--selector", help="new selector (default: phigateYYYYMMDD)")
    rotate.set_defaults(handler=run_rotate)
    activate = commands.add_parser("activate", help="sign with the new key once DNS serves it")
    activate.add_argument("--domain", required=True)
    activate.add_argument("--force", action="store_true", help="without the DNS check")
    activate.set_defaults(handler=run_activate)
    retire = commands.add_parser("retire", help="drop the old key after retire_after_days")
    retire.add_argument("--domain", required=True)
    retire.add_argument("--force", action="store_true", help="before retire_after_days")
    retire.set_defaults(handler=run_retire)
    status = commands.add_parser("status", help="the active, pending and retiring keys")
    status.set_defaults(handler=run_status)


def _current(runtime: Runtime, state: RotationState) -> DkimKey:
    if state.active is not None:
        return state.active
    dkim = runtime.settings.dkim
    if not dkim.key_file or not dkim.selector:
        raise UserError("[dkim] key_file and selector are not set: nothing to rotate")
    return DkimKey(dkim.selector, dkim.key_file, since="configured")


def _check_domain(runtime: Runtime, domain: str) -> str:
    domain = domain.strip().rstrip(".").lower()
    signed = runtime.settings.dkim.domains or [runtime.settings.server.domain]
    if domain not in signed:
        raise UserError(f"--domain: phigate signs for {', '.join(signed)}, not {domain}")
    return domain


def run_rotate(args: argparse.Namespace, ctx: CliContext) -> int:
    with Runtime.open(ctx.settings()) as runtime:
        domain = _check_domain(runtime, args.domain)
        actor = acting_admin(runtime, "dkim rotate")
        state = load_state(runtime.engine)
        if state.pending is not None:
            raise UserError(f"a rollover to selector {state.pending.selector} is under way: "
                            "`phigate dkim activate` it first")
        current = _current(runtime, state)
        now = datetime.now(UTC)
        selector = (args.selector or f"phigate{now:%Y%m%d}").strip().lower()
        if selector in (current.selector, state.retiring.selector if state.retiring else ""):
            raise UserError(f"--selector: {selector} is in use; choose another")
        key_file = Path(current.key_file).parent / f"{selector}.key"
        _write_new_key(key_file)
        new = DkimKey(selector, str(key_file), since=iso(now))
        with runtime.store.writing() as session:
            save_state(session, RotationState(state.active, new, state.retiring))
            runtime.audit.record(actor, "dkim.rotate", session=session, detail={
                "domain": domain, "selector": selector, "previous": current.selector})
        record = dns_record(key_file.read_bytes())
    print(f"wrote a new DKIM key for selector {selector}: {key_file}")
    print("publish this record, then run `phigate dkim activate --domain "
          f"{domain}`:\n  {selector}._domainkey.{domain}. TXT \"{record}\"")
    return 0


def _write_new_key(path: Path) -> None:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UserError(f"{path}: already exists; not overwriting a key") from None
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(generate_key("rsa"))


def run_activate(args: argparse.Namespace, ctx: CliContext) -> int:
    with Runtime.open(ctx.settings()) as runtime:
        domain = _check_domain(runtime, args.domain)
        actor = acting_admin(runtime, "dkim activate")
        state = load_state(runtime.engine)
        if state.pending is None:
            raise UserError("no rollover under way: start one with `phigate dkim rotate`")
        new = state.pending
        served = _served(runtime, new, domain)
        if not served and not args.force:
            raise UserError(f"DNS does not serve the key of {new.selector}._domainkey.{domain} "
                            "yet; publish it and retry, or use --force")
        now = datetime.now(UTC)
        days = runtime.settings.dkim.retire_after_days
        old = _current(runtime, state)
        retiring = DkimKey(old.selector, old.key_file, since=iso(now),
                           retire_at=iso(now + timedelta(days=days)))
        with runtime.store.writing() as session:
            save_state(session, RotationState(DkimKey(new.selector, new.key_file, iso(now)),
                                              None, retiring))
            runtime.audit.record(actor, "dkim.activate", session=session, detail={
                "domain": domain, "selector": new.selector, "dns_served": served,
                "forced": bool(args.force), "retiring": old.selector})
    print(f"phigate: signing with selector {new.selector} from delivery's next start; "
          f"{old.selector} retires after {retiring.retire_at} (`phigate dkim retire`)")
    return 0


def _served(runtime: Runtime, key: DkimKey, domain: str) -> bool:
    settings = runtime.settings
    dns = Dns(settings.delivery.dns_servers, timeout=settings.policy.dns_timeout_seconds)
    try:
        ours = dns_record(Path(key.key_file).read_bytes())
        return published_key_matches(dns, key.selector, domain, ours) is True
    except LookupFailed:
        return False


def run_retire(args: argparse.Namespace, ctx: CliContext) -> int:
    with Runtime.open(ctx.settings()) as runtime:
        domain = _check_domain(runtime, args.domain)
        actor = acting_admin(runtime, "dkim retire")
        state = load_state(runtime.engine)
        old = state.retiring
        if old is None or old.retire_at is None:
            raise UserError("no key is retiring")
        if datetime.fromisoformat(old.retire_at) > datetime.now(UTC) and not args.force:
            raise UserError(f"{old.selector} retires after {old.retire_at} "
                            "([dkim] retire_after_days); use --force to retire it now")
        with runtime.store.writing() as session:
            save_state(session, RotationState(state.active, state.pending, None))
            runtime.audit.record(actor, "dkim.retire", session=session, detail={
                "domain": domain, "selector": old.selector, "forced": bool(args.force)})
    print(f"phigate: retired selector {old.selector}; remove its record "
          f"{old.selector}._domainkey.{domain} and the key file {old.key_file}")
    return 0


def run_status(args: argparse.Namespace, ctx: CliContext) -> int:
    with Runtime.open(ctx.settings()) as runtime:
        state = load_state(runtime.engine)
        active = _current(runtime, state)
    print(f"active    {active.selector}  {active.key_file}  (since {active.since})")
    for role, key in (("pending", state.pending), ("retiring", state.retiring)):
        if key is not None:
            until = f", retire after {key.retire_at}" if key.retire_at else ""
            print(f"{role:<9} {key.selector}  {key.key_file}  (since {key.since}{until})")
    return 0
