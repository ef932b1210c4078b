"""The shipped systemd units: valid for systemd-analyze, hardened, consistent about credentials."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD_DIR = Path(__file__).resolve().parents[2] / "systemd"
UNITS = sorted(p for p in SYSTEMD_DIR.iterdir() if p.suffix in (".service", ".timer", ".target"))
SERVICES = [p for p in UNITS if p.suffix == ".service"]
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
PHIGATE = "/usr/bin/phigate --config /etc/phigate/phigate.toml"

needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed"
)


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(map(str, args)), cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.fixture
def verifiable_units(tmp_path: Path) -> Path:
    """Copies of the units whose ExecStart points at an executable that exists here.

    ``systemd-analyze verify`` refuses a unit whose ExecStart binary is missing, and on a
    test machine phigate is not installed as /usr/bin/phigate. We verify copies with only
    that path rewritten: to this virtualenv's ``phigate`` console script when present.
    """
    installed = Path(sys.executable).with_name("phigate")
    executable = installed if installed.exists() else Path(shutil.which("true") or "/bin/true")
    for unit in UNITS:
        text = unit.read_text().replace("/usr/bin/phigate", str(executable))
        (tmp_path / unit.name).write_text(text)
    return tmp_path


def directives(unit: Path) -> list[tuple[str, str]]:
    """(key, value) pairs in order; systemd allows a key more than once, so no dict."""
    pairs = []
    for line in unit.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


def values(unit: Path, key: str) -> list[str]:
    return [value for k, value in directives(unit) if k == key]


def test_the_expected_units_are_shipped() -> None:
    names = {unit.name for unit in UNITS}
    assert {"phigate.service", "phigate-smtp.service", "phigate-delivery.service",
            "phigate-http.service", "phigate-purge.service", "phigate-purge.timer",
            "phigate.target"} <= names


@needs_systemd_analyze
def test_systemd_analyze_verify_passes(verifiable_units: Path) -> None:
    units = sorted(p.name for p in verifiable_units.iterdir())
    result = run(SYSTEMD_ANALYZE or "", "verify", *[f"./{name}" for name in units],
                 cwd=verifiable_units)
    # verify exits 0 on unknown keys and only warns: any output at all is a finding.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


@needs_systemd_analyze
def test_verify_would_catch_a_typo(verifiable_units: Path) -> None:
    unit = verifiable_units / "phigate.service"
    unit.write_text(unit.read_text().replace("ProtectHome=yes", "ProtectHomes=yes"))
    result = run(SYSTEMD_ANALYZE or "", "verify", "./phigate.service", cwd=verifiable_units)
    assert "Unknown key" in result.stdout + result.stderr


@needs_systemd_analyze
@pytest.mark.parametrize("service", SERVICES, ids=lambda p: p.name)
def test_security_exposure_at_most_2(service: Path, verifiable_units: Path) -> None:
    result = run(SYSTEMD_ANALYZE or "", "security", "--offline=yes", f"./{service.name}",
                 cwd=verifiable_units)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


def test_main_service_shape() -> None:
    unit = SYSTEMD_DIR / "phigate.service"
    assert values(unit, "Type") == ["notify"]
    assert values(unit, "ExecStart") == [f"{PHIGATE} serve"]
    assert values(unit, "WatchdogSec") and values(unit, "User") == ["phigate"]
    assert values(unit, "StateDirectory") == ["phigate"]
    assert values(unit, "ConfigurationDirectory") == ["phigate"]
    assert values(unit, "CapabilityBoundingSet") == ["CAP_NET_BIND_SERVICE"]
    assert values(unit, "AmbientCapabilities") == ["CAP_NET_BIND_SERVICE"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices",
                "MemoryDenyWriteExecute", "LockPersonality", "RestrictNamespaces"):
        assert values(unit, key) == ["yes"], key
    assert values(unit, "ProtectSystem") == ["strict"]
    assert values(unit, "RestrictAddressFamilies") == ["AF_INET AF_INET6 AF_UNIX"]
    assert "@system-service" in values(unit, "SystemCallFilter")


@pytest.mark.parametrize("role", ["smtp", "delivery", "http"])
def test_role_units_run_their_role(role: str) -> None:
    unit = SYSTEMD_DIR / f"phigate-{role}.service"
    (exec_start,) = values(unit, "ExecStart")
    command, _, roles = exec_start.partition(" --role ")
    assert command == f"{PHIGATE} serve"
    assert role in roles.split(",")
    if roles != role:
        # A role that also serves HTTP (for its own /metrics) must not take the shared port.
        assert roles.split(",") == [role, "http"]
        assert any(v.startswith("PHIGATE_HTTP__LISTEN=127.0.0.1:")
                   for v in values(unit, "Environment"))
    assert values(unit, "Type") == ["notify"]
    assert "phigate.service" in values(unit, "Conflicts")
    # A role unit is one process: its http role only serves its own /metrics.
    if "delivery" in roles.split(",") and roles != "delivery":
        assert "PHIGATE_DELIVERY__SEPARATE_PROCESS=false" in values(unit, "Environment")


@pytest.mark.parametrize("service", SERVICES, ids=lambda p: p.name)
def test_credentials_and_settings_agree(service: Path) -> None:
    """Every loaded credential is used by a setting, and every %d/ path is loaded."""
    loaded = {value.split(":", 1)[0] for value in values(service, "LoadCredential")}
    used = {m for value in values(service, "Environment")
            for m in re.findall(r"%d/([\w.-]+)", value)}
    assert loaded == used
    for value in values(service, "LoadCredential"):
        assert value.split(":", 1)[1].startswith("/etc/phigate/credentials/")
    if service.name == "phigate-purge.service":
        assert loaded == {"master.key"}
    else:
        # serve validates every key file of the configuration, whatever its roles.
        assert loaded == {"master.key", "dkim.key", "tls-cert.pem", "tls-key.pem", "token.key"}


def test_only_listening_roles_may_bind_privileged_ports() -> None:
    for service in SERVICES:
        caps = values(service, "CapabilityBoundingSet")
        if service.name in ("phigate.service", "phigate-smtp.service"):
            assert caps == ["CAP_NET_BIND_SERVICE"]
        else:
            assert caps == [""], service.name
            assert not values(service, "AmbientCapabilities")


def test_purge_timer_starts_the_purge_service() -> None:
    timer = SYSTEMD_DIR / "phigate-purge.timer"
    assert values(timer, "OnCalendar") and values(timer, "Persistent") == ["yes"]
    purge = SYSTEMD_DIR / "phigate-purge.service"
    assert values(purge, "ExecStart") == [f"{PHIGATE} purge"]
    assert values(purge, "Type") == ["oneshot"]


@pytest.mark.skipif(not shutil.which("systemd-sysusers") or not shutil.which("systemd-tmpfiles"),
                    reason="systemd-sysusers/systemd-tmpfiles not installed")
def test_sysusers_and_tmpfiles_in_a_scratch_root(tmp_path: Path) -> None:
    for kind in ("sysusers.d", "tmpfiles.d"):
        target = tmp_path / "usr/lib" / kind
        target.mkdir(parents=True)
        shutil.copy(SYSTEMD_DIR / kind / "phigate.conf", target)
    (tmp_path / "etc").mkdir()
    result = run("systemd-sysusers", f"--root={tmp_path}")
    assert result.returncode == 0, result.stderr
    passwd = (tmp_path / "etc/passwd").read_text()
    line = next(line for line in passwd.splitlines() if line.startswith("phigate:"))
    uid = int(line.split(":")[2])
    assert line.endswith(":/var/lib/phigate:/usr/sbin/nologin")

    result = run("systemd-tmpfiles", f"--root={tmp_path}", "--create")
    assert result.returncode == 0, result.stderr
    credentials = (tmp_path / "etc/phigate/credentials").stat()
    assert credentials.st_mode & 0o777 == 0o700 and credentials.st_uid == 0
    state = (tmp_path / "var/lib/phigate").stat()
    assert state.st_mode & 0o777 == 0o750 and state.st_uid == uid


def test_unit_environment_points_phigate_at_its_credentials(tmp_path: Path) -> None:
    """What phigate.service sets up, reproduced: keys only in the credentials directory.

    ``phigate init`` writes an installation; its key files are then moved into a stand-in for
    $CREDENTIALS_DIRECTORY under the unit's credential names, so the paths in phigate.toml
    point at nothing. ``check-config`` passes only if the unit's Environment= lines (with %d
    expanded) lead phigate's settings to every file.
    """
    phigate = Path(sys.executable).with_name("phigate")
    if not phigate.exists():
        pytest.skip("phigate console script not installed in this environment")
    base = tmp_path / "inst"
    init = run(phigate, "init", "--dir", base, "--domain", "example.org")
    assert init.returncode == 0, init.stderr
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    sources = {"master.key": base / "keys/master.key", "token.key": base / "keys/token.key",
               "tls-cert.pem": base / "tls/cert.pem", "tls-key.pem": base / "tls/key.pem",
               "dkim.key": next((base / "dkim").glob("*.key"))}
    unit = SYSTEMD_DIR / "phigate.service"
    assert {v.split(":", 1)[0] for v in values(unit, "LoadCredential")} == set(sources)
    for name, source in sources.items():
        source.rename(credentials / name)

    env = {"PATH": "/usr/bin:/bin"}
    for value in values(unit, "Environment"):
        key, _, setting = value.partition("=")
        env[key] = setting.replace("%d", str(credentials))
    config = base / "phigate.toml"
    result = subprocess.run([str(phigate), "--config", str(config), "check-config"], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    # Without the unit's environment the same configuration is missing its keys.
    bare = subprocess.run([str(phigate), "--config", str(config), "check-config"],
                          env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=120, check=False)
    assert bare.returncode != 0


def test_serving_units_raise_the_open_files_limit_above_the_session_caps() -> None:
    """Issue 14: 999 idle sessions exhausted the default 1,024 descriptors."""
    serving = [unit for unit in SERVICES if any("serve" in v for v in values(unit, "ExecStart"))]
    assert serving
    for unit in serving:
        assert [int(v) for v in values(unit, "LimitNOFILE")] == [65536], unit.name
