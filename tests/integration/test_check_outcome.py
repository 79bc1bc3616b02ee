"""CheckOutcome on the embedded AWS: SSM invocation status events -> CompleteLifecycleAction."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest
from proxymx import aws as aws_clients
from proxymx.config import load_settings, settings
from proxymx.errors import MalformedEvent, NotReadyYet
from proxymx.launch import ssm as ssm_adapter
from proxymx.launch.context import encode_comment
from proxymx.launch.outcome import check_outcome
from proxymx.local.embedded import CommandOutcome, EmbeddedAws, to_sqs_batch
from proxymx.local.seed_launch import ensure_group, seed
from proxymx.models.ssm import parse_ssm_event
from support import DOCUMENT, GROUP, HOOK, Calls, Context, load_app, load_event


@pytest.fixture
def configure(env: None) -> ModuleType:
    return load_app("configure_instance")


@pytest.fixture
def check(env: None) -> ModuleType:
    return load_app("check_outcome")


def launch_and_configure(world: EmbeddedAws, configure: ModuleType, count: int = 1) -> list[dict[str, Any]]:
    """Launch instances held by the hook, run ConfigureInstance, return the SSM status events."""
    events = world.launch.launch_into_wait(GROUP, HOOK, count)
    response = configure.lambda_handler(to_sqs_batch(events), Context())
    assert response["batchItemFailures"] == []
    return world.launch.drain_status_events()


def test_launch_command_success_continue_in_service(
    world: EmbeddedAws, calls: Calls, configure: ModuleType, check: ModuleType
) -> None:
    # Given a launched instance configured by the document (its summary proves it)
    (status_event,) = launch_and_configure(world, configure)
    instance = status_event["detail"]["instance-id"]
    assert status_event["detail"]["status"] == "Success"
    # When SSM's status event reaches CheckOutcome
    result = check.lambda_handler(status_event, Context(function_name="CheckOutcome"))
    # Then the action is completed with CONTINUE and the instance goes InService
    assert result["decision"] == "continued"
    assert result["outcome"] == "changed"
    (completed,) = calls.of("CompleteLifecycleAction")
    assert completed == {
        "AutoScalingGroupName": GROUP,
        "LifecycleHookName": HOOK,
        "InstanceId": instance,
        "LifecycleActionResult": "CONTINUE",
    }
    state = aws_clients.client("autoscaling").describe_auto_scaling_instances(InstanceIds=[instance])
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
    calls: Calls,
    configure: ModuleType,
    check: ModuleType,
    case: tuple[CommandOutcome, str],
) -> None:
    outcome, reason = case
    # Given the document fails on the instance
    world.launch.script_outcome(outcome)
    (status_event,) = launch_and_configure(world, configure)
    instance = status_event["detail"]["instance-id"]
    # When CheckOutcome reads it
    result = check.lambda_handler(status_event, Context(function_name="CheckOutcome"))
    # Then the action is ABANDONed, with the reason, and the instance is on its way out
    assert result["decision"] == "abandoned"
    assert reason in result["reason"]
    assert calls.of("CompleteLifecycleAction")[0]["LifecycleActionResult"] == "ABANDON"
    assert world.launch.lifecycle_state(instance) == "Terminating"


def test_failure_is_published_with_instance_reason_and_stderr_tail(
    world: EmbeddedAws, configure: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a notification topic with a queue subscribed to read what is published
    sns = aws_clients.client("sns")
    sqs = aws_clients.client("sqs")
    topic = sns.create_topic(Name="proxymx-failures")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="operator")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    monkeypatch.setenv("NOTIFICATION_TOPIC_ARN", topic)
    settings.cache_clear()
    world.launch.script_outcome(CommandOutcome.failed("postfix check: fatal: bad master.cf"))
    (status_event,) = launch_and_configure(world, configure)
    # When CheckOutcome abandons the instance
    result = load_app("check_outcome").lambda_handler(status_event, Context(function_name="CheckOutcome"))
    # Then the operator gets the instance, the reason and the tail of stderr
    assert result["notified"] is True
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    body = messages[0]["Body"]
    assert status_event["detail"]["instance-id"] in body
    assert "bad master.cf" in body
    assert "rolled back main.cf and master.cf" in body


def test_completed_or_expired_action_is_an_idempotent_success(
    world: EmbeddedAws, calls: Calls, configure: ModuleType, check: ModuleType
) -> None:
    # Given an instance already released (the same status event delivered twice)
    first, second = launch_and_configure(world, configure, 2)
    assert check.lambda_handler(first, Context())["decision"] == "continued"
    # When the event comes again
    again = check.lambda_handler(first, Context())
    # Then it is a success that changes nothing
    assert again["decision"] == "already-over"
    assert again["outcome"] == "compliant"
    # And an action that expired meanwhile (heartbeat timeout) is the same
    world.launch.expire_action(second["detail"]["instance-id"])
    expired = check.lambda_handler(second, Context())
    assert expired["decision"] == "already-over"
    assert world.launch.lifecycle_state(second["detail"]["instance-id"]) == "Terminating"


def test_invocation_not_visible_yet_is_read_again(world: EmbeddedAws, configure: ModuleType) -> None:
    # Given SSM answers InvocationDoesNotExist twice right after the status event
    world.launch.script_outcome(CommandOutcome("Success", CommandOutcome.configured().stdout, hidden_reads=2))
    (status_event,) = launch_and_configure(world, configure)
    pauses: list[float] = []
    # When CheckOutcome reads it
    report = check_outcome(
        parse_ssm_event(status_event), load_settings({"DOCUMENT_NAME": DOCUMENT}), sleep=pauses.append
    )
    # Then it waited briefly, twice, and decided
    assert report.outcome == "continued"
    assert len(pauses) == 2


def test_invocation_that_never_shows_fails_for_a_later_retry(
    world: EmbeddedAws, configure: ModuleType
) -> None:
    world.launch.script_outcome(
        CommandOutcome("Success", CommandOutcome.configured().stdout, hidden_reads=10)
    )
    (status_event,) = launch_and_configure(world, configure)
    with pytest.raises(NotReadyYet, match="InvocationDoesNotExist"):
        check_outcome(
            parse_ssm_event(status_event), load_settings({"DOCUMENT_NAME": DOCUMENT}), sleep=lambda _: None
        )
    assert world.launch.lifecycle_state(status_event["detail"]["instance-id"]) == "Pending:Wait"


def test_success_event_ahead_of_a_lagging_read_is_retried_not_abandoned(
    world: EmbeddedAws, calls: Calls, configure: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a Success status event, while GetCommandInvocation still shows the run InProgress
    # with its output cut before the summary line (SSM's eventual consistency)
    (status_event,) = launch_and_configure(world, configure)
    instance = status_event["detail"]["instance-id"]
    lagging = ssm_adapter.Invocation(
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
    monkeypatch.setattr(ssm_adapter, "get_invocation", lambda *args, **kwargs: lagging)
    # When CheckOutcome reads it
    with pytest.raises(NotReadyYet, match="InProgress"):
        check_outcome(
            parse_ssm_event(status_event), load_settings({"DOCUMENT_NAME": DOCUMENT}), sleep=lambda _: None
        )
    # Then the healthy instance is not abandoned: the event is retried later
    assert calls.of("CompleteLifecycleAction") == []
    assert world.launch.lifecycle_state(instance) == "Pending:Wait"


@pytest.mark.parametrize("name", ["ssm-status-foreign-document", "ssm-command-level"])
def test_foreign_document_and_command_level_events_are_ignored(
    world: EmbeddedAws, calls: Calls, check: ModuleType, name: str
) -> None:
    result = check.lambda_handler(load_event(name), Context())
    assert result["outcome"] == "ignored"
    assert calls.made == []


def test_non_terminal_status_is_ignored(world: EmbeddedAws, calls: Calls, check: ModuleType) -> None:
    event = load_event("ssm-status-success")
    event["detail"]["status"] = "InProgress"
    assert check.lambda_handler(event, Context())["outcome"] == "ignored"
    assert calls.made == []


@pytest.mark.parametrize("name", ["malformed-ssm-bad-command-id", "malformed-ssm-missing-instance"])
def test_malformed_status_event_is_rejected_with_no_aws_call(
    world: EmbeddedAws, calls: Calls, check: ModuleType, name: str
) -> None:
    with pytest.raises(MalformedEvent, match=r"detail\."):
        check.lambda_handler(load_event(name), Context())
    assert calls.made == []


def test_hook_default_leaves_the_failed_instance_to_the_hook(
    world: EmbeddedAws, calls: Calls, configure: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAILURE_RESULT", "HOOK_DEFAULT")
    settings.cache_clear()
    world.launch.script_outcome(CommandOutcome.failed())
    (status_event,) = launch_and_configure(world, configure)
    result = load_app("check_outcome").lambda_handler(status_event, Context())
    assert result["decision"] == "left-to-hook-default"
    assert calls.of("CompleteLifecycleAction") == []
    assert world.launch.lifecycle_state(status_event["detail"]["instance-id"]) == "Pending:Wait"


def test_dry_run_never_shrinks_the_fleet(
    world: EmbeddedAws, calls: Calls, configure: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRY_RUN", "true")
    settings.cache_clear()
    world.launch.script_outcome(CommandOutcome.configured(result="dry-run"))
    (status_event,) = launch_and_configure(world, configure)
    report = check_outcome(parse_ssm_event(status_event), settings(), sleep=lambda _: None)
    assert report.action == "CONTINUE"
    assert report.outcome == "continued"
    assert "dry_run" in report.reason or "dry-run" in report.reason
    assert world.launch.lifecycle_state(status_event["detail"]["instance-id"]) == "InService"
    # And the alarm that says instances were abandoned is not fed by a released instance
    names = [metric.name for metric in report.metrics]
    assert "ConfigurationFailed" not in names
    assert "DryRunReleased" in names


def test_context_is_found_without_the_comment(world: EmbeddedAws, calls: Calls, check: ModuleType) -> None:
    # Given a command whose comment could not carry group and hook (names too long)
    long_group = "g" * 90
    ensure_group(long_group, HOOK)
    events = world.launch.launch_into_wait(long_group, HOOK, 1)
    load_app("configure_instance").lambda_handler(to_sqs_batch(events), Context())
    (status_event,) = world.launch.drain_status_events()
    # When CheckOutcome handles its status event
    result = check.lambda_handler(status_event, Context())
    # Then it found the group and hook by looking them up, and released the instance
    assert result["decision"] == "continued"
    assert result["group_name"] == long_group
    assert len(calls.of("DescribeLifecycleHooks")) == 1


@pytest.mark.parametrize(
    ("name", "decision", "action"),
    [
        ("ssm-status-success", "continued", "CONTINUE"),
        ("ssm-status-failed", "abandoned", "ABANDON"),
        ("ssm-status-timedout", "abandoned", "ABANDON"),
    ],
)
def test_sample_status_events_on_their_seeded_world(
    world: EmbeddedAws, check: ModuleType, name: str, decision: str, action: str
) -> None:
    # Given the world proxymx invoke seeds for the sample event
    event = load_event(name)
    seed(event)
    # When it is handled
    result = check.lambda_handler(event, Context())
    # Then the decision agrees with the event's status
    assert (result["decision"], result["action"]) == (decision, action)
    assert json.dumps(result)  # the --json report can carry it


def _iam(service: str) -> str:
    """The IAM prefix of a boto3 service name (both ELB APIs are elasticloadbalancing)."""
    return "elasticloadbalancing" if service in ("elb", "elbv2") else service


def _role_actions(function: str) -> set[str]:
    from proxymx.template import load_template

    actions: set[str] = set()
    for policy in load_template()["Resources"][function]["Properties"]["Policies"]:
        for raw in policy["Statement"]:
            statement = raw["Fn::If"][1] if "Fn::If" in raw else raw
            action = statement["Action"]
            actions.update([action] if isinstance(action, str) else action)
    return actions


def test_every_call_each_function_makes_is_granted_by_its_role(
    world: EmbeddedAws, calls: Calls, configure: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the widest paths: a late agent with a heartbeat, a failure published to SNS, and a
    # command whose comment could not carry the context
    topic = aws_clients.client("sns").create_topic(Name="proxymx-failures")["TopicArn"]
    monkeypatch.setenv("NOTIFICATION_TOPIC_ARN", topic)
    settings.cache_clear()
    long_group = "g" * 90
    ensure_group(long_group, HOOK)
    world.launch.script_outcome(CommandOutcome.failed())
    late = world.launch.launch_into_wait(long_group, HOOK, 1, online_after_polls=1)
    late[0]["time"] = "2020-01-01T00:00:00Z"
    batch = to_sqs_batch(late)
    calls.made.clear()
    configure.lambda_handler(batch, Context())
    configure.lambda_handler(batch, Context())
    configure_calls = {f"{_iam(service)}:{op}" for service, op, _ in calls.made}
    calls.made.clear()
    for status_event in world.launch.drain_status_events():
        load_app("check_outcome").lambda_handler(status_event, Context())
    check_calls = {f"{_iam(service)}:{op}" for service, op, _ in calls.made}
    calls.made.clear()
    # And a launch whose group's load balancers contradict each other (Classic sends on 25, an
    # NLB target group on 25 does not): ABANDONed after reading both
    from proxymx.local.seed import _V2World

    ensure_group("g-conflict", HOOK)
    elb = aws_clients.client("elb")
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
    asg = aws_clients.client("autoscaling")
    asg.attach_load_balancers(AutoScalingGroupName="g-conflict", LoadBalancerNames=["mx-proxy"])
    asg.attach_load_balancer_target_groups(AutoScalingGroupName="g-conflict", TargetGroupARNs=[tg])
    calls.made.clear()
    configure.lambda_handler(to_sqs_batch(world.launch.launch_into_wait("g-conflict", HOOK, 1)), Context())
    configure_calls |= {f"{_iam(service)}:{op}" for service, op, _ in calls.made}
    calls.made.clear()
    # And a proven launch, whose readiness is recorded on the instance
    world.launch.script_outcome(CommandOutcome.configured())
    configure.lambda_handler(to_sqs_batch(world.launch.launch_into_wait(GROUP, HOOK, 1)), Context())
    configure_calls |= {f"{_iam(service)}:{op}" for service, op, _ in calls.made}
    calls.made.clear()
    for status_event in world.launch.drain_status_events():
        load_app("check_outcome").lambda_handler(status_event, Context())
    check_calls |= {f"{_iam(service)}:{op}" for service, op, _ in calls.made}
    # Then each function's role grants exactly what it used
    assert configure_calls == _role_actions("ConfigureInstanceFunction")
    assert check_calls == _role_actions("CheckOutcomeFunction")


def test_an_operators_run_on_the_in_service_fleet_completes_nothing(
    world: EmbeddedAws, calls: Calls, check: ModuleType
) -> None:
    # Given an instance already InService, and an operator running our document on it by hand
    # (the fleet-first cutover in docs/postfix.md), where it fails
    (launch,) = world.launch.launch_into_wait(GROUP, HOOK, 1)
    instance = launch["detail"]["EC2InstanceId"]
    aws_clients.client("autoscaling").complete_lifecycle_action(
        AutoScalingGroupName=GROUP,
        LifecycleHookName=HOOK,
        InstanceId=instance,
        LifecycleActionResult="CONTINUE",
    )
    world.launch.script_outcome(CommandOutcome.failed("postfix check failed"))
    aws_clients.client("ssm").send_command(InstanceIds=[instance], DocumentName=DOCUMENT, Comment="cutover")
    (status_event,) = world.launch.drain_status_events()
    completions = len(calls.of("CompleteLifecycleAction"))  # the test's own, above
    # When its status event reaches CheckOutcome
    result = check.lambda_handler(status_event, Context())
    # Then no lifecycle action is touched and no instance is counted as abandoned
    assert result["outcome"] == "ignored"
    assert len(calls.of("CompleteLifecycleAction")) == completions
    assert world.launch.lifecycle_state(instance) == "InService"


def test_a_group_out_of_scope_is_not_completed(
    world: EmbeddedAws, calls: Calls, configure: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a command sent for the group, and then the scope narrowed to another group
    (status_event,) = launch_and_configure(world, configure)
    monkeypatch.setenv("LAUNCH_GROUP_NAMES", "another-fleet")
    settings.cache_clear()
    # When its status event reaches CheckOutcome
    result = load_app("check_outcome").lambda_handler(status_event, Context())
    # Then it is ignored: CompleteLifecycleAction only on the groups in scope
    assert result["outcome"] == "ignored"
    assert "out of scope" in result["reason"]
    assert calls.of("CompleteLifecycleAction") == []


def test_a_proven_launch_is_tagged_ready_before_it_is_released(
    world: EmbeddedAws, calls: Calls, configure: ModuleType, check: ModuleType
) -> None:
    # Given a launch whose document proves the configuration
    (launch,) = world.launch.launch_into_wait(GROUP, HOOK, 1)
    configure.lambda_handler(to_sqs_batch([launch]), Context())
    (status_event,) = world.launch.drain_status_events()
    calls.made.clear()
    # When CheckOutcome handles it
    result = check.lambda_handler(status_event, Context())
    # Then the instance carries what was proven, written BEFORE the lifecycle action completed
    instance = launch["detail"]["EC2InstanceId"]
    tags = aws_clients.client("ec2").describe_tags(
        Filters=[
            {"Name": "resource-id", "Values": [instance]},
            {"Name": "key", "Values": ["proxymx:proxy-protocol"]},
        ]
    )["Tags"]
    assert [t["Value"] for t in tags] == [result["readiness_tag"]]
    assert result["readiness_tag"].startswith("ready;ports=25;v=any;doc=")
    ops = [op for _, op, _ in calls.made]
    assert ops.index("CreateTags") < ops.index("CompleteLifecycleAction")


def test_a_failed_run_records_no_readiness(
    world: EmbeddedAws, configure: ModuleType, check: ModuleType
) -> None:
    world.launch.script_outcome(CommandOutcome.failed())
    (launch,) = world.launch.launch_into_wait(GROUP, HOOK, 1)
    configure.lambda_handler(to_sqs_batch([launch]), Context())
    (status_event,) = world.launch.drain_status_events()
    result = check.lambda_handler(status_event, Context())
    assert (result["action"], result["readiness_tag"]) == ("ABANDON", None)
