#!/usr/bin/env python3
"""Set up ``.venv`` when needed, then run the main job or the test suite.

    python3 quickstart.py run  [course run options]   # all notebooks headless, offline profile, --jobs auto
    python3 quickstart.py test [pytest options]       # the full test suite

Needs only Python 3.10+ and git. The environment is (re)installed when
``pyproject.toml`` changed since the last install, so running either command again is
cheap. Browser tests need Chromium and grading tests bubblewrap: ``test`` installs Debian's
``chromium`` and ``bubblewrap`` with apt-get when missing and it can (root, apt present);
otherwise it says which tests will skip or fail.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".course-installed"


def say(message: str) -> None:
    print(f"[quickstart] {message}", flush=True)


def ensure_venv() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted and (BIN / "course").exists():
        return
    if not (BIN / "python").exists():
        say(f"creating {VENV}")
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    say("installing the kit with its [dev] extra (torch comes from the local wheel cache when present)")
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    subprocess.run(pip + ["--quiet", "--upgrade", "pip"], check=True)
    subprocess.run(pip + ["--quiet", "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(wanted)


# Debian packages the test suite uses: (package, the program it installs, what needs it).
TEST_PACKAGES = [
    ("chromium", "chromium", "the browser tests"),
    ("bubblewrap", "bwrap", "the grading tests (course grade runs each kernel under bubblewrap)"),
]


def ensure_debian_packages(packages=TEST_PACKAGES) -> None:
    """Install the Debian packages the tests use when missing and possible; never fatal."""
    missing = [
        (name, program, why)
        for name, program, why in packages
        if not (shutil.which(program) or Path("/usr/bin", program).exists())
        and not (name == "chromium" and os.environ.get("COURSE_CHROMIUM"))
    ]
    if not missing:
        return
    names = " ".join(name for name, _, _ in missing)
    needed_by = "; ".join(f"{name} for {why}" for name, _, why in missing)
    if not shutil.which("apt-get") or (hasattr(os, "geteuid") and os.geteuid() != 0):
        say(f"missing and not installable here (needs root and apt-get): {needed_by}. Those tests will skip or fail.")
        return
    say(f"installing Debian's {names} ({needed_by})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *names.split()]):
        result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            say(f"`{' '.join(command)}` failed ({result.stderr.strip()[-300:]}): {needed_by} will be missing.")
            return


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_venv()
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", VIRTUAL_ENV=str(VENV))
    if command == "run":
        # One notebook per CPU, one thread each: the same numbers on any number of cores, and on
        # 2 cores the whole job in 573-627 s instead of 747 s one at a time (README, "Speed").
        jobs = [] if any(arg == "--jobs" or arg.startswith("--jobs=") for arg in rest) else ["--jobs", "auto"]
        return subprocess.call([str(BIN / "course"), "run", *jobs, *rest], cwd=ROOT, env=env)
    ensure_debian_packages()
    code = subprocess.call([str(BIN / "python"), "-m", "pytest", *rest], cwd=ROOT, env=env)
    if code == 5:
        say("pytest collected no tests: that is a failure here.")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
