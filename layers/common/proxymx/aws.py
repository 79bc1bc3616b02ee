"""The one place that creates boto3 clients.

Adapters take an optional client; when none is given they call :func:`client`, which
creates it lazily (never at import time, so the embedded AWS and stubs always see it)
and caches it for warm invocations. Observers let the command line record every call
(``proxymx invoke --json``) and let the embedded AWS attach its extension, without
touching adapter code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from proxymx import __version__
from proxymx.budget import CallBudget, call_budget
from proxymx.config import settings

ClientObserver = Callable[[Any], None]

_clients: dict[tuple[str, str | None], Any] = {}
_observers: list[ClientObserver] = []

# Throttling and 5xx are retried by botocore's "standard" mode with bounded exponential
# backoff, within the function's budget (proxymx/budget.py); everything else surfaces at once as
# a ClientError for the adapter to translate.
USER_AGENT_EXTRA = f"proxymx/{__version__}"


def client(service: str, region: str | None = None) -> Any:
    key = (service, region)
    if key not in _clients:
        import boto3

        created = boto3.client(service, region_name=region, config=client_config())  # type: ignore[call-overload]
        for observer in _observers:
            observer(created)
        _clients[key] = created
    return _clients[key]


def client_config(budget: CallBudget | None = None) -> Any:
    """The one botocore Config of proxymx clients: the function's call budget (budget.py)."""
    from botocore.config import Config

    if budget is None:
        budget = call_budget(settings().function_timeout_seconds)
    return Config(
        # total_max_attempts counts the first attempt; Config's "max_attempts" counts only the
        # retries (measured: max_attempts=2 made 3 requests; tests/integration/test_call_budget.py).
        retries={"mode": "standard", "total_max_attempts": budget.attempts},
        user_agent_extra=USER_AGENT_EXTRA,
        connect_timeout=budget.connect_timeout,
        read_timeout=budget.read_timeout,
    )


def add_client_observer(observer: ClientObserver) -> None:
    """Call ``observer(client)`` for every client created from now on (clears the cache)."""
    _observers.append(observer)
    reset_clients()


def remove_client_observer(observer: ClientObserver) -> None:
    if observer in _observers:
        _observers.remove(observer)
    reset_clients()


def reset_clients() -> None:
    """Forget cached clients (tests, the command line switching backends)."""
    _clients.clear()
