"""CheckOutcome on the embedded AWS: SSM invocation status events -> CompleteLifecycleAction."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from proxymx import controls
from proxymx.aws import Clients
from proxymx.config import Settings, load_settings
from proxymx.errors import MalformedEvent, NotReadyYet
from proxymx.launch.context import encode_comment
from proxymx.launch.outcome import check_outcome
from proxymx.launch.plan import Invocation
from proxymx.launch.runcommand import RunCommand
from proxymx.loadbalancer.service import EnableProxyProtocol, cutovers_for
from proxymx.models.ssm import parse_ssm_event
from proxymx_tools.embedded import (
    ENABLED_PARAMETER_NAME,
    STATE_TABLE_NAME,
    CommandOutcome,
    EmbeddedAws,
    ObedientDocument,
    to_sqs_batch,
)
from proxymx_tools.recorder import CallRecorder
from proxymx_tools.seed import _V2World, register_fleet_instances
from proxymx_tools.seed_launch import ensure_group, seed
from support import DOCUMENT, GROUP, HOOK, lambda_context, load_app, load_event, role_actions, start_cutover

Handler = Callable[..., dict[str, Any]]


def _handler(name: str, settings: Settings, clients: Clients) -> Handler:
    """The function's handler, run as Lambda does, with the test's settings and clients injected
    (``config=`` runs it with other settings)."""
    app = load_app(name)

    def run(event: dict[str, Any], config: Settings | None = None) -> dict[str, Any]:
        result: dict[str, Any] = app.lambda_handler(
            event, lambda_context(name), settings=config or settings, clients=clients
        )
        return result

    return run


@pytest.fixture
def configure(powertools: None, settings: Settings, clients: Clients) -> Handler:
    return _handler("configure_instance", settings, clients)


@pytest.fixture
def check(powertools: None, settings: Settings, clients: Clients) -> Handler:
    return _handler("check_outcome", settings, clients)


def launch_and_configure(
    world: EmbeddedAws, configure: Handler, count: int = 1, config: Settings | None = None
) -> list[dict[str, Any]]:
    """Launch instances held by the hook, run ConfigureInstance, return the SSM status events."""
    events = world.launch.launch_into_wait(GROUP, HOOK, count)
    response = configure(to_sqs_batch(events), config)
    assert response["batchItemFailures"] == []
    return world.launch.drain_status_events()


def test_launch_command_success_continue_in_service(
    world: EmbeddedAws, calls: CallRecorder, configure: Handler, check: Handler, clients: Clients
) -> None:
    # Given a launched instance configured by the document (its summary proves it)
    (status_event,) = launch_and_configure(world, configure)
    instance = status_event["detail"]["instance-id"]
    assert status_event["detail"]["status"] == "Success"
    # When SSM's status event reaches CheckOutcome
    result = check(status_event)
    # Then the action is completed with CONTINUE and the instance goes InService
    assert result["decision"] == "continued"
    assert result["outcome"] == "changed"
    (completed,) = calls.of("complete_lifecycle_action")
    assert completed == {
        "AutoScalingGroupName": GROUP,
        "LifecycleHookName": HOOK,
        "InstanceId": instance,
        "LifecycleActionResult": "CONTINUE",
    }
    state = clients.autoscaling.describe_auto_scaling_instances(InstanceIds=[instance])
    assert state["AutoScalingInstances"][0]["LifecycleState"] == "InService"


@pytest.mark.parametrize(
    "case",
    [
        (CommandOutcome.failed("Postfix 3.4.13 is too old for PROXY v2"), "too old for PROXY v2"),
        (CommandOutcome.timed_out(), "timed out"),
        (CommandOutcome.undeliverable(), "could not be reached"),
        (CommandOutcome("Success", "done, no summary\n"), "no summary"),
    ],
)
def test_failure_and_timeout_abandon_with_the_reason(
    world: EmbeddedAws,
    calls: CallRecorder,
    configure: Handler,
    check: Handler,
    case: tuple[CommandOutcome, str],
) -> None:
    outcome, reason = case
    # Given the document fails on the instance
    world.launch.script_outcome(outcome)
    (status_event,) = launch_and_configure(world, configure)
    instance = status_event["detail"]["instance-id"]
    # When CheckOutcome reads it
    result = check(status_event)
    # Then the action is ABANDONed, with the reason, and the instance is on its way out
    assert result["decision"] == "abandoned"
    assert reason in result["reason"]
    assert calls.of("complete_lifecycle_action")[0]["LifecycleActionResult"] == "ABANDON"
    assert world.launch.lifecycle_state(instance) == "Terminating"


def test_failure_is_published_with_instance_reason_and_stderr_tail(
    world: EmbeddedAws, configure: Handler, check: Handler, clients: Clients
) -> None:
    # Given a notification topic with a queue subscribed to read what is published
    sns = clients.sns
    sqs = clients.client("sqs")
    topic = sns.create_topic(Name="proxymx-failures")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="operator")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    notifying = load_settings({"DOCUMENT_NAME": DOCUMENT, "NOTIFICATION_TOPIC_ARN": topic})
    world.launch.script_outcome(CommandOutcome.failed("postfix check: fatal: bad master.cf"))
    (status_event,) = launch_and_configure(world, configure)
    # When CheckOutcome abandons the instance
    result = check(status_event, notifying)
    # Then the operator gets the instance, the reason and the tail of stderr
    assert result["notified"] is True
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    body = messages[0]["Body"]
    assert status_event["detail"]["instance-id"] in body
    assert "bad master.cf" in body
    assert "rolled back main.cf and master.cf" in body


def test_completed_or_expired_action_is_an_idempotent_success(
    world: EmbeddedAws, calls: CallRecorder, configure: Handler, check: Handler
) -> None:
    # Given an instance already released (the same status event delivered twice)
    first, second = launch_and_configure(world, configure, 2)
    assert check(first)["decision"] == "continued"
    # When the event comes again
    again = check(first)
    # Then it is a success that changes nothing
    assert again["decision"] == "already-over"
    assert again["outcome"] == "compliant"
    # And an action that expired meanwhile (heartbeat timeout) is the same
    world.launch.expire_action(second["detail"]["instance-id"])
    expired = check(second)
    assert expired["decision"] == "already-over"
    assert world.launch.lifecycle_state(second["detail"]["instance-id"]) == "Terminating"


def test_invocation_not_visible_yet_is_read_again(
    world: EmbeddedAws, configure: Handler, settings: Settings, clients: Clients
) -> None:
    # Given SSM answers InvocationDoesNotExist twice right after the status event
    world.launch.script_outcome(CommandOutcome("Success", CommandOutcome.configured().stdout, hidden_reads=2))
    (status_event,) = launch_and_configure(world, configure)
    pauses: list[float] = []
    # When CheckOutcome reads it
    report = check_outcome(parse_ssm_event(status_event), settings, clients, sleep=pauses.append)
    # Then it waited briefly, twice, and decided
    assert report.decision == "continued"
    assert len(pauses) == 2


def test_invocation_that_never_shows_fails_for_a_later_retry(
    world: EmbeddedAws, configure: Handler, settings: Settings, clients: Clients
) -> None:
    world.launch.script_outcome(
        CommandOutcome("Success", CommandOutcome.configured().stdout, hidden_reads=10)
    )
    (status_event,) = launch_and_configure(world, configure)
    with pytest.raises(NotReadyYet, match="InvocationDoesNotExist"):
        check_outcome(parse_ssm_event(status_event), settings, clients, sleep=lambda _: None)
    assert world.launch.lifecycle_state(status_event["detail"]["instance-id"]) == "Pending:Wait"


def test_success_event_ahead_of_a_lagging_read_is_retried_not_abandoned(
    world: EmbeddedAws,
    calls: CallRecorder,
    configure: Handler,
    clients: Clients,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a Success status event, while GetCommandInvocation still shows the run InProgress
    # with its output cut before the summary line (SSM's eventual consistency)
    (status_event,) = launch_and_configure(world, configure)
    instance = status_event["detail"]["instance-id"]
    lagging = Invocation(
        status_event["detail"]["command-id"],
        instance,
        DOCUMENT,
        "InProgress",
        "InProgress",
        -1,
        "proxymx: Postfix 3.7.11, configuration /etc/postfix\n",
        "",
        encode_comment(GROUP, HOOK),
    )
    monkeypatch.setattr(RunCommand, "get_invocation", lambda *args, **kwargs: lagging)
    settings = load_settings({"DOCUMENT_NAME": DOCUMENT})
    # When CheckOutcome reads it
    with pytest.raises(NotReadyYet, match="InProgress"):
        check_outcome(parse_ssm_event(status_event), settings, clients, sleep=lambda _: None)
    # Then the healthy instance is not abandoned: the event is retried later
    assert calls.of("complete_lifecycle_action") == []
    assert world.launch.lifecycle_state(instance) == "Pending:Wait"


@pytest.mark.parametrize("name", ["ssm-status-foreign-document", "ssm-command-level"])
def test_foreign_document_and_command_level_events_are_ignored(
    world: EmbeddedAws, calls: CallRecorder, check: Handler, name: str
) -> None:
    result = check(load_event(name))
    assert result["outcome"] == "ignored"
    assert calls.calls == []


def test_non_terminal_status_is_ignored(world: EmbeddedAws, calls: CallRecorder, check: Handler) -> None:
    event = load_event("ssm-status-success")
    event["detail"]["status"] = "InProgress"
    assert check(event)["outcome"] == "ignored"
    assert calls.calls == []


@pytest.mark.parametrize("name", ["malformed-ssm-bad-command-id", "malformed-ssm-missing-instance"])
def test_malformed_status_event_is_rejected_with_no_aws_call(
    world: EmbeddedAws, calls: CallRecorder, check: Handler, name: str
) -> None:
    with pytest.raises(MalformedEvent, match=r"detail\."):
        check(load_event(name))
    assert calls.calls == []


def test_hook_default_leaves_the_failed_instance_to_the_hook(
    world: EmbeddedAws, calls: CallRecorder, configure: Handler, check: Handler
) -> None:
    hook_default = load_settings({"DOCUMENT_NAME": DOCUMENT, "FAILURE_RESULT": "HOOK_DEFAULT"})
    world.launch.script_outcome(CommandOutcome.failed())
    (status_event,) = launch_and_configure(world, configure)
    result = check(status_event, hook_default)
    assert result["decision"] == "left-to-hook-default"
    assert calls.of("complete_lifecycle_action") == []
    assert world.launch.lifecycle_state(status_event["detail"]["instance-id"]) == "Pending:Wait"


def test_dry_run_never_shrinks_the_fleet(
    world: EmbeddedAws, calls: CallRecorder, configure: Handler, clients: Clients
) -> None:
    dry_run = load_settings({"DOCUMENT_NAME": DOCUMENT, "DRY_RUN": "true"})
    world.launch.script_outcome(CommandOutcome.configured(result="dry-run"))
    (status_event,) = launch_and_configure(world, configure, config=dry_run)
    report = check_outcome(parse_ssm_event(status_event), dry_run, clients, sleep=lambda _: None)
    assert report.action == "CONTINUE"
    assert report.decision == "continued"
    assert "dry_run" in report.reason or "dry-run" in report.reason
    assert world.launch.lifecycle_state(status_event["detail"]["instance-id"]) == "InService"
    # And the alarm that says instances were abandoned is not fed by a released instance
    names = [metric.name for metric in report.metrics()]
    assert "ConfigurationFailed" not in names
    assert "DryRunReleased" in names


def test_context_is_found_without_the_comment(
    world: EmbeddedAws, calls: CallRecorder, configure: Handler, check: Handler
) -> None:
    # Given a command whose comment could not carry group and hook (names too long)
    long_group = "g" * 90
    ensure_group(long_group, HOOK)
    events = world.launch.launch_into_wait(long_group, HOOK, 1)
    configure(to_sqs_batch(events))
    (status_event,) = world.launch.drain_status_events()
    # When CheckOutcome handles its status event
    result = check(status_event)
    # Then it found the group and hook by looking them up, and released the instance
    assert result["decision"] == "continued"
    assert result["group_name"] == long_group
    assert len(calls.of("describe_lifecycle_hooks")) == 1


@pytest.mark.parametrize(
    ("name", "decision", "action"),
    [
        ("ssm-status-success", "continued", "CONTINUE"),
        ("ssm-status-failed", "abandoned", "ABANDON"),
        ("ssm-status-timedout", "abandoned", "ABANDON"),
    ],
)
def test_sample_status_events_on_their_seeded_world(
    world: EmbeddedAws, check: Handler, name: str, decision: str, action: str
) -> None:
    # Given the world proxymx invoke seeds for the sample event
    event = load_event(name)
    seed(event)
    # When it is handled
    result = check(event)
    # Then the decision agrees with the event's status
    assert (result["decision"], result["action"]) == (decision, action)
    assert json.dumps(result)  # the --json report can carry it


def test_every_call_each_function_makes_is_granted_by_its_role(
    world: EmbeddedAws, calls: CallRecorder, configure: Handler, check: Handler, clients: Clients
) -> None:
    # Given the widest paths: a late agent with a heartbeat, a failure published to SNS, and a
    # command whose comment could not carry the context
    topic = clients.sns.create_topic(Name="proxymx-failures")["TopicArn"]
    # (the kill switch as the template passes it: a cutover's switch and revert ask it)
    notifying = load_settings(
        {
            "DOCUMENT_NAME": DOCUMENT,
            "NOTIFICATION_TOPIC_ARN": topic,
            "STATE_TABLE": STATE_TABLE_NAME,
            "ENABLED_PARAMETER": ENABLED_PARAMETER_NAME,
        }
    )
    long_group = "g" * 90
    ensure_group(long_group, HOOK)
    world.launch.script_outcome(CommandOutcome.failed())
    late = world.launch.launch_into_wait(long_group, HOOK, 1, online_after_polls=1)
    late[0]["time"] = "2020-01-01T00:00:00Z"
    batch = to_sqs_batch(late)
    calls.calls.clear()
    configure(batch, notifying)
    configure(batch, notifying)
    configure_calls = calls.iam_actions
    calls.calls.clear()
    for status_event in world.launch.drain_status_events():
        check(status_event, notifying)
    check_calls = calls.iam_actions
    # And a launch whose group's load balancers contradict each other (Classic sends on 25, an
    # NLB target group on 25 does not): ABANDONed after reading both

    ensure_group("g-conflict", HOOK)
    elb = clients.elb
    elb.create_load_balancer(
        LoadBalancerName="mx-proxy",
        Listeners=[
            {"Protocol": "TCP", "LoadBalancerPort": 25, "InstanceProtocol": "TCP", "InstancePort": 25}
        ],
        AvailabilityZones=["us-east-1a"],
    )
    elb.create_load_balancer_policy(
        LoadBalancerName="mx-proxy",
        PolicyName="proxymx-ProxyProtocol",
        PolicyTypeName="ProxyProtocolPolicyType",
        PolicyAttributes=[{"AttributeName": "ProxyProtocol", "AttributeValue": "true"}],
    )
    elb.set_load_balancer_policies_for_backend_server(
        LoadBalancerName="mx-proxy", InstancePort=25, PolicyNames=["proxymx-ProxyProtocol"]
    )
    v2 = _V2World()
    tg = v2.target_group("mx-plain", "TCP", 25)
    v2.listener(v2.load_balancer("mx-nlb"), "TCP", 25, tg)
    asg = clients.autoscaling
    asg.attach_load_balancers(AutoScalingGroupName="g-conflict", LoadBalancerNames=["mx-proxy"])
    asg.attach_load_balancer_target_groups(AutoScalingGroupName="g-conflict", TargetGroupARNs=[tg])
    calls.calls.clear()
    configure(to_sqs_batch(world.launch.launch_into_wait("g-conflict", HOOK, 1)), notifying)
    configure_calls |= calls.iam_actions
    calls.calls.clear()
    # And a proven launch, whose readiness is recorded on the instance
    world.launch.script_outcome(CommandOutcome.configured())
    configure(to_sqs_batch(world.launch.launch_into_wait(GROUP, HOOK, 1)), notifying)
    configure_calls |= calls.iam_actions
    calls.calls.clear()
    for status_event in world.launch.drain_status_events():
        check(status_event, notifying)
    check_calls |= calls.iam_actions
    # And cutovers (issue 7.3): a Classic ELB switched at its last proof, an NLB target group
    # switched the same way, and one whose failing target reverts the other (SNS, SendCommand)
    header_always = replace(notifying, proxy_protocol_when_client_ip_preserved=True, max_cutovers_in_flight=3)
    start_cutover(world, header_always, "mx-cutover", 2)
    start_cutover(world, header_always, "mx-failing", 2, failing=1)
    v2 = _V2World()
    cut_tg = v2.target_group("mx-cut", "TCP", 25)
    cut_nlb = v2.load_balancer("mx-cut-nlb")
    v2.listener(cut_nlb, "TCP", 25, cut_tg)
    behind = register_fleet_instances("mx-cutover", 1)  # any fleet instance; registered below
    world.launch.register_instance(behind[0])
    world.launch.script_outcome(ObedientDocument(), behind[0])
    v2.elbv2.register_targets(TargetGroupArn=cut_tg, Targets=[{"Id": behind[0]}])
    EnableProxyProtocol(
        header_always, clients, sleep=lambda _s: None, cutovers=cutovers_for(header_always, clients)
    ).ensure_load_balancer_v2(cut_nlb)
    calls.calls.clear()
    # (CheckOutcome runs in its own process: the kill switch's cached verdict is not its own)
    controls.forget()
    while events := world.launch.drain_status_events():
        for status_event in events:
            check(status_event, header_always)
    check_calls |= calls.iam_actions
    assert "elasticloadbalancing:SetLoadBalancerPoliciesForBackendServer" in check_calls
    assert "elasticloadbalancing:ModifyTargetGroupAttributes" in check_calls
    assert "ssm:SendCommand" in check_calls
    # Then each function's role grants exactly what it used
    assert configure_calls == role_actions("ConfigureInstanceFunction")
    assert check_calls == role_actions("CheckOutcomeFunction")


def test_an_operators_run_on_the_in_service_fleet_completes_nothing(
    world: EmbeddedAws, calls: CallRecorder, check: Handler, clients: Clients
) -> None:
    # Given an instance already InService, and an operator running our document on it by hand
    # (the fleet-first cutover in docs/postfix.md), where it fails
    (launch,) = world.launch.launch_into_wait(GROUP, HOOK, 1)
    instance = launch["detail"]["EC2InstanceId"]
    clients.autoscaling.complete_lifecycle_action(
        AutoScalingGroupName=GROUP,
        LifecycleHookName=HOOK,
        InstanceId=instance,
        LifecycleActionResult="CONTINUE",
    )
    world.launch.script_outcome(CommandOutcome.failed("postfix check failed"))
    clients.ssm.send_command(InstanceIds=[instance], DocumentName=DOCUMENT, Comment="cutover")
    (status_event,) = world.launch.drain_status_events()
    completions = len(calls.of("complete_lifecycle_action"))  # the test's own, above
    # When its status event reaches CheckOutcome
    result = check(status_event)
    # Then no lifecycle action is touched and no instance is counted as abandoned
    assert result["outcome"] == "ignored"
    assert len(calls.of("complete_lifecycle_action")) == completions
    assert world.launch.lifecycle_state(instance) == "InService"


def test_a_group_out_of_scope_is_not_completed(
    world: EmbeddedAws, calls: CallRecorder, configure: Handler, check: Handler
) -> None:
    # Given a command sent for the group, and then the scope narrowed to another group
    (status_event,) = launch_and_configure(world, configure)
    narrowed = load_settings({"DOCUMENT_NAME": DOCUMENT, "LAUNCH_GROUP_NAMES": "another-fleet"})
    # When its status event reaches CheckOutcome
    result = check(status_event, narrowed)
    # Then it is ignored: CompleteLifecycleAction only on the groups in scope
    assert result["outcome"] == "ignored"
    assert "out of scope" in result["reason"]
    assert calls.of("complete_lifecycle_action") == []


def test_an_invocation_of_the_previous_document_version_is_still_judged(
    world: EmbeddedAws, calls: CallRecorder, clients: Clients, configure: Handler, check: Handler
) -> None:
    # Given a launch configured with the document's default version (version 1)
    (status_event,) = launch_and_configure(world, configure)
    (sent,) = calls.of("send_command")
    assert sent["DocumentName"] == DOCUMENT
    assert sent["DocumentVersion"] == "$DEFAULT"
    # And a stack update meanwhile made a new version the default (UpdateMethod: NewVersion)
    ssm = clients.ssm
    before = ssm.describe_document(Name=DOCUMENT)["Document"]
    content = json.loads(ssm.get_document(Name=DOCUMENT, DocumentVersion="1")["Content"])
    content["description"] = "proxymx: the next version"
    updated = ssm.update_document(
        Name=DOCUMENT, Content=json.dumps(content), DocumentVersion="$LATEST", DocumentFormat="JSON"
    )["DocumentDescription"]
    ssm.update_document_default_version(Name=DOCUMENT, DocumentVersion=updated["DocumentVersion"])
    assert ssm.describe_document(Name=DOCUMENT)["Document"]["DefaultVersion"] != before["DefaultVersion"]
    # When the status event of the command sent under the previous version arrives
    # (the same document-name: the name is fixed, only the version moved on)
    assert status_event["detail"]["document-name"] == DOCUMENT
    result = check(status_event)
    # Then it is judged like any other: CONTINUE
    assert result["decision"] == "continued"
    (completed,) = calls.of("complete_lifecycle_action")
    assert completed["LifecycleActionResult"] == "CONTINUE"


def test_a_proven_launch_is_tagged_ready_before_it_is_released(
    world: EmbeddedAws, calls: CallRecorder, configure: Handler, check: Handler, clients: Clients
) -> None:
    # Given a launch whose document proves the configuration (behind a unit that sends v1 on 25,
    # so that the document is run with Mode=configure)
    world.launch.script_outcome(CommandOutcome.configured())
    (launch,) = world.launch.launch_into_wait(GROUP, HOOK, 1)
    configure(to_sqs_batch([launch]))
    (status_event,) = world.launch.drain_status_events()
    calls.calls.clear()
    # When CheckOutcome handles it
    result = check(status_event)
    # Then the instance carries what was proven, written BEFORE the lifecycle action completed
    instance = launch["detail"]["EC2InstanceId"]
    tags = clients.ec2.describe_tags(
        Filters=[
            {"Name": "resource-id", "Values": [instance]},
            {"Name": "key", "Values": ["proxymx:proxy-protocol"]},
        ]
    )["Tags"]
    assert [t["Value"] for t in tags] == [result["readiness_tag"]]
    assert result["readiness_tag"].startswith("ready;ports=25;v=any;doc=")
    ops = [call.operation for call in calls.calls]
    assert ops.index("create_tags") < ops.index("complete_lifecycle_action")


def test_a_failed_run_records_no_readiness(world: EmbeddedAws, configure: Handler, check: Handler) -> None:
    world.launch.script_outcome(CommandOutcome.failed())
    (launch,) = world.launch.launch_into_wait(GROUP, HOOK, 1)
    configure(to_sqs_batch([launch]))
    (status_event,) = world.launch.drain_status_events()
    result = check(status_event)
    assert (result["action"], result["readiness_tag"]) == ("ABANDON", None)
