"""installer/install.sh and uninstall.sh, run for real as root into a temporary
root (`--root DIR`): users are created in DIR/etc/passwd by useradd --root, the
host is never touched. Also: the systemd unit through `systemd-analyze verify`,
the scripts through shellcheck, and the udev rules through a syntax check."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from totem_agent.buffer import Buffer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "installer" / "install.sh"
UNINSTALL = REPO / "installer" / "uninstall.sh"
UNIT = REPO / "service_units" / "totem-agent.service"
RULES = REPO / "service_units" / "60-totem-agent.rules"

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="the installers create users and chown files: run as root "
    "(they refuse otherwise, which test_refuses_when_not_root checks)")


def system_root(path: Path) -> Path:
    """A minimal system tree: the account files useradd --root edits."""
    (path / "etc").mkdir(parents=True)
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (path / "etc" / "group").write_text("root:x:0:\nlp:x:7:\ndialout:x:20:\n")
    (path / "etc" / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (path / "etc" / "gshadow").write_text("root:*::\nlp:*::\ndialout:*::\n")
    for name in ("shadow", "gshadow"):
        (path / "etc" / name).chmod(0o640)
    return path


def stub_binary(path: Path, text: str = "release 1") -> Path:
    path.write_text(f"#!/bin/sh\necho 'totem-agent stub ({text})'\n")
    path.chmod(0o755)
    return path


def run_script(script: Path, *args: str, check: bool = True
               ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["sh", str(script), *args], capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL,
                            env={"PATH": os.environ["PATH"], "LC_ALL": "C"})
    if check:
        assert result.returncode == 0, f"{script.name} {args}:\n{result.stdout}{result.stderr}"
    return result


def tree(root: Path) -> dict[str, tuple[str, int, int, int, str]]:
    """Every path under root: (kind, mode, uid, gid, sha256 of a file)."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        kind = "dir" if path.is_dir() else "link" if path.is_symlink() else "file"
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if kind == "file" else ""
        out[str(path.relative_to(root))] = (kind, st.st_mode & 0o7777, st.st_uid, st.st_gid,
                                            digest)
    return out


def account(root: Path, database: str, name: str) -> list[str] | None:
    for line in (root / "etc" / database).read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return fields
    return None


def test_refuses_when_not_root(tmp_path: Path) -> None:
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv (util-linux) to run the scripts as nobody")
    # pytest's tmp_path sits in a root-only directory: the scripts go where nobody reads.
    with tempfile.TemporaryDirectory(prefix="totem-installer-") as name:
        shared = Path(name)
        shared.chmod(0o755)
        root = system_root(shared / "root")
        scripts = shared / "scripts"
        shutil.copytree(REPO / "installer", scripts)
        before = tree(root)
        for script in ("install.sh", "uninstall.sh"):
            result = subprocess.run([setpriv, "--reuid=65534", "--regid=65534",
                                     "--clear-groups", "sh", str(scripts / script),
                                     "--root", str(root)],
                                    capture_output=True, text=True, timeout=30,
                                    stdin=subprocess.DEVNULL)
            assert result.returncode == 1, result
            assert "must run as root" in result.stderr and "sudo" in result.stderr
            assert tree(root) == before, f"{script} changed something before refusing"


