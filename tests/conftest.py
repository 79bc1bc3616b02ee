"""Shared fixtures (helpers such as ``load_event`` live in tests/support.py).

``aws`` enters the embedded AWS (moto in-process, fake credentials, us-east-1); ``clients`` are
fresh proxymx clients inside it, injected into the code under test; ``calls`` records every call
those clients make. Nothing is cached between tests: there is nothing to clear.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings

# Hypothesis profiles: "ci" (CI=true) runs the fuzz tests with at least 1,000 cases in all;
# "dev" (the default elsewhere) a quicker 300. HYPOTHESIS_PROFILE picks one by name.
settings.register_profile("ci", max_examples=1000)
settings.register_profile("dev", max_examples=300)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev")
)


def pytest_configure(config: pytest.Config) -> None:
    # One seed for the run's fuzz tests: --hypothesis-seed=N replays it, else a fresh one, printed
    # in the header (and in every fuzz failure) so that any run can be replayed. Under xdist
    # (`make test` runs -n 2) every worker takes the controller's seed.
    worker: dict[str, Any] | None = getattr(config, "workerinput", None)
    given = config.getoption("hypothesis_seed", default=None)
    if worker is not None and "fuzz_seed" in worker:
        config.stash[FUZZ_SEED] = int(worker["fuzz_seed"])
    else:
        config.stash[FUZZ_SEED] = int(given) if given is not None else random.randrange(2**32)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: hand the controller's fuzz seed to each worker."""
    node.workerinput["fuzz_seed"] = node.config.stash[FUZZ_SEED]


FUZZ_SEED = pytest.StashKey[int]()


def pytest_report_header(config: pytest.Config) -> str:
    return f"fuzz seed: {config.stash[FUZZ_SEED]} (replay: --hypothesis-seed={config.stash[FUZZ_SEED]})"


@pytest.fixture
def fuzz_seed(request: pytest.FixtureRequest) -> int:
    return request.config.stash[FUZZ_SEED]


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
