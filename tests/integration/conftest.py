"""Fixtures of the launch-flow integration tests (ConfigureInstance, CheckOutcome, Reconcile)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from proxymx import aws as aws_clients
from proxymx.config import settings
from proxymx_tools.embedded import STATE_TABLE_NAME, EmbeddedAws
from proxymx_tools.runner import reset_powertools_logger
from proxymx_tools.seed_launch import ensure_document, ensure_group
from support import DOCUMENT, GROUP, HOOK, Calls


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "proxymx")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Proxymx")
    monkeypatch.setenv("DOCUMENT_NAME", DOCUMENT)
    monkeypatch.setenv("STATE_TABLE", STATE_TABLE_NAME)
    settings.cache_clear()
    reset_powertools_logger("proxymx")
    yield
    settings.cache_clear()


@pytest.fixture
def world(aws: EmbeddedAws, env: None) -> EmbeddedAws:
    ensure_group(GROUP, HOOK)
    ensure_document(DOCUMENT)
    return aws


@pytest.fixture
def calls(world: EmbeddedAws) -> Iterator[Calls]:
    recorded = Calls()
    aws_clients.add_client_observer(recorded.observe)
    yield recorded
    aws_clients.remove_client_observer(recorded.observe)
