"""pip-audit over the packages installed in the project's venv (the agent's dependencies
and the test tools), when a vulnerability service can be reached from this machine.

A service counts as reachable only when it answers for a release known to be
vulnerable (jinja2 2.10: CVE-2019-10906): a mirror that answers 404, or answers with
no data, would make every audit pass for nothing. Otherwise the test skips, naming
each service, the URL it asked and what came back.

pip-audit's PyPI service reads the per-release JSON (/pypi/NAME/VERSION/json). Where a
mirror serves only the project JSON (/pypi/NAME/json, whose `vulnerabilities` are those
of the latest release), the second test audits the packages installed at their latest
release from it, with the same rule of a known answer first (ecdsa's CVE-2024-23342,
which its maintainers leave unfixed).

A finding fails the test, unless its ID is in ACCEPTED, each of which docs/security.md
explains (no fixed release yet, or the code path is not used). A dependency with a
fixed release is upgraded instead (its floor raised in pyproject.toml).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

PIP_AUDIT = Path(sys.executable).parent / "pip-audit"
CANARY = ("jinja2", "2.10", "CVE-2019-10906")
PYPI_URL = f"https://pypi.org/pypi/{CANARY[0]}/{CANARY[1]}/json"
OSV_URL = "https://api.osv.dev/v1/query"
# Vulnerability ID -> why it is accepted for now (docs/security.md, "Dependencies").
ACCEPTED: dict[str, str] = {}


def _context() -> ssl.SSLContext:
    # pip's own CA bundle when one is configured (the routes pip uses here).
    cafile = os.environ.get("PIP_CERT") or os.environ.get("REQUESTS_CA_BUNDLE")
    return ssl.create_default_context(cafile=cafile or None)


def _ask(request: urllib.request.Request) -> tuple[Any, str]:
    """(JSON answer or None, what happened in words)."""
    try:
        with urllib.request.urlopen(request, timeout=15, context=_context()) as answer:
            return json.load(answer), "answered"
    except urllib.error.HTTPError as err:
        return None, f"answered HTTP {err.code}"
    except (urllib.error.URLError, OSError) as err:
        return None, f"unreachable: {getattr(err, 'reason', err)}"
    except ValueError:
        return None, "answered something that is not JSON"


def pypi_usable() -> str | None:
    """None when PyPI's JSON API knows the canary; else why not."""
    data, said = _ask(urllib.request.Request(PYPI_URL))
    if data is None:
        return f"PyPI JSON API ({PYPI_URL}) {said}"
    ids = {alias for v in data.get("vulnerabilities") or []
           for alias in [v.get("id"), *(v.get("aliases") or [])]}
    if CANARY[2] not in ids:
        return f"PyPI JSON API ({PYPI_URL}) answered without {CANARY[2]} (no vulnerability data)"
    return None


def osv_usable() -> str | None:
    body = json.dumps({"package": {"name": CANARY[0], "ecosystem": "PyPI"},
                       "version": CANARY[1]}).encode()
    data, said = _ask(urllib.request.Request(OSV_URL, data=body, method="POST",
                                             headers={"Content-Type": "application/json"}))
    if data is None:
        return f"OSV ({OSV_URL}) {said}"
    ids = {alias for v in data.get("vulns") or [] for alias in [v.get("id"),
                                                               *(v.get("aliases") or [])]}
    if CANARY[2] not in ids:
        return f"OSV ({OSV_URL}) answered without {CANARY[2]} (no vulnerability data)"
    return None


def test_installed_dependencies_have_no_known_vulnerability(tmp_path: Path) -> None:
    if not PIP_AUDIT.exists() and shutil.which("pip-audit") is None:
        pytest.skip(f"pip-audit is not installed in {PIP_AUDIT.parent} (scripts/bootstrap-venv "
                    "test installs the test extra, which has it)")
    problems = {}
    service = None
    for name, probe in (("pypi", pypi_usable), ("osv", osv_usable)):
        problem = probe()
        if problem is None:
            service = name
            break
        problems[name] = problem
    if service is None:
        pytest.skip("no vulnerability service usable from this machine, so pip-audit cannot "
                    "audit: " + "; ".join(problems.values()))
    report = tmp_path / "audit.json"
    done = subprocess.run([str(PIP_AUDIT), "--local", "--skip-editable", "--format", "json",
                           "--progress-spinner", "off", "--vulnerability-service", service,
                           "--cache-dir", str(tmp_path / "cache"), "--output", str(report)],
                          capture_output=True, text=True, timeout=600)
    if not report.exists():
        pytest.fail(f"pip-audit wrote no report (exit {done.returncode}):\n{done.stderr}")
    dependencies = json.loads(report.read_text())["dependencies"]
    skipped = [f"{d['name']} {d.get('version', '?')}: {d['skip_reason']}"
               for d in dependencies if d.get("skip_reason")]
    # Everything installed comes from the index: a dependency the service does not know
    # was not audited, and the test must not pass for it silently.
    assert len(skipped) <= len(dependencies) // 10, (
        f"{service}: {len(skipped)} of {len(dependencies)} not audited:\n" + "\n".join(skipped))
    found = [f"{d['name']} {d['version']}: {v['id']} (fixed in "
             f"{', '.join(v.get('fix_versions') or []) or 'no release yet'})"
             for d in dependencies for v in d.get("vulns") or [] if v["id"] not in ACCEPTED]
    assert not found, (f"pip-audit ({service}) found known vulnerabilities: upgrade (raise the "
                       "floor in pyproject.toml) or explain in docs/security.md and ACCEPTED:\n"
                       + "\n".join(found))


def _installed() -> dict[str, str]:
    """Normalised name -> version of every distribution in this venv but the agent."""
    out: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
        if name and name != "totem-agent":
            out.setdefault(name, dist.version)
    return out


def test_latest_releases_installed_have_no_known_vulnerability() -> None:
    canary_url = "https://pypi.org/pypi/ecdsa/json"
    data, said = _ask(urllib.request.Request(canary_url))
    ids = {a for v in (data or {}).get("vulnerabilities") or []
           for a in [v.get("id"), *(v.get("aliases") or [])]}
    if "CVE-2024-23342" not in ids:
        pytest.skip(f"PyPI's project JSON ({canary_url}) {said}"
                    + ("" if data is None else " without ecdsa's CVE-2024-23342 "
                       "(no vulnerability data)"))
    audited, not_latest, found = 0, [], []
    for name, version in sorted(_installed().items()):
        url = f"https://pypi.org/pypi/{name}/json"
        data, said = _ask(urllib.request.Request(url))
        if data is None:
            not_latest.append(f"{name} {version}: {url} {said}")
            continue
        if data["info"]["version"] != version:  # the advisories are the latest release's
            not_latest.append(f"{name} {version}: not the latest ({data['info']['version']})")
            continue
        audited += 1
        found += [f"{name} {version}: {v.get('id')} {v.get('aliases') or ''} (fixed in "
                  f"{', '.join(v.get('fixed_in') or []) or 'no release yet'})"
                  for v in data.get("vulnerabilities") or [] if v.get("id") not in ACCEPTED]
    print(f"PyPI project JSON: {audited} packages audited at their latest release; not "
          f"audited: {not_latest or 'none'}")
    assert not found, ("known vulnerabilities in installed packages: upgrade (raise the "
                       "floor in pyproject.toml) or explain in docs/security.md and "
                       "ACCEPTED:\n" + "\n".join(found))
    assert audited >= len(not_latest), f"most packages were not audited: {not_latest}"
