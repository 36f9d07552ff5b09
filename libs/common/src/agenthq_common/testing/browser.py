"""Debian's Chromium for browser tests and benchmarks: installed with apt-get
when missing, never downloaded by Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess

CHROMIUM = os.environ.get("AGENTHQ_CHROMIUM", "/usr/bin/chromium")
# Containers and CI have no user namespaces for Chromium's sandbox, and a small /dev/shm.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]


def ensure_chromium() -> str:
    if shutil.which(CHROMIUM) or os.path.exists(CHROMIUM):
        return CHROMIUM
    print(f"{CHROMIUM} is missing: installing Debian's chromium package (apt-get) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    return CHROMIUM
