"""Shared fixtures (helpers such as ``load_event`` live in tests/support.py).

``aws`` enters the embedded AWS (moto in-process, fake credentials, us-east-1); ``clients`` are
fresh proxymx clients inside it, injected into the code under test; ``calls`` records every call
those clients make. Nothing is cached between tests: there is nothing to clear.
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


@pytest.fixture(autouse=True)
def _fresh_kill_switch() -> Iterator[None]:
    """The kill switch's verdict is cached per process for 30 s (proxymx.controls): no test may
    see another's (each embedded AWS has its own parameter)."""
    from proxymx import controls

    controls.forget()
    yield
    controls.forget()


@pytest.fixture
def aws() -> Iterator[Any]:
    """The embedded AWS (moto in-process)."""
    from proxymx_tools.embedded import embedded_aws

    with embedded_aws() as world:
        yield world


@pytest.fixture
def clients(aws: Any) -> Any:
    """proxymx clients on the embedded AWS, for the code under test (and the test's own calls)."""
    from proxymx.aws import Clients

    return Clients()


@pytest.fixture
def calls(aws: Any) -> Iterator[Any]:
    """Every AWS call made through proxymx clients from now on, in order."""
    from proxymx_tools.recorder import CallRecorder

    with CallRecorder() as recorder:
        yield recorder
