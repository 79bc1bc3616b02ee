"""The launch flow's part of template.yaml: least privilege, queue wiring, hook defaults, patterns."""

from __future__ import annotations

from typing import Any

import pytest
from proxymx.eventpattern import matches
from proxymx.template import load_template
from support import load_event

TEMPLATE = load_template()
RES = TEMPLATE["Resources"]


def _statements(function: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for policy in RES[function]["Properties"]["Policies"]:
        for raw in policy["Statement"]:
            # An optional statement is [condition, statement, NoValue].
            statement = raw["Fn::If"][1] if "Fn::If" in raw else raw
            found[statement["Sid"]] = statement
    return found


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def _resolve_refs(pattern: Any) -> Any:
    """Parameter Refs to their defaults, resource Refs to the local stack name (as proxymx invoke)."""
    if isinstance(pattern, dict):
        if set(pattern) == {"Ref"}:
            name = pattern["Ref"]
            params = TEMPLATE["Parameters"]
            return params[name]["Default"] if name in params else f"proxymx-{name}"
        return {key: _resolve_refs(value) for key, value in pattern.items()}
    if isinstance(pattern, list):
        return [_resolve_refs(item) for item in pattern]
    return pattern


@pytest.mark.parametrize(
    "function", ["ConfigureInstanceFunction", "CheckOutcomeFunction", "ReconcileFunction"]
)
def test_every_statement_has_a_sid_and_writes_are_not_on_a_bare_star(function: str) -> None:
    for sid, statement in _statements(function).items():
        assert sid
        reads = ("Describe", "Get", "List")
        writes = {a for a in _actions(statement) if not a.split(":")[1].startswith(reads)}
        # A Deny grants nothing (Reconcile's DenyOptedOutResources is on "*" by design).
        if writes and statement["Effect"] == "Allow":
            assert statement["Resource"] != "*", f"{sid} writes on *"


def test_send_command_only_for_our_document_and_fleet_instances() -> None:
    statements = _statements("ConfigureInstanceFunction")
    send = [s for s in statements.values() if "ssm:SendCommand" in _actions(s)]
    assert len(send) == 2
    document = statements["SendOurDocumentOnly"]
    assert "PostfixProxyProtocolDocument" in str(document["Resource"])
    instances = statements["SendToFleetInstancesOnly"]
    assert ":instance/*" in str(instances["Resource"])
    assert instances["Condition"]["StringEquals"] == {
        "ssm:resourceTag/proxymx:fleet": {"Ref": "FleetTagValue"}
    }


def test_lifecycle_actions_are_completed_only_on_fleet_groups() -> None:
    # ConfigureInstance ABANDONs a launch whose load balancers contradict each other (issue 7.4):
    # only in its fleet-scoped lifecycle statement, never elsewhere in its role
    configure = _statements("ConfigureInstanceFunction")
    completing = [sid for sid, s in configure.items() if "autoscaling:CompleteLifecycleAction" in _actions(s)]
    assert completing == ["AbandonContradictedLaunchesFleetGroupsOnly"]
    abandon = configure["AbandonContradictedLaunchesFleetGroupsOnly"]
    assert abandon["Resource"] == configure["HeartbeatFleetGroupsOnly"]["Resource"]
    assert abandon["Condition"]["StringEquals"] == {"aws:ResourceTag/proxymx:fleet": {"Ref": "FleetTagValue"}}
    complete = _statements("CheckOutcomeFunction")["CompleteFleetGroupsOnly"]
    assert _actions(complete) == {"autoscaling:CompleteLifecycleAction"}
    assert complete["Condition"]["StringEquals"] == {
        "aws:ResourceTag/proxymx:fleet": {"Ref": "FleetTagValue"}
    }
    assert "autoScalingGroupName/" in str(complete["Resource"])


def test_launch_rule_feeds_the_queue_which_redrives_to_its_dlq() -> None:
    rule = RES["LaunchLifecycleRule"]["Properties"]
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["LaunchQueue", "Arn"]}
    queue = RES["LaunchQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["LaunchDLQ", "Arn"]}
    function = RES["ConfigureInstanceFunction"]["Properties"]
    assert queue["VisibilityTimeout"] >= function["Timeout"]
    source = function["Events"]["LaunchQueue"]["Properties"]
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_queue_accepts_messages_only_from_the_rule() -> None:
    statement = RES["LaunchQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Fn::GetAtt": ["LaunchLifecycleRule", "Arn"]
    }


def test_check_outcome_has_an_on_failure_destination() -> None:
    config = RES["CheckOutcomeFunction"]["Properties"]["EventInvokeConfig"]
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["CheckOutcomeDLQ", "Arn"]
    }


@pytest.mark.parametrize("hook", ["LaunchLifecycleHook1", "LaunchLifecycleHook2", "LaunchLifecycleHook3"])
def test_created_hooks_abandon_by_default(hook: str) -> None:
    props = RES[hook]["Properties"]
    # ABANDON, except in dry run (nothing is configured then; a dry run never shrinks the fleet)
    assert props["DefaultResult"] == {"Fn::If": ["IsDryRun", "CONTINUE", "ABANDON"]}
    assert props["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
    assert 300 <= props["HeartbeatTimeout"] <= 3600


def test_status_pattern_takes_terminal_statuses_of_our_document_only() -> None:
    pattern = _resolve_refs(
        RES["CheckOutcomeFunction"]["Properties"]["Events"]["SsmInvocationStatus"]["Properties"]["Pattern"]
    )
    event = load_event("ssm-status-success")
    assert matches(pattern, event)
    for status in ("InProgress", "Pending", "Delayed"):
        event["detail"]["status"] = status
        assert not matches(pattern, event)
    assert not matches(pattern, load_event("ssm-status-foreign-document"))
    assert not matches(pattern, load_event("ssm-command-level"))


def test_launch_pattern_takes_our_hook_only() -> None:
    pattern = _resolve_refs(RES["LaunchLifecycleRule"]["Properties"]["EventPattern"])
    assert matches(pattern, load_event("lifecycle-launch"))
    assert matches(pattern, load_event("lifecycle-launch-warm-pool-to-group"))
    assert not matches(pattern, load_event("lifecycle-out-of-scope"))
