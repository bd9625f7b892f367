"""Headless Chromium for tests that check what a person sees: a serialized DOM or a PNG.

One invocation for the whole suite, with the flags that let Debian's Chromium run in a
container without a display, a sandbox, a GPU or network chatter of its own (no first-run
page, component updates or sync), and a fresh profile per run so no state leaks between
tests. Tests skip when `chromium_binary()` is None (`MISSING` says why).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
MISSING = "headless Chromium is not installed (Debian: apt-get install chromium)"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Containers often have a tiny /dev/shm; Chromium then crashes on larger pages.
    "--disable-dev-shm-usage",
)
# A safety net against a wedged browser, not a speed assertion.
TIMEOUT = 180


class ChromiumFailed(RuntimeError):
    """Chromium is missing or exited with an error (its stderr tail is in the message)."""


def chromium_binary() -> str | None:
    """Path of the first Chromium found on PATH, or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def run_chromium(*args: str) -> str:
    """Run headless Chromium with `args` and a throw-away profile; its stdout."""
    binary = chromium_binary()
    if binary is None:
        raise ChromiumFailed(MISSING)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        result = subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    if result.returncode != 0:
        raise ChromiumFailed(f"chromium exited with {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout


def dump_dom(url: str) -> str:
    """The DOM of `url` after its scripts ran, serialized as HTML."""
    return run_chromium("--dump-dom", url)


def screenshot(url: str, png: Path, size: tuple[int, int]) -> Path:
    """A `size` = (width, height) screenshot of `url` written to `png` (replaced if there)."""
    png = Path(png)
    png.unlink(missing_ok=True)
    width, height = size
    # Scrollbars would paint a strip that depends on the page's length, not its content.
    run_chromium(f"--screenshot={png}", f"--window-size={width},{height}", "--hide-scrollbars", url)
    if not png.is_file():
        raise ChromiumFailed(f"chromium exited cleanly but wrote no screenshot to {png}")
    return png
