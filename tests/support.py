"""Shared test helpers: the sample events of events/ (imported as ``support``; conftest.py files
are not importable by name when several exist, so helpers live here and fixtures in conftest).

``load_event(name)`` is the one way tests read events/ (the same files feed
``sam local invoke -e`` and ``proxymx invoke``).
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

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


# ----- the launch flow on the embedded AWS ----------------------------------------------------

GROUP = "proxymx-mx-fleet"
HOOK = "proxymx-postfix-launch"
DOCUMENT = "proxymx-PostfixProxyProtocolDocument"
WRITES = {"SendCommand", "CompleteLifecycleAction", "RecordLifecycleActionHeartbeat", "Publish"}


def load_app(name: str) -> ModuleType:
    path = ROOT / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"proxymx_test_{name}_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Calls:
    """Every AWS call made through proxymx clients: (service, operation, params)."""

    made: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def observe(self, client: Any) -> None:
        service = client.meta.service_model.service_name

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            self.made.append((service, model.name, dict(params)))

        client.meta.events.register("provide-client-params", record)

    def of(self, operation: str) -> list[dict[str, Any]]:
        return [params for _, op, params in self.made if op == operation]

    @property
    def writes(self) -> list[str]:
        return [op for _, op, _ in self.made if op in WRITES]


@dataclass
class Context:
    function_name: str = "ConfigureInstance"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:proxymx-ConfigureInstance"
    aws_request_id: str = "req-1"


def emf_metrics(output: str) -> dict[str, list[float]]:
    """The metrics of every EMF record a handler printed: name -> values."""
    metrics: dict[str, list[float]] = {}
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            record = json.loads(line)
            for definition in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                metrics[definition["Name"]] = record[definition["Name"]]
    return metrics
