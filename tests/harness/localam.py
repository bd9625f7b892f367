"""A throwaway Alertmanager for tests: Debian's `prometheus-alertmanager` on a free loopback
port, clustering off, storage in a directory of the caller's, stopped by pid afterwards."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.source.localprom import free_port

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
SKIP_REASON = "needs prometheus-alertmanager — sudo apt-get install -y prometheus-alertmanager"


@contextmanager
def local_alertmanager(config_text: str, workdir: Path, ready_timeout: float = 30) -> Iterator[str]:
    """Start Alertmanager with `config_text`; yields its base URL once `/-/ready` answers."""
    if ALERTMANAGER is None:
        raise RuntimeError(SKIP_REASON)
    config = workdir / "alertmanager.yml"
    config.write_text(config_text)
    log_path = workdir / "alertmanager.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={config}",
                f"--storage.path={workdir / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",  # a lone instance: no gossip port to collide on
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_ready(url, process, log_path, ready_timeout)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"alertmanager exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"alertmanager not ready after {timeout:g}s: {log.read_text()[-2000:]}")
