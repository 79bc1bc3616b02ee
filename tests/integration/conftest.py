"""Fixtures of the launch-flow integration tests (ConfigureInstance, CheckOutcome, Reconcile)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from proxymx.config import Settings, load_settings
from proxymx_tools.embedded import ENABLED_PARAMETER_NAME, STATE_TABLE_NAME, EmbeddedAws
from proxymx_tools.runner import reset_powertools_logger
from proxymx_tools.seed_launch import ensure_document, ensure_group
from support import DOCUMENT, GROUP, HOOK


@pytest.fixture
def powertools(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Powertools' own variables, as the template sets them (read when a handler is imported);
    proxymx's settings are injected, never read from the environment."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "proxymx")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Proxymx")
    # Powertools binds the "proxymx" logger to the stdout of its first configuration (maybe
    # another test's): unbind it so that capsys sees this handler's logs.
    reset_powertools_logger("proxymx")
    yield


@pytest.fixture
def settings() -> Settings:
    """The launch flow's settings as the template gives them to its functions locally."""
    return load_settings(
        {
            "DOCUMENT_NAME": DOCUMENT,
            "STATE_TABLE": STATE_TABLE_NAME,
            "ENABLED_PARAMETER": ENABLED_PARAMETER_NAME,
        }
    )


@pytest.fixture
def world(aws: EmbeddedAws, powertools: None) -> EmbeddedAws:
    ensure_group(GROUP, HOOK)
    ensure_document(DOCUMENT)
    return aws