@needs_root
def test_install_twice_gives_the_same_tree(tmp_path: Path) -> None:
    root = system_root(tmp_path / "root")
    binary = stub_binary(tmp_path / "totem-agent")
    first = run_script(INSTALL, "--root", str(root), "--binary", str(binary))
    assert "nothing was started" in first.stdout
    after_first = tree(root)
    second = run_script(INSTALL, "--root", str(root), "--binary", str(binary))
    assert "installed /" not in second.stdout, second.stdout
    assert tree(root) == after_first

    user = account(root, "passwd", "totem-agent")
    assert user is not None and user[5] == "/var/lib/totem-agent" and user[6].endswith("nologin")
    uid, gid = int(user[2]), int(user[3])
    assert uid < 1000, "a system user"
    for group in ("dialout", "lp"):
        members = account(root, "group", group)
        assert members is not None and "totem-agent" in members[3].split(",")
    expect = {
        "usr/bin/totem-agent": ("file", 0o755, 0, 0),
        "etc/systemd/system/totem-agent.service": ("file", 0o644, 0, 0),
        "etc/udev/rules.d/60-totem-agent.rules": ("file", 0o644, 0, 0),
        "etc/totem-agent": ("dir", 0o750, 0, gid),
        "etc/totem-agent/config.toml": ("file", 0o640, 0, gid),
        "var/lib/totem-agent": ("dir", 0o750, uid, gid),
        "usr/share/doc/totem-agent/config.example.toml": ("file", 0o644, 0, 0),
    }
    for path, (kind, mode, owner, group_id) in expect.items():
        assert after_first[path][:4] == (kind, mode, owner, group_id), path
    assert (root / "usr/bin/totem-agent").read_bytes() == binary.read_bytes()
    assert (root / "etc/systemd/system/totem-agent.service").read_bytes() == UNIT.read_bytes()
    assert ((root / "etc/totem-agent/config.toml").read_bytes()
            == (REPO / "installer/config.example.toml").read_bytes())


@needs_root
def test_upgrade_replaces_the_program_and_keeps_config_and_buffer(tmp_path: Path) -> None:
    root = system_root(tmp_path / "root")
    run_script(INSTALL, "--root", str(root), "--binary",
               str(stub_binary(tmp_path / "old" , "release 1")))
    config = root / "etc/totem-agent/config.toml"
    config.write_text('[labels]\nstore = "sp-0042"\n')
    buffer_file = root / "var/lib/totem-agent/buffer.sqlite"
    buffer = Buffer.open(buffer_file)
    buffer.append(1_700_000_000_000, [("node_load1", {}, 0.5)])
    buffer.close()
    kept = {p: (root / p).read_bytes() for p in ("etc/totem-agent/config.toml",
                                                 "var/lib/totem-agent/buffer.sqlite")}

    new = tmp_path / "new"
    new.mkdir()
    result = run_script(INSTALL, "--root", str(root), "--binary",
                        str(stub_binary(new / "totem-agent", "release 2")))
    assert "installed /usr/bin/totem-agent" in result.stdout
    assert b"release 2" in (root / "usr/bin/totem-agent").read_bytes()
    for path, content in kept.items():
        assert (root / path).read_bytes() == content, f"the upgrade changed {path}"
    reopened = Buffer.open(buffer_file)
    try:
        assert reopened.stats().appended_samples == 1
    finally:
        reopened.close()


@needs_root
def test_uninstall_keeps_config_buffer_and_user_until_purge(tmp_path: Path) -> None:
    root = system_root(tmp_path / "root")
    binary = stub_binary(tmp_path / "totem-agent")
    run_script(INSTALL, "--root", str(root), "--binary", str(binary))
    (root / "var/lib/totem-agent/buffer.sqlite").write_bytes(b"kept")
    uid = account(root, "passwd", "totem-agent")

    result = run_script(UNINSTALL, "--root", str(root))
    assert "--purge" in result.stdout
    for gone in ("usr/bin/totem-agent", "etc/systemd/system/totem-agent.service",
                 "etc/udev/rules.d/60-totem-agent.rules", "usr/share/doc/totem-agent"):
        assert not (root / gone).exists(), gone
    assert (root / "etc/totem-agent/config.toml").is_file()
    assert (root / "var/lib/totem-agent/buffer.sqlite").read_bytes() == b"kept"
    assert account(root, "passwd", "totem-agent") == uid
    after = tree(root)
    run_script(UNINSTALL, "--root", str(root))
    assert tree(root) == after, "a second uninstall changed something"

    # Installing again picks up the kept user, config and buffer.
    run_script(INSTALL, "--root", str(root), "--binary", str(binary))
    assert account(root, "passwd", "totem-agent") == uid
    assert (root / "var/lib/totem-agent/buffer.sqlite").read_bytes() == b"kept"

    result = run_script(UNINSTALL, "--root", str(root), "--purge")
    assert "purged" in result.stdout
    for gone in ("etc/totem-agent", "var/lib/totem-agent", "usr/bin/totem-agent"):
        assert not (root / gone).exists(), gone
    assert account(root, "passwd", "totem-agent") is None
    assert account(root, "group", "totem-agent") is None
    run_script(UNINSTALL, "--root", str(root), "--purge")


