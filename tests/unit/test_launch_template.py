"""The launch flow's part of template.yaml: least privilege, queue wiring, hook defaults, patterns."""

from __future__ import annotations

from typing import Any

import pytest
from proxymx_tools.eventpattern import matches
from proxymx_tools.template import load_template
from support import load_event, role_statements, statement_actions

TEMPLATE = load_template()
RES = TEMPLATE["Resources"]


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
    for sid, statement in role_statements(function).items():
        assert sid
        reads = ("Describe", "Get", "List")
        writes = {a for a in statement_actions(statement) if not a.split(":")[1].startswith(reads)}
        # A Deny grants nothing (Reconcile's DenyOptedOutResources is on "*" by design).
        if writes and statement["Effect"] == "Allow":
            assert statement["Resource"] != "*", f"{sid} writes on *"


def test_send_command_only_for_our_document_and_fleet_instances() -> None:
    statements = role_statements("ConfigureInstanceFunction")
    send = [s for s in statements.values() if "ssm:SendCommand" in statement_actions(s)]
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
    configure = role_statements("ConfigureInstanceFunction")
    completing = [
        sid for sid, s in configure.items() if "autoscaling:CompleteLifecycleAction" in statement_actions(s)
    ]
    assert completing == ["AbandonContradictedLaunchesFleetGroupsOnly"]
    abandon = configure["AbandonContradictedLaunchesFleetGroupsOnly"]
    assert abandon["Resource"] == configure["HeartbeatFleetGroupsOnly"]["Resource"]
    assert abandon["Condition"]["StringEquals"] == {"aws:ResourceTag/proxymx:fleet": {"Ref": "FleetTagValue"}}
    complete = role_statements("CheckOutcomeFunction")["CompleteFleetGroupsOnly"]
    assert statement_actions(complete) == {"autoscaling:CompleteLifecycleAction"}
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
    source = RES["ConfigureInstanceLaunchQueueMapping"]["Properties"]
    assert source["EventSourceArn"] == {"Fn::GetAtt": ["LaunchQueue", "Arn"]}
    assert source["FunctionName"] == {"Ref": "ConfigureInstanceFunction"}
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_only_launch_queue_may_be_consumed_no_sam_sqs_managed_policy() -> None:
    # Given ConfigureInstance's role as SAM will generate it
    function = RES["ConfigureInstanceFunction"]["Properties"]
    # Then no SAM SQS event attaches AWSLambdaSQSQueueExecutionRole (every queue of the account)
    events = function.get("Events") or {}
    assert not [e for e in events.values() if e.get("Type") == "SQS"]
    assert "AWSLambdaSQSQueueExecutionRole" not in str(function.get("Policies"))
    # And the poller's statement names LaunchQueue alone
    consume = role_statements("ConfigureInstanceFunction")["ConsumeLaunchQueueOnly"]
    assert statement_actions(consume) == {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
    assert consume["Resource"] == {"Fn::GetAtt": ["LaunchQueue", "Arn"]}


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
