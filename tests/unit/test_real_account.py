"""What a real account enforces and moto forgives, read from template.yaml (issue 10)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from proxymx_tools.template import load_template
from support import DOCUMENT

TEMPLATE = load_template()
RES: dict[str, Any] = TEMPLATE["Resources"]
RUNTIME = Path(__file__).resolve().parents[2] / "layers" / "common" / "proxymx"

# The two constants of LaunchQueue's maxReceiveCount formula (template.yaml states it):
# the agent's budget to come Online, in HeartbeatTimeouts, and the receives throttling may cost.
AGENT_WAIT_HEARTBEATS = 2
THROTTLED_RECEIVE_ALLOWANCE = 5


def _configure_instance() -> dict[str, Any]:
    properties: dict[str, Any] = RES["ConfigureInstanceFunction"]["Properties"]
    return properties


def test_launch_queue_visibility_is_six_function_timeouts_plus_the_batching_window() -> None:
    # Given ConfigureInstance's timeout and its SQS batching window
    function = _configure_instance()
    window = RES["ConfigureInstanceLaunchQueueMapping"]["Properties"]["MaximumBatchingWindowInSeconds"]
    # When the queue's visibility timeout is read
    visibility = RES["LaunchQueue"]["Properties"]["VisibilityTimeout"]
    # Then it is at least what Lambda's SQS guidance asks, and not absurdly more (it is the retry pace)
    floor = 6 * function["Timeout"] + window
    assert floor <= visibility <= floor + 60


def test_max_receive_count_follows_the_hooks_heartbeat_budget() -> None:
    # Given the hook's HeartbeatTimeout and the queue's visibility timeout
    heartbeat = RES["LaunchLifecycleHook1"]["Properties"]["HeartbeatTimeout"]
    queue = RES["LaunchQueue"]["Properties"]
    # When maxReceiveCount is derived as template.yaml's comment states
    expected = (
        math.ceil(AGENT_WAIT_HEARTBEATS * heartbeat / queue["VisibilityTimeout"])
        + THROTTLED_RECEIVE_ALLOWANCE
    )
    # Then the template carries exactly that
    assert queue["RedrivePolicy"]["maxReceiveCount"] == expected
    # And every hook the template can create shares the same HeartbeatTimeout
    hooks = [r for r in RES.values() if r["Type"] == "AWS::AutoScaling::LifecycleHook"]
    assert hooks and {h["Properties"]["HeartbeatTimeout"] for h in hooks} == {heartbeat}


def test_the_document_keeps_its_name_across_updates() -> None:
    # Given the SSM document resource
    document = RES["PostfixProxyProtocolDocument"]["Properties"]
    # Then a content change is a new version of the same name, not a replacement
    assert document["UpdateMethod"] == "NewVersion"
    # And the name is per stack (no collision between stacks), and for the stack "proxymx" the
    # name the local tooling and the tests use
    name = document["Name"]["Fn::Sub"]
    assert "${AWS::StackName}" in name
    assert name.replace("${AWS::StackName}", "proxymx") == DOCUMENT


def _dashboard() -> tuple[dict[str, Any], dict[str, Any]]:
    """The dashboard body as JSON (its ${...} left as text) and the Sub's variables."""
    body, variables = RES["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    return json.loads(body), variables


def _dashboard_metrics() -> list[list[Any]]:
    body, _ = _dashboard()
    return [m for w in body["widgets"] for m in w["properties"]["metrics"]]


def test_the_dashboard_shows_every_flow_every_dlq_and_every_function() -> None:
    # Given the dashboard's metrics
    metrics = _dashboard_metrics()
    _, variables = _dashboard()
    # Then each DLQ's depth, and each function's errors and duration are on it
    dlqs = [r for r, v in RES.items() if v["Type"] == "AWS::SQS::Queue" and r.endswith("DLQ")]
    assert {variables[k]["Fn::GetAtt"][0] for k in variables} >= set(dlqs)
    functions = [r for r, v in RES.items() if v["Type"] == "AWS::Serverless::Function"]
    for function in functions:
        for metric in ("Errors", "Duration"):
            assert ["AWS/Lambda", metric, "FunctionName", f"${{{function}}}"] in [m[:4] for m in metrics]


def test_every_proxymx_metric_on_the_dashboard_is_emitted_by_the_code() -> None:
    # Given the proxymx metrics the dashboard plots
    plotted = {m[1] for m in _dashboard_metrics() if m[0] == "Proxymx"}
    # When the runtime package's source is read
    source = "\n".join(p.read_text() for p in RUNTIME.rglob("*.py"))
    # Then each is emitted somewhere (a renamed metric would leave an empty graph)
    assert plotted >= {"ProxyProtocolEnabled", "DriftRepaired", "InstancesConfigured", "ConfigurationFailed"}
    assert sorted(name for name in plotted if f'"{name}"' not in source) == []


def test_the_optional_trail_is_off_by_default_least_privilege_and_private() -> None:
    # Given the CreateTrail parameter and the three resources it guards
    assert TEMPLATE["Parameters"]["CreateTrail"]["Default"] == "false"
    trail, bucket, policy = (RES[r] for r in ("ManagementEventsTrail", "TrailBucket", "TrailBucketPolicy"))
    assert {trail["Condition"], bucket["Condition"], policy["Condition"]} == {"CreatesTrail"}
    # Then the trail logs this region's management events, with logging on
    props = trail["Properties"]
    assert props["IsLogging"] is True and props["IsMultiRegionTrail"] is False
    assert props["EventSelectors"] == [{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}]
    # And only that trail may write, only under this account's prefix
    trail_arn = (
        "arn:${AWS::Partition}:cloudtrail:${AWS::Region}:${AWS::AccountId}:trail/"
        + props["TrailName"]["Fn::Sub"]
    )
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    allows = [s for s in statements.values() if s["Effect"] == "Allow"]
    assert {s["Principal"]["Service"] for s in allows} == {"cloudtrail.amazonaws.com"}
    assert sorted(s["Action"] for s in allows) == ["s3:GetBucketAcl", "s3:PutObject"]
    for statement in allows:
        assert statement["Condition"]["StringEquals"]["aws:SourceArn"] == {"Fn::Sub": trail_arn}
    assert statements["CloudTrailWrite"]["Resource"] == {
        "Fn::Sub": "${TrailBucket.Arn}/AWSLogs/${AWS::AccountId}/*"
    }
    # And the bucket is private
    assert set(bucket["Properties"]["PublicAccessBlockConfiguration"].values()) == {True}
