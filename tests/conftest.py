"""Shared test helpers: sample events from events/, and the embedded AWS.

``load_event(name)`` is the one way tests read events/ (the same files feed
``sam local invoke -e`` and ``proxymx invoke``). The ``aws`` fixture enters the embedded AWS
(moto in-process, fake credentials, us-east-1) and forgets cached clients and settings on
both sides.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVENTS_DIR = ROOT / "events"
EXPECTED_MANIFEST = EVENTS_DIR / "expected.json"


def load_event(name: str) -> dict[str, Any]:
    """A sample event from events/ (``name`` with or without ``.json``), as a fresh dict."""
    path = EVENTS_DIR / (name if name.endswith(".json") else f"{name}.json")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def expected_events() -> dict[str, dict[str, Any]]:
    """events/expected.json: event file name -> {"rules": [...], "outcome": "..."}."""
    manifest: dict[str, dict[str, Any]] = json.loads(EXPECTED_MANIFEST.read_text(encoding="utf-8"))["events"]
    return manifest


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
    from proxymx.local.embedded import embedded_aws

    settings.cache_clear()
    with embedded_aws() as world:
        yield world
    aws_clients.reset_clients()
    settings.cache_clear()
