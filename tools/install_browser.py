"""Install the browser the review tests drive: Debian's chromium and chromium-driver.

Idempotent and quick when both are on PATH. Otherwise, as root on a Debian/Ubuntu
machine, runs ``apt-get update`` and ``apt-get install -y chromium chromium-driver``.
Elsewhere (not root, no apt-get, no network) it says why and exits 0: the browser
tests then skip with that reason (tests/test_review_browser.py).

Usage:
    python tools/install_browser.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

PACKAGES = ("chromium", "chromium-driver")


def found() -> bool:
    """Whether chromium and chromedriver are both on PATH."""
    return bool(shutil.which("chromium") or shutil.which("chromium-browser")) and bool(
        shutil.which("chromedriver")
    )


def main() -> int:
    if found():
        print("install_browser: chromium and chromedriver already installed")
        return 0
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        print(
            "install_browser: chromium/chromedriver missing and cannot install them here (needs "
            "root and apt-get); the browser tests will be skipped. Install them with: "
            "sudo apt-get install chromium chromium-driver",
            file=sys.stderr,
        )
        return 0
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=False)
        if result.returncode != 0:
            print(
                f"install_browser: {' '.join(command)} failed (exit {result.returncode}); the "
                "browser tests will be skipped",
                file=sys.stderr,
            )
            return 0
    print(
        f"install_browser: installed {', '.join(PACKAGES)}"
        if found()
        else "install_browser: installed, but chromium/chromedriver are still not on PATH"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
