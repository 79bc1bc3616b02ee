"""Shared fixtures (helpers such as ``load_event`` live in tests/support.py).

The ``aws`` fixture enters the embedded AWS
(moto in-process, fake credentials, us-east-1) and forgets cached clients and settings on
both sides.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never let a test reach a real account: fake credentials and a fixed region everywhere."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture
def aws() -> Iterator[Any]:
    """The embedded AWS (moto in-process); clients and settings caches reset around it."""
    from proxymx import aws as aws_clients
    from proxymx.config import settings
    from proxymx_tools.embedded import embedded_aws

    settings.cache_clear()
    with embedded_aws() as world:
        yield world
    aws_clients.reset_clients()
    settings.cache_clear()
