"""Install the peer gateways of `make bench-peers` into bench/.peers (ignored by
git): LiteLLM proxy from PyPI into its own virtualenv, Portkey's gateway from npm.

Both are pinned, so a run measures the versions docs/performance.md names, and
both are reused when the pinned version is already there: an install takes
minutes, a bench run should not.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LITELLM_VERSION = "1.100.5"  # the newest whose [proxy] extra installs from PyPI alone
PORTKEY_VERSION = "1.15.2"
PORTKEY_PACKAGE = "@portkey-ai/gateway"
LITELLM_SPEC = f"litellm[proxy]=={LITELLM_VERSION}"
# Written after a complete install: a venv interrupted half way has no marker.
LITELLM_MARKER = ".bench-installed"


class PeerInstallError(RuntimeError):
    """A peer could not be installed; the message says which and why."""


@dataclass(frozen=True)
class Installed:
    name: str
    version: str
    reused: bool


def litellm_venv(peers_dir: Path) -> Path:
    return peers_dir / "litellm-venv"


def litellm_executable(peers_dir: Path) -> Path:
    return litellm_venv(peers_dir) / "bin" / "litellm"


def litellm_installed(peers_dir: Path) -> bool:
    marker = litellm_venv(peers_dir) / LITELLM_MARKER
    return (marker.is_file() and marker.read_text().strip() == LITELLM_SPEC
            and litellm_executable(peers_dir).is_file())


def install_litellm(peers_dir: Path) -> Installed:
    if litellm_installed(peers_dir):
        return Installed("litellm", LITELLM_VERSION, reused=True)
    venv = litellm_venv(peers_dir)
    shutil.rmtree(venv, ignore_errors=True)  # a different pin or a broken install
    _run("LiteLLM proxy", [sys.executable, "-m", "venv", str(venv)])
    _run("LiteLLM proxy", [str(venv / "bin" / "pip"), "install", "--quiet",
                           "--disable-pip-version-check", LITELLM_SPEC])
    (venv / LITELLM_MARKER).write_text(LITELLM_SPEC + "\n")
    return Installed("litellm", LITELLM_VERSION, reused=False)


def portkey_dir(peers_dir: Path) -> Path:
    return peers_dir / "portkey"


def portkey_entry(peers_dir: Path) -> Path:
    """The gateway's Node server (what its `npx @portkey-ai/gateway` runs)."""
    return portkey_dir(peers_dir) / "node_modules" / PORTKEY_PACKAGE / "build" / "start-server.js"


def portkey_installed_version(peers_dir: Path) -> str | None:
    manifest = portkey_dir(peers_dir) / "node_modules" / PORTKEY_PACKAGE / "package.json"
    try:
        version = json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return version if portkey_entry(peers_dir).is_file() else None


def portkey_manifest() -> dict:
    """package.json of the install folder: an exact pin, so npm cannot drift."""
    return {"name": "lockgate-bench-peers", "private": True,
            "dependencies": {PORTKEY_PACKAGE: PORTKEY_VERSION}}


def install_portkey(peers_dir: Path) -> Installed:
    if portkey_installed_version(peers_dir) == PORTKEY_VERSION:
        return Installed("portkey", PORTKEY_VERSION, reused=True)
    if shutil.which("npm") is None:
        raise PeerInstallError("Portkey gateway: npm is not installed (it needs Node.js and npm)")
    folder = portkey_dir(peers_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text(json.dumps(portkey_manifest(), indent=2) + "\n")
    _run("Portkey gateway", ["npm", "install", "--no-audit", "--no-fund", "--save-exact",
                             "--prefix", str(folder)])
    version = portkey_installed_version(peers_dir)
    if version != PORTKEY_VERSION:
        raise PeerInstallError(f"Portkey gateway: npm installed {version}, expected {PORTKEY_VERSION}")
    return Installed("portkey", PORTKEY_VERSION, reused=False)


def _run(what: str, command: list[str]) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PeerInstallError(f"{what}: `{' '.join(command)}` failed: {error}") from error
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise PeerInstallError(
            f"{what}: `{' '.join(command)}` exited with {done.returncode}:\n{tail}")