def desktop_exec(path: Path) -> str:
    lines = [line for line in path.read_text().splitlines() if line.startswith("Exec=")]
    assert len(lines) == 1, lines
    return lines[0].removeprefix("Exec=")


@needs_root
def test_the_tray_binary_comes_with_its_autostart_entry_or_neither(tmp_path: Path) -> None:
    """The XDG autostart entry starts /usr/bin/totem-agent-tray; it is installed only
    with that binary (the service binary has no GUI toolkit to run a tray with)."""
    autostart = "etc/xdg/autostart/totem-agent-tray.desktop"
    bare = system_root(tmp_path / "bare")
    alone = tmp_path / "alone"
    alone.mkdir()
    result = run_script(INSTALL, "--root", str(bare), "--binary",
                        str(stub_binary(alone / "totem-agent")))
    assert "no totem-agent-tray next to" in result.stdout
    assert not (bare / autostart).exists() and not (bare / "usr/bin/totem-agent-tray").exists()

    root = system_root(tmp_path / "root")
    release = tmp_path / "release"
    release.mkdir()
    tray = stub_binary(release / "totem-agent-tray", "tray")
    run_script(INSTALL, "--root", str(root), "--binary", str(stub_binary(release / "totem-agent")))
    command = desktop_exec(root / autostart)
    installed = root / command.split()[0].lstrip("/")
    assert command == "/usr/bin/totem-agent-tray"
    assert installed.read_bytes() == tray.read_bytes() and os.access(installed, os.X_OK)
    assert tree(root)["usr/bin/totem-agent-tray"][:4] == ("file", 0o755, 0, 0)
    run_script(UNINSTALL, "--root", str(root))
    assert not installed.exists() and not (root / autostart).exists()


def test_unknown_option_is_refused_with_usage(tmp_path: Path) -> None:
    result = run_script(INSTALL, "--frobnicate", check=False)
    assert result.returncode == 1 and "unknown option: --frobnicate" in result.stderr
    result = run_script(UNINSTALL, "--frobnicate", check=False)
    assert result.returncode == 1 and "unknown option: --frobnicate" in result.stderr


