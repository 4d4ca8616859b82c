"""The Debian package, installed for real: `cargo deb` builds it from the debug binary the
test command already has, `dpkg -i` installs it on this machine, the server starts exactly
as the systemd unit's ExecStart would (as its User and Group, with its UMask, working and
state directories, environment file and NoNewPrivileges — no systemd runs here, so the
unit file is read and followed), and the drills of docs/operations.md run on it: backup and
restore, and an upgrade that keeps the data and a changed configuration. `dpkg --purge`
leaves the machine as it was, and the test checks that it does.

Needs root, dpkg and cargo-deb (scripts/test.sh installs cargo-deb when missing); skips
with the reason otherwise, and fails instead under LATCHKEY_TEST_REQUIRE_ALL=1.
"""

from __future__ import annotations

import configparser
import fcntl
import grp
import json
import os
import pwd
import random
import shlex
import shutil
import signal
import stat
import string
import subprocess
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT_NAME = "latchkey.service"
PACKAGE = "latchkey"
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
DEADLINE = 60.0
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def skip_or_fail(reason: str) -> None:
    if os.environ.get("LATCHKEY_TEST_REQUIRE_ALL") == "1":
        pytest.fail(f"{reason} (LATCHKEY_TEST_REQUIRE_ALL=1 turns this skip into a failure)")
    pytest.skip(reason)


def make_token(prefix: str = "lkp") -> str:
    body = "".join(random.SystemRandom().choice(BASE62) for _ in range(32))
    n = zlib.crc32(body.encode())
    digits = ""
    while n:
        n, r = divmod(n, 62)
        digits = BASE62[r] + digits
    return f"{prefix}_{body}{digits.rjust(6, '0')}"


def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{shlex.join(args)} failed:\n{result.stdout}{result.stderr}"
    return result


def installed() -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", PACKAGE], capture_output=True, text=True
    )
    return result.returncode == 0 and "installed" in result.stdout


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


# ----------------------------------------------------------------------------- the unit


class Unit:
    """The [Service] settings of the unit file that say how the process runs."""

    def __init__(self, path: Path) -> None:
        parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        # systemd allows a key more than once (SystemCallFilter=): keep the last, as the
        # settings read here do not repeat.
        text = "\n".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
        )
        parser.read_string(text)
        self.service = dict(parser["Service"])
        self.install = dict(parser["Install"])

    @property
    def exec_start(self) -> List[str]:
        argv = shlex.split(self.service["ExecStart"])
        argv[0] = argv[0].lstrip("-@:+!")  # systemd's prefixes
        return argv

    @property
    def user(self) -> str:
        return self.service["User"]

    @property
    def group(self) -> str:
        return self.service.get("Group", self.user)

    @property
    def state_directory(self) -> Path:
        return Path("/var/lib") / self.service["StateDirectory"]

    def environment_file(self) -> Dict[str, str]:
        spec = self.service.get("EnvironmentFile")
        if not spec:
            return {}
        optional = spec.startswith("-")
        path = Path(spec.lstrip("-"))
        if not path.exists():
            assert optional, f"EnvironmentFile {path} is missing"
            return {}
        env = {}
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key.strip()] = value.strip().strip('"')
        return env


def listening_address(line: str) -> Optional[str]:
    """The address from the start announcement, in text or JSON log format."""
    if line.lstrip().startswith("{"):
        fields = json.loads(line).get("fields", {})
        return str(fields["address"]) if "address" in fields else None
    if "address=" in line:
        return line.split("address=", 1)[1].split()[0]
    return None


