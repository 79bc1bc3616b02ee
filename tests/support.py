"""Shared test helpers (imported as ``support``; conftest.py files are not importable by name
when several exist, so helpers live here and fixtures in conftest).

``load_event(name)`` is the one way tests read events/ (the same files feed
``sam local invoke -e`` and ``proxymx invoke``); ``lambda_context()`` the one fake Lambda context;
``role_statements`` / ``role_actions`` the one reader of a function's IAM statements. The one
recorder of AWS calls is the tooling's (``proxymx_tools.recorder.CallRecorder``: the ``calls``
fixture).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from proxymx_tools.runner import LocalContext
from proxymx_tools.template import load_template

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


def load_app(name: str) -> ModuleType:
    path = ROOT / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"proxymx_test_{name}_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lambda_context(function: str = "ConfigureInstanceFunction") -> LocalContext:
    """The one fake Lambda context: the one ``proxymx invoke`` hands the handlers."""
    return LocalContext(function)


def emf_metrics(output: str) -> dict[str, list[float]]:
    """The metrics of every EMF record a handler printed: name -> values."""
    metrics: dict[str, list[float]] = {}
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            record = json.loads(line)
            for definition in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                metrics[definition["Name"]] = record[definition["Name"]]
    return metrics


# ----- IAM: a function's inline statements ----------------------------------------------------


def role_statements(function: str) -> dict[str, dict[str, Any]]:
    """Sid -> statement of the function's inline policies; an optional statement
    (``Fn::If [condition, statement, AWS::NoValue]``) counts as present."""
    found: dict[str, dict[str, Any]] = {}
    for policy in load_template()["Resources"][function]["Properties"]["Policies"]:
        for raw in policy["Statement"]:
            statement = raw["Fn::If"][1] if "Fn::If" in raw else raw
            found[statement["Sid"]] = statement
    return found


def statement_actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


# Statements for Lambda's SQS poller (the event source mapping), not for calls the code makes;
# tests/unit/test_launch_template.py pins them to LaunchQueue.
POLLER_SIDS = frozenset({"ConsumeLaunchQueueOnly"})


def role_actions(function: str, effect: str = "Allow") -> set[str]:
    """Every action the function's statements with this ``Effect`` name, for the calls its code
    makes (the SQS poller's statement is left out)."""
    return {
        action
        for sid, statement in role_statements(function).items()
        if statement["Effect"] == effect and sid not in POLLER_SIDS
        for action in statement_actions(statement)
    }


def start_cutover(
    world: Any,
    settings: Any,
    name: str,
    count: int,
    *,
    failing: int = 0,
    started_seconds_ago: int = 0,
) -> list[str]:
    """A Classic ELB ``name`` whose ``count`` unready fleet instances are being cut over (the first
    ``failing`` of them fail their document); the cutover started that long ago. Its status events
    wait in ``world.launch`` (drain them to deliver, or to lose them)."""
    from datetime import UTC, datetime, timedelta

    from proxymx.aws import Clients
    from proxymx.loadbalancer.cutover_flow import Cutovers
    from proxymx.loadbalancer.service import EnableProxyProtocol
    from proxymx_tools.embedded import ObedientDocument
    from proxymx_tools.seed import _create_classic, register_fleet_instances

    _create_classic(
        name, [{"Protocol": "TCP", "LoadBalancerPort": 25, "InstanceProtocol": "TCP", "InstancePort": 25}]
    )
    ids = register_fleet_instances(name, count)
    document = ObedientDocument(failing=frozenset(ids[:failing]))
    for instance_id in ids:
        world.launch.register_instance(instance_id)
        world.launch.script_outcome(document, instance_id)
    at = datetime.now(UTC) - timedelta(seconds=started_seconds_ago)
    clients = Clients()
    cutovers = Cutovers(settings, clients, now=lambda: at)
    result = EnableProxyProtocol(settings, clients, sleep=lambda _s: None, cutovers=cutovers).ensure_classic(
        name
    )
    assert "cutover started" in result.reason, result.reason
    return ids


def only_granted_by(function: str, *sids: str) -> set[str]:
    """The actions of the function's role granted by these statements and by no other (what a
    test that cannot exercise them, e.g. the notices without a topic, leaves out)."""
    statements = role_statements(function)
    theirs = {a for sid in sids for a in statement_actions(statements[sid])}
    others = {a for sid, s in statements.items() if sid not in sids for a in statement_actions(s)}
    return theirs - others


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and list indexes) into a JSON-like value: where the fuzz tests mutate an event."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found
