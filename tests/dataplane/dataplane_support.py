"""Helpers shared by the data-plane tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from proxymx_tools.haproxy import LocalHaproxy, ProxyMode
from proxymx_tools.postfix import INSTALL_HINT, LocalPostfix, missing_tools


def _data_plane_problem() -> str | None:
    missing = missing_tools()
    if missing:
        return f"missing {' '.join(missing)}: {INSTALL_HINT}"
    if os.geteuid() != 0:
        return "the data-plane tests run Postfix as root: run them as root (CI does)"
    return None


def require_data_plane() -> None:
    """Fail under CI=true, skip elsewhere, when the data plane cannot run here."""
    problem = _data_plane_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and the data plane cannot run: {problem}", pytrace=False)
    pytest.skip(problem)


class Proxies:
    """Start HAProxy instances in front of a Postfix; all stopped by the fixture's finalizer."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[LocalHaproxy] = []

    def start(self, backend_port: int, mode: ProxyMode, backend_host: str = "127.0.0.1") -> LocalHaproxy:
        proxy = LocalHaproxy(self.root, backend_port, mode, backend_host=backend_host)
        self.started.append(proxy)
        return proxy.start()

    def stop_all(self) -> None:
        for proxy in self.started:
            proxy.stop()


def swaks(
    port: int,
    *,
    client: str = "127.0.0.1",
    subject: str = "proxymx test",
    timeout: int = 10,
    to: str = "someone@example.com",
) -> subprocess.CompletedProcess[str]:
    """One message with swaks from ``client`` (a loopback address) to 127.0.0.1:port."""
    return subprocess.run(
        [
            "swaks",
            "--server", "127.0.0.1",
            "--port", str(port),
            "--local-interface", client,
            "--helo", "client.proxymx.test",
            "--from", "sender@example.net",
            "--to", to,
            "--header", f"Subject: {subject}",
            "--timeout", str(timeout),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout * 4 + 10,
    )  # fmt: skip


def server_replies(transcript: str) -> list[str]:
    """The SMTP reply codes swaks received (lines starting with ``<-`` or ``<**``)."""
    return re.findall(r"^<(?:-|\*\*) +(\d{3})", transcript, re.MULTILINE)


@contextmanager
def private_postfix(**options: object) -> Iterator[LocalPostfix]:
    """A created (not started) private Postfix; stopped and removed afterwards, even on failure.

    Not under pytest's tmp_path: that is private to root (0700) and the Postfix daemons, which
    run as the postfix user, must reach their queue and data directories.
    """
    root = Path(tempfile.mkdtemp(prefix="proxymx-postfix-"))
    root.chmod(0o755)
    postfix = LocalPostfix(root, **options)  # type: ignore[arg-type]
    try:
        postfix.create()
        yield postfix
    finally:
        postfix.stop()
        shutil.rmtree(root, ignore_errors=True)
