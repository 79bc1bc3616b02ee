"""Data-plane fixtures: real Postfix, HAProxy, swaks, smtp-source/smtp-sink, on loopback only.

Under ``CI=true`` a missing tool (or not running as root) FAILS every data-plane test: CI must
prove the data plane. Elsewhere the tests skip with one line saying how to get the tools.
Every process a fixture starts is stopped by its finalizer, even when the test fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dataplane_support import Proxies, private_postfix, require_data_plane
from proxymx_tools.postfix import LocalPostfix


@pytest.fixture(autouse=True)
def _require_data_plane() -> None:
    require_data_plane()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/dataplane" in str(item.fspath):
            item.add_marker(pytest.mark.dataplane)


@pytest.fixture
def new_postfix() -> Iterator[LocalPostfix]:
    """A fresh Debian Postfix configuration, created but NOT started (the script may start it)."""
    with private_postfix() as postfix:
        yield postfix


@pytest.fixture
def running_postfix(new_postfix: LocalPostfix) -> LocalPostfix:
    """A fresh Debian Postfix configuration, running (smtpd on its loopback port)."""
    return new_postfix.start()


@pytest.fixture
def proxies(tmp_path: Path) -> Iterator[Proxies]:
    started = Proxies(tmp_path / "haproxy")
    try:
        yield started
    finally:
        started.stop_all()