def verify_unit(root: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` of the installed unit inside `root` (with a copy of
    the host's own units, which it resolves the dependencies against)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: it is in the Debian package "
                    "'systemd' (./run-tests installs it when run as root)")
    units = root / "usr/lib/systemd/system"
    if not units.exists():
        host_units = next(p for p in (Path("/usr/lib/systemd/system"),
                                      Path("/lib/systemd/system")) if p.is_dir())
        shutil.copytree(host_units, units, symlinks=True)
    # ExecReload's /bin/kill (Debian's procps): verify checks it is executable.
    kill = root / "bin" / "kill"
    if not kill.exists():
        kill.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2("/bin/kill", kill)
    return subprocess.run([analyze, "verify", f"--root={root}", "totem-agent.service"],
                          capture_output=True, text=True, timeout=60)


@needs_root
def test_systemd_analyze_verify_passes_on_the_installed_unit(tmp_path: Path) -> None:
    root = system_root(tmp_path / "root")
    run_script(INSTALL, "--root", str(root), "--binary", str(stub_binary(tmp_path / "agent")))
    result = verify_unit(root)
    # verify exits 0 on mere warnings (an unknown key is "ignoring"): none allowed.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), \
        result.stdout + result.stderr
    # And it does catch mistakes: a misspelt key in a copy is reported.
    unit = root / "etc/systemd/system/totem-agent.service"
    unit.write_text(unit.read_text().replace("ProtectHome=yes", "ProtectHomes=yes"))
    assert "Unknown key 'ProtectHomes'" in verify_unit(root).stderr


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_declares_notify_watchdog_state_and_hardening() -> None:
    unit = unit_settings(UNIT.read_text())
    assert unit["Type"] == ["notify"]
    assert unit["ExecStart"] == ["/usr/bin/totem-agent run --config /etc/totem-agent/config.toml"]
    assert unit["Restart"] == ["on-failure"]
    # `systemctl reload`: SIGHUP re-reads the config (tests/integration/test_reload.py).
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["StateDirectory"] == ["totem-agent"]
    assert unit["ConfigurationDirectory"] == ["totem-agent"]
    assert unit["Environment"] == ["TOTEM_AGENT_STATE_DIR=%S/totem-agent"]
    assert unit["User"] == ["totem-agent"]
    assert unit["SupplementaryGroups"] == ["dialout lp"]
    watchdog = int(unit["WatchdogSec"][0].removesuffix("s"))
    assert 10 <= watchdog <= 120
    for key, value in {"ProtectSystem": "strict", "ProtectHome": "yes",
                       "NoNewPrivileges": "yes", "PrivateTmp": "yes",
                       "ProtectKernelTunables": "yes"}.items():
        assert unit[key] == [value], key
    families = unit["RestrictAddressFamilies"][0].split()
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families)


def test_shellcheck_passes_on_the_installers() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed: it is in the Debian package 'shellcheck' "
                    "(./run-tests installs it when run as root)")
    scripts = [INSTALL, UNINSTALL, REPO / "installer" / "build-binary.sh"]
    result = subprocess.run([shellcheck, "--severity=style", *map(str, scripts)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


# udev rule syntax (udevadm verify needs systemd 254; Debian 12 has 252).
MATCH_KEYS = {"SUBSYSTEM", "SUBSYSTEMS", "KERNEL", "KERNELS", "ACTION", "DRIVER", "DRIVERS",
              "ATTR", "ATTRS", "ENV"}
ASSIGN_KEYS = {"GROUP", "MODE", "OWNER", "SYMLINK", "ENV", "TAG", "RUN"}
TOKEN = re.compile(r'\s*(?P<key>[A-Z]+)(?:\{(?P<attr>[A-Za-z_]+)\})?'
                   r'(?P<op>==|!=|\+=|-=|:=|=)"(?P<value>[^"]*)"\s*(?:,|$)')


def parse_rule(line: str) -> list[tuple[str, str | None, str, str]]:
    tokens, pos = [], 0
    while pos < len(line):
        match = TOKEN.match(line, pos)
        assert match, f"not a udev rule token at {line[pos:]!r}"
        key, attr, op, value = match.group("key", "attr", "op", "value")
        if op in ("==", "!="):
            assert key in MATCH_KEYS, f"{key} cannot be matched: {line}"
        else:
            assert key in ASSIGN_KEYS, f"{key} cannot be assigned: {line}"
        if key in ("ATTR", "ATTRS", "ENV"):
            assert attr, f"{key} needs {{name}}: {line}"
        tokens.append((key, attr, op, value))
        pos = match.end()
    return tokens


def test_udev_rules_parse_and_examples_match_by_vid_pid() -> None:
    rules = []
    for line in RULES.read_text().splitlines():
        text = line.strip()
        # The examples are commented out: check them as the rules they become.
        if text.startswith("#") and re.match(r"#\s*[A-Z]+(\{\w+\})?(==|=)", text):
            text = text.lstrip("#").strip()
        if not text or text.startswith("#"):
            continue
        rules.append(parse_rule(text))
    assert len(rules) >= 3
    for tokens in rules:
        matched = {(k, a): v for k, a, op, v in tokens if op == "=="}
        vid = matched.get(("ATTR", "idVendor")) or matched.get(("ATTRS", "idVendor"))
        pid = matched.get(("ATTR", "idProduct")) or matched.get(("ATTRS", "idProduct"))
        assert vid and re.fullmatch(r"[0-9a-f]{4}", vid), tokens
        assert pid and re.fullmatch(r"[0-9a-f]{4}", pid), tokens
        group = next(v for k, _, op, v in tokens if k == "GROUP")
        assert group in ("totem-agent", "dialout", "lp")
        assert next(v for k, _, op, v in tokens if k == "MODE") == "0660"