class Service:
    """The server started as the unit starts it."""

    def __init__(self, unit: Unit, extra_env: Dict[str, str], log: Path) -> None:
        user = pwd.getpwnam(unit.user)
        group = grp.getgrnam(unit.group)
        state = unit.state_directory
        # StateDirectory=: systemd creates it, owned by User/Group, with StateDirectoryMode.
        state.mkdir(mode=0o755, exist_ok=True)
        os.chown(state, user.pw_uid, group.gr_gid)
        os.chmod(state, int(unit.service.get("StateDirectoryMode", "0755"), 8))
        # The environment systemd gives a service with User= (plus Environment*).
        env = {
            "PATH": SYSTEM_PATH,
            "HOME": user.pw_dir,
            "USER": user.pw_name,
            "LOGNAME": user.pw_name,
            "SHELL": user.pw_shell,
            "STATE_DIRECTORY": str(state),
        }
        env.update(unit.environment_file())
        env.update(extra_env)
        setpriv = [
            "setpriv",
            f"--reuid={user.pw_uid}",
            f"--regid={group.gr_gid}",
            "--init-groups",
        ]
        if unit.service.get("NoNewPrivileges", "no") in ("yes", "true", "1"):
            setpriv.append("--no-new-privs")
        umask = int(unit.service.get("UMask", "0022"), 8)
        self.lines: List[str] = []
        self.address: Optional[str] = None
        announced = threading.Event()
        self.process = subprocess.Popen(
            [*setpriv, "--", *unit.exec_start],
            env=env,
            cwd=unit.service.get("WorkingDirectory", "/"),
            stdin=subprocess.DEVNULL,
            stdout=open(log, "ab"),
            stderr=subprocess.PIPE,
            preexec_fn=lambda: os.umask(umask),
        )

        def read() -> None:
            assert self.process.stderr is not None
            for raw in self.process.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.lines.append(line)
                if self.address is None and "latchkey listening" in line:
                    self.address = listening_address(line)
                    announced.set()
            announced.set()

        threading.Thread(target=read, daemon=True).start()
        if not announced.wait(DEADLINE) or self.address is None:
            self.stop()
            pytest.fail("the service did not start:\n" + "\n".join(self.lines[-30:]))
        self.url = f"http://{self.address}"
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                if httpx.get(self.url + "/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                pytest.fail("/readyz never answered 200:\n" + "\n".join(self.lines[-30:]))
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, as systemd's KillSignal=; the server drains and exits 0."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """Two builds of the package: revision 1, and revision 2 to upgrade to."""
    if os.geteuid() != 0:
        skip_or_fail("the Debian package test installs a package: it needs root")
    for tool in ("dpkg", "dpkg-deb", "setpriv"):
        if shutil.which(tool) is None:
            skip_or_fail(f"{tool} is not installed")
    cargo_home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    if shutil.which("cargo-deb") is None and not (cargo_home / "bin" / "cargo-deb").exists():
        skip_or_fail("cargo-deb is not installed (cargo install cargo-deb; scripts/test.sh does)")
    binary = Path(os.environ.get("LATCHKEY_BIN", REPO / "target" / "debug" / "latchkey")).resolve()
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: build it first (cargo build -p latchkey-cli)")
    out = tmp_path_factory.mktemp("debs")
    built = {}
    env = dict(os.environ, CARGO_TARGET_DIR=str(binary.parent.parent))
    for revision in ("1", "2"):
        # From the debug binary the test command built (no release build: minutes on 2
        # cores); stripped, gzip by the system tool (cargo-deb's own is slow).
        result = run(
            "cargo", "deb", "-p", "latchkey-cli", "--no-build", "--profile", "dev",
            "--compress-type", "gzip", "--compress-system", "--fast", "--quiet",
            "--deb-revision", revision, "--output", str(out / revision),
            cwd=REPO, env=env,
        )  # fmt: skip
        debs = list((out / revision).glob("*.deb"))
        assert len(debs) == 1, result.stdout + result.stderr
        built[revision] = debs[0]
    return built


@pytest.fixture
def clean_machine() -> Iterator[None]:
    """One package test at a time on this machine; the package is gone afterwards."""
    lock = open("/run/lock/latchkey-deb-test.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        if installed() or user_exists("latchkey") or Path("/var/lib/latchkey").exists():
            pytest.fail(
                "this machine already has a latchkey package, user or /var/lib/latchkey; "
                "the test will not touch them (dpkg --purge latchkey to clean up)"
            )
        yield
    finally:
        if installed():
            subprocess.run(["dpkg", "--purge", PACKAGE], capture_output=True)
        lock.close()


# ----------------------------------------------------------------------------- the test


@pytest.fixture
def cleanup() -> Iterator[List[Path]]:
    paths: List[Path] = []
    yield paths
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def test_the_debian_package_installs_serves_backs_up_upgrades_and_purges(
    debs: Dict[str, Path], clean_machine: None, cleanup: List[Path], tmp_path: Path
) -> None:
    contents = run("dpkg-deb", "--contents", str(debs["1"])).stdout
    for path in ("./usr/bin/latchkey", "./etc/latchkey/latchkey.toml", UNIT_NAME):
        assert path in contents, contents
    assert run("dpkg-deb", "--field", str(debs["1"]), "Package").stdout.strip() == PACKAGE
    assert (
        "/etc/latchkey/latchkey.toml"
        in run("dpkg-deb", "--info", str(debs["1"]), "conffiles").stdout
    )

    noninteractive = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run("dpkg", "-i", str(debs["1"]), env=noninteractive)

    # `latchkey` on PATH; the configuration is the sample, readable by the service only.
    found = run("sh", "-c", "command -v latchkey", env={"PATH": SYSTEM_PATH}).stdout.strip()
    assert found in ("/usr/bin/latchkey", "/bin/latchkey"), found
    assert run("latchkey", "--version", env={"PATH": SYSTEM_PATH}).stdout.startswith("latchkey ")
    config = Path("/etc/latchkey/latchkey.toml")
    assert config.read_text() == (REPO / "latchkey.sample.toml").read_text()
    info = config.stat()
    assert stat.S_IMODE(info.st_mode) == 0o640 and info.st_uid == 0
    assert grp.getgrgid(info.st_gid).gr_name == "latchkey"

    # The unit: where systemd finds it, enabled, valid, hardened.
    unit_path = (
        next(
            p
            for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
            if (p / UNIT_NAME).exists()
        )
        / UNIT_NAME
    )
    unit = Unit(unit_path)
    assert unit.install["WantedBy"] == "multi-user.target"
    assert Path("/etc/systemd/system/multi-user.target.wants", UNIT_NAME).exists()
    for key, value in {
        "User": "latchkey",
        "StateDirectory": "latchkey",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
    }.items():
        assert unit.service.get(key) == value, (key, unit.service.get(key))
    account = pwd.getpwnam(unit.user)
    assert account.pw_uid < 1000 and account.pw_shell.endswith("nologin")
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(
            ["systemd-analyze", "verify", str(unit_path)], capture_output=True, text=True
        )
        assert verify.returncode == 0, verify.stderr
        security = subprocess.run(
            # Exposure on systemd's 0-100 scale (shown as 0.0-10.0); the unit scores 14 (1.4).
            ["systemd-analyze", "security", "--offline=true", "--threshold=20", str(unit_path)],
            capture_output=True,
            text=True,
        )
        assert security.returncode == 0, security.stdout[-2000:] + security.stderr

    # First start, as the unit: the bootstrap is preset through the unit's EnvironmentFile
    # (root-only); the port comes from a drop-in's Environment= (random, for the test).
    admin_token = make_token()
    env_file = Path("/etc/latchkey/latchkey.env")
    env_file.write_text(
        f"LATCHKEY_ADMIN_PASSWORD=deb test password 123\nLATCHKEY_ADMIN_TOKEN={admin_token}\n"
    )
    env_file.chmod(0o600)
    drop_in = {"LATCHKEY_LISTEN": "127.0.0.1:0"}
    service = Service(unit, drop_in, tmp_path / "service.log")
    try:
        auth = {"Authorization": f"Bearer {admin_token}"}
        me = httpx.get(service.url + "/api/v1/me", headers=auth, timeout=30)
        assert me.status_code == 200 and me.json()["username"] == "admin", me.text
        state = unit.state_directory
        for name in ("latchkey.db", "hash.key"):
            info = (state / name).stat()
            assert info.st_uid == account.pw_uid, name
            assert stat.S_IMODE(info.st_mode) & 0o077 == 0, (name, oct(info.st_mode))
        ws = next(m for m in me.json()["memberships"] if m["workspace_name"] == "Workspace 1")
        created = httpx.post(
            f"{service.url}/api/v1/workspaces/{ws['workspace_id']}/tokens",
            headers=auth,
            json={"name": "before-backup", "type": "client"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        secret = created.json()["token"]

        # Backup drill (docs/operations.md): as the service user, while it serves, into a
        # directory of its own (pytest's tmp_path is root-only).
        backups = Path(tempfile.mkdtemp(prefix="latchkey-backup-", dir="/var/tmp"))
        cleanup.append(backups)
        os.chown(backups, account.pw_uid, account.pw_gid)
        backup = backups / "latchkey.db"
        run(
            "runuser", "-u", unit.user, "--", "latchkey", "backup", str(backup),
            "--data-dir", str(state), env={"PATH": SYSTEM_PATH},
        )  # fmt: skip
        assert backup.exists() and Path(f"{backup}.hash.key").exists()
        after = httpx.post(
            f"{service.url}/api/v1/workspaces/{ws['workspace_id']}/tokens",
            headers=auth,
            json={"name": "after-backup", "type": "client"},
            timeout=30,
        )
        assert after.status_code == 201
    finally:
        service.stop()
    assert service.process.returncode == 0, "\n".join(service.lines[-20:])

    # Disaster, then restore (docs/operations.md): an empty state directory gets the copy
    # and its key, owned by the service user.
    for child in state.iterdir():
        child.unlink()
    shutil.copy(backup, state / "latchkey.db")
    shutil.copy(f"{backup}.hash.key", state / "hash.key")
    for name in ("latchkey.db", "hash.key"):
        os.chown(state / name, account.pw_uid, account.pw_gid)
        os.chmod(state / name, 0o600)
    service = Service(unit, drop_in, tmp_path / "service.log")
    try:
        check = httpx.post(
            service.url + "/api/v1/tokens/verify", json={"token": secret}, timeout=30
        )
        assert check.json()["valid"] is True, check.text
        lost = httpx.post(
            service.url + "/api/v1/tokens/verify", json={"token": after.json()["token"]}, timeout=30
        )
        assert lost.json() == {"valid": False, "reason": "not_found"}, lost.text
    finally:
        service.stop()

    # Upgrade: the operator's change to the configuration and the data survive; the new
    # binary migrates the database at its start.
    changed = config.read_text().replace('log_format = "text"', 'log_format = "json"')
    assert changed != config.read_text()
    config.write_text(changed)
    run("dpkg", "-i", "--force-confold", str(debs["2"]), env=noninteractive)
    version = run("dpkg-query", "-W", "-f=${Version}", PACKAGE).stdout
    assert version.endswith("-2"), version
    assert config.read_text() == changed
    service = Service(unit, drop_in, tmp_path / "service.log")
    try:
        check = httpx.post(
            service.url + "/api/v1/tokens/verify", json={"token": secret}, timeout=30
        )
        assert check.json()["valid"] is True, check.text
        assert any(line.lstrip().startswith("{") for line in service.lines), "json logs"
    finally:
        service.stop()

    # Purge leaves nothing behind.
    run("dpkg", "--purge", PACKAGE, env=noninteractive)
    assert not installed()
    for path in (
        "/usr/bin/latchkey",
        "/etc/latchkey",
        "/var/lib/latchkey",
        str(unit_path),
        f"/etc/systemd/system/multi-user.target.wants/{UNIT_NAME}",
    ):
        assert not Path(path).exists(), f"{path} is left after dpkg --purge"
    assert not user_exists("latchkey")
    try:
        grp.getgrnam("latchkey")
        pytest.fail("the latchkey group is left after dpkg --purge")
    except KeyError:
        pass
