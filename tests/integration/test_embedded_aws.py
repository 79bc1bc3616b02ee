"""The embedded AWS's launch-flow extension: what it emulates, and that it keeps to the real API."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from proxymx.aws import Clients
from proxymx.config import load_settings
from proxymx.launch.configure import configure_batch
from proxymx.launch.outcome import check_outcome
from proxymx.models.lifecycle import parse_launch_batch
from proxymx.models.ssm import InvocationStatusChange, parse_ssm_event
from proxymx.postfix_summary import parse_summary
from proxymx_tools.embedded import (
    SSM_OUTPUT_LIMIT,
    CommandOutcome,
    EmbeddedAws,
    _validate_output,
    current_extension,
    to_sqs_batch,
)
from proxymx_tools.seed_launch import ensure_document, ensure_group, seed
from support import load_event

GROUP = "proxymx-mx-fleet"
HOOK = "proxymx-postfix-launch"
DOCUMENT = "proxymx-PostfixProxyProtocolDocument"


@pytest.fixture
def world(aws: EmbeddedAws) -> EmbeddedAws:
    ensure_group(GROUP, HOOK)
    ensure_document(DOCUMENT)
    return aws


def ssm() -> Any:
    """A proxymx SSM client on the current embedded AWS (the extension is attached to it)."""
    return Clients().ssm


def autoscaling() -> Any:
    return Clients().autoscaling


def send(instance_ids: list[str], **params: list[str]) -> str:
    return str(
        ssm().send_command(InstanceIds=instance_ids, DocumentName=DOCUMENT, Parameters=params)["Command"][
            "CommandId"
        ]
    )


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


# ----- Auto Scaling lifecycle actions
def test_launched_instances_wait_and_are_released_by_continue(world: EmbeddedAws) -> None:
    # Given two instances launched into a group with our hook
    first, second = (e["detail"]["EC2InstanceId"] for e in world.launch.launch_into_wait(GROUP, HOOK, 2))
    described = autoscaling().describe_auto_scaling_instances(InstanceIds=[first, second])[
        "AutoScalingInstances"
    ]
    # Then both are visible in Pending:Wait (moto alone would say InService)
    assert {item["LifecycleState"] for item in described} == {"Pending:Wait"}
    # When one is continued and the other abandoned
    autoscaling().complete_lifecycle_action(
        AutoScalingGroupName=GROUP, LifecycleHookName=HOOK, InstanceId=first, LifecycleActionResult="CONTINUE"
    )
    autoscaling().complete_lifecycle_action(
        AutoScalingGroupName=GROUP, LifecycleHookName=HOOK, InstanceId=second, LifecycleActionResult="ABANDON"
    )
    # Then the group shows one InService and one Terminating
    group = autoscaling().describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"][0]
    states = {item["InstanceId"]: item["LifecycleState"] for item in group["Instances"]}
    assert (states[first], states[second]) == ("InService", "Terminating")


def test_completing_twice_is_refused_like_aws_does(world: EmbeddedAws) -> None:
    (event,) = world.launch.launch_into_wait(GROUP, HOOK, 1)
    token = event["detail"]["LifecycleActionToken"]
    kwargs = {"AutoScalingGroupName": GROUP, "LifecycleHookName": HOOK, "LifecycleActionResult": "CONTINUE"}
    autoscaling().complete_lifecycle_action(LifecycleActionToken=token, **kwargs)
    with pytest.raises(ClientError) as exc:
        autoscaling().complete_lifecycle_action(LifecycleActionToken=token, **kwargs)
    assert error_code(exc) == "ValidationError"
    assert "No active Lifecycle Action" in str(exc.value)


def test_wrong_hook_is_refused(world: EmbeddedAws) -> None:
    instance = world.launch.launch_into_wait(GROUP, HOOK, 1)[0]["detail"]["EC2InstanceId"]
    with pytest.raises(ClientError) as exc:
        autoscaling().complete_lifecycle_action(
            AutoScalingGroupName=GROUP,
            LifecycleHookName="other",
            InstanceId=instance,
            LifecycleActionResult="CONTINUE",
        )
    assert error_code(exc) == "ValidationError"
    assert world.launch.lifecycle_state(instance) == "Pending:Wait"


def test_heartbeat_keeps_the_action_and_counts(world: EmbeddedAws) -> None:
    instance = world.launch.launch_into_wait(GROUP, HOOK, 1)[0]["detail"]["EC2InstanceId"]
    for _ in range(2):
        autoscaling().record_lifecycle_action_heartbeat(
            AutoScalingGroupName=GROUP, LifecycleHookName=HOOK, InstanceId=instance
        )
    assert world.launch.actions[instance].heartbeats == 2
    world.launch.expire_action(instance)
    with pytest.raises(ClientError):
        autoscaling().record_lifecycle_action_heartbeat(
            AutoScalingGroupName=GROUP, LifecycleHookName=HOOK, InstanceId=instance
        )


def test_warm_pool_continue_goes_to_the_pool(world: EmbeddedAws) -> None:
    instance = world.launch.launch_into_wait(GROUP, HOOK, 1, destination="WarmPool")[0]["detail"][
        "EC2InstanceId"
    ]
    autoscaling().complete_lifecycle_action(
        AutoScalingGroupName=GROUP,
        LifecycleHookName=HOOK,
        InstanceId=instance,
        LifecycleActionResult="CONTINUE",
    )
    assert world.launch.lifecycle_state(instance) == "Warmed:Stopped"


# ----- SSM registration
def test_late_agent_is_unknown_like_aws_until_n_polls(world: EmbeddedAws) -> None:
    # Given a late agent (registered after 2 polls) and one already Online
    world.launch.register_instance("i-0123456789abcdef0", online_after_polls=2)
    world.launch.register_instance("i-0123456789abcdef1")

    def poll(ids: list[str]) -> list[str] | str:
        try:
            page = ssm().describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": ids}])
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return [i["InstanceId"] for i in page["InstanceInformationList"]]

    # When the late one is polled in a filter, alone or with the Online one
    # Then, as AWS does, the whole call raises InvalidInstanceId while any id is unknown
    assert poll(["i-0123456789abcdef0", "i-0123456789abcdef1"]) == "InvalidInstanceId"
    assert poll(["i-0123456789abcdef0"]) == "InvalidInstanceId"
    # And it is listed once registered, the known one always
    assert poll(["i-0123456789abcdef1"]) == ["i-0123456789abcdef1"]
    both = ["i-0123456789abcdef0", "i-0123456789abcdef1"]
    assert poll(both) == both
    everyone = ssm().describe_instance_information()["InstanceInformationList"]
    assert {i["PingStatus"] for i in everyone} == {"Online"}
    assert len(everyone) == 2


def test_connection_lost_is_reported_and_filterable(world: EmbeddedAws) -> None:
    world.launch.register_instance("i-0123456789abcdef0", ping_status="ConnectionLost")
    online = ssm().describe_instance_information(Filters=[{"Key": "PingStatus", "Values": ["Online"]}])
    assert online["InstanceInformationList"] == []


def test_pages_of_instance_information(world: EmbeddedAws) -> None:
    for n in range(12):
        world.launch.register_instance(f"i-0123456789abcd{n:03x}")
    first = ssm().describe_instance_information(MaxResults=5)
    assert len(first["InstanceInformationList"]) == 5
    rest = ssm().describe_instance_information(MaxResults=50, NextToken=first["NextToken"])
    assert len(rest["InstanceInformationList"]) == 7


# ----- SendCommand and invocations
def test_send_command_targets_only_the_given_instances(world: EmbeddedAws) -> None:
    # Given three registered instances (moto alone would target every instance it knows)
    ids = [e["detail"]["EC2InstanceId"] for e in world.launch.launch_into_wait(GROUP, HOOK, 3)]
    # When the document is sent to one
    command_id = send(ids[:1])
    # Then only that one has an invocation
    invocations = ssm().list_command_invocations(CommandId=command_id)["CommandInvocations"]
    assert [i["InstanceId"] for i in invocations] == ids[:1]


def test_unregistered_instance_is_refused(world: EmbeddedAws) -> None:
    with pytest.raises(ClientError) as exc:
        send(["i-0123456789abcdef0"])
    assert error_code(exc) == "InvalidInstanceId"


def test_parameters_are_checked_against_the_documents_patterns(world: EmbeddedAws) -> None:
    ids = [e["detail"]["EC2InstanceId"] for e in world.launch.launch_into_wait(GROUP, HOOK, 1)]
    with pytest.raises(ClientError) as exc:
        send(ids, SmtpPorts=["25; rm -rf /"])
    assert error_code(exc) == "InvalidParameters"
    with pytest.raises(ClientError) as unknown:
        send(ids, Verbose=["true"])
    assert error_code(unknown) == "InvalidParameters"


def test_unknown_document_is_refused(world: EmbeddedAws) -> None:
    ids = [e["detail"]["EC2InstanceId"] for e in world.launch.launch_into_wait(GROUP, HOOK, 1)]
    with pytest.raises(ClientError) as exc:
        ssm().send_command(InstanceIds=ids, DocumentName="AWS-RunPatchBaseline")
    assert error_code(exc) == "InvalidDocument"


def test_more_than_50_instances_are_refused_as_the_service_model_says(world: EmbeddedAws) -> None:
    from proxymx.errors import PermanentAwsError
    from proxymx.launch.runcommand import RunCommand

    ids = [f"i-0123456789abc{n:04x}" for n in range(51)]
    for iid in ids:
        world.launch.register_instance(iid)
    # The service refuses it (botocore itself checks no maxima)...
    with pytest.raises(ClientError) as exc:
        ssm().send_command(InstanceIds=ids, DocumentName=DOCUMENT)
    assert error_code(exc) == "ValidationException"
    # ...and the adapter never sends it.
    with pytest.raises(PermanentAwsError, match="InstanceIds: 51 items, at most 50"):
        RunCommand(ssm()).send_command(
            ids, document_name=DOCUMENT, parameters={}, comment="proxymx", timeout_seconds=600
        )
    assert world.launch.sent_commands == []


def test_scripted_outcomes_per_instance_and_status_events(world: EmbeddedAws) -> None:
    # Given three instances scripted to succeed, fail and time out
    ids = [e["detail"]["EC2InstanceId"] for e in world.launch.launch_into_wait(GROUP, HOOK, 3)]
    world.launch.script_outcome(CommandOutcome.failed("bad master.cf"), ids[1])
    world.launch.script_outcome(CommandOutcome.timed_out(), ids[2])
    # When the document is sent to all three
    command_id = send(ids)
    # Then each invocation carries its outcome
    got = {iid: ssm().get_command_invocation(CommandId=command_id, InstanceId=iid) for iid in ids}
    assert [got[i]["Status"] for i in ids] == ["Success", "Failed", "TimedOut"]
    assert parse_summary(got[ids[0]]["StandardOutputContent"]) is not None
    assert got[ids[1]]["ResponseCode"] == 1
    assert "bad master.cf" in got[ids[1]]["StandardErrorContent"]
    # And the status events a real account would send are handed back, one per invocation
    events = world.launch.drain_status_events()
    assert world.launch.drain_status_events() == []
    parsed = [parse_ssm_event(e) for e in events]
    assert all(isinstance(p, InvocationStatusChange) for p in parsed)
    assert {(e["detail"]["instance-id"], e["detail"]["status"]) for e in events} == {
        (ids[0], "Success"),
        (ids[1], "Failed"),
        (ids[2], "TimedOut"),
    }
    # And list_command_invocations (missing from moto) agrees, with details
    listed = ssm().list_command_invocations(CommandId=command_id, Details=True)["CommandInvocations"]
    assert {i["InstanceId"]: i["CommandPlugins"][0]["ResponseCode"] for i in listed}[ids[1]] == 1


def test_agent_offline_makes_the_invocation_undeliverable(world: EmbeddedAws) -> None:
    ids = [e["detail"]["EC2InstanceId"] for e in world.launch.launch_into_wait(GROUP, HOOK, 1)]
    world.launch.set_ping_status(ids[0], "ConnectionLost")
    command_id = send(ids)
    invocation = ssm().get_command_invocation(CommandId=command_id, InstanceId=ids[0])
    # the API's Status has no Undeliverable: it says Failed, and the details say why
    assert (invocation["Status"], invocation["StatusDetails"]) == ("Failed", "Undeliverable")
    (listed,) = ssm().list_command_invocations(CommandId=command_id, Details=True)["CommandInvocations"]
    assert (listed["Status"], listed["StatusDetails"]) == ("Failed", "Undeliverable")
    assert world.launch.drain_status_events()[0]["detail"]["status"] == "Undeliverable"


def test_output_is_truncated_like_the_api(world: EmbeddedAws) -> None:
    ids = [e["detail"]["EC2InstanceId"] for e in world.launch.launch_into_wait(GROUP, HOOK, 1)]
    world.launch.script_outcome(CommandOutcome("Success", "x" * (SSM_OUTPUT_LIMIT + 100)))
    command_id = send(ids)
    invocation = ssm().get_command_invocation(CommandId=command_id, InstanceId=ids[0])
    assert len(invocation["StandardOutputContent"]) == SSM_OUTPUT_LIMIT


def test_invocation_can_be_late_to_show(world: EmbeddedAws) -> None:
    ids = [e["detail"]["EC2InstanceId"] for e in world.launch.launch_into_wait(GROUP, HOOK, 1)]
    world.launch.script_outcome(CommandOutcome("Success", "", hidden_reads=1))
    command_id = send(ids)
    with pytest.raises(ClientError) as exc:
        ssm().get_command_invocation(CommandId=command_id, InstanceId=ids[0])
    assert error_code(exc) == "InvocationDoesNotExist"
    assert ssm().get_command_invocation(CommandId=command_id, InstanceId=ids[0])["Status"] == "Success"


def test_an_answer_that_breaks_the_output_shape_is_caught() -> None:
    import boto3

    model = boto3.client("ssm", region_name="us-east-1").meta.service_model.operation_model(
        "DescribeInstanceInformation"
    )
    _validate_output(model, {"InstanceInformationList": [{"InstanceId": "i-0123456789abcdef0"}]})
    with pytest.raises(AssertionError, match="breaks the model"):
        _validate_output(model, {"InstanceInformationList": [{"PingStatus": 42}]})
    # botocore's validator skips enums; the extension does not
    with pytest.raises(AssertionError, match="PingStatus"):
        _validate_output(model, {"InstanceInformationList": [{"PingStatus": "Asleep"}]})


def test_the_extension_is_scoped_to_its_context() -> None:
    assert current_extension() is None


# ----- seeding for proxymx invoke
@pytest.mark.parametrize(
    "name",
    [
        "lifecycle-launch",
        "lifecycle-launch-warm-pool-into-pool",
        "lifecycle-launch-warm-pool-to-group",
        "lifecycle-out-of-scope",
        "malformed-lifecycle-missing-instance",
        "malformed-lifecycle-bad-instance-id",
        "malformed-lifecycle-missing-token",
        "ssm-status-success",
        "ssm-status-failed",
        "ssm-status-timedout",
        "ssm-status-foreign-document",
        "ssm-command-level",
        "malformed-ssm-bad-command-id",
        "malformed-ssm-missing-instance",
    ],
)
def test_every_sample_event_can_be_seeded(aws: EmbeddedAws, name: str) -> None:
    seed(load_event(name))


def test_seeded_launch_waits_with_the_events_token_and_is_online(aws: EmbeddedAws) -> None:
    event = load_event("lifecycle-launch")
    seed(event)
    instance = event["detail"]["EC2InstanceId"]
    described = autoscaling().describe_auto_scaling_instances(InstanceIds=[instance])["AutoScalingInstances"]
    assert described[0]["LifecycleState"] == "Pending:Wait"
    assert described[0]["AutoScalingGroupName"] == event["detail"]["AutoScalingGroupName"]
    assert aws.launch.actions[instance].token == event["detail"]["LifecycleActionToken"]
    info = ssm().describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [instance]}])
    assert info["InstanceInformationList"][0]["PingStatus"] == "Online"


@pytest.mark.parametrize(("name", "proves"), [("ssm-status-success", True), ("ssm-status-failed", False)])
def test_seeded_command_agrees_with_the_status_event(aws: EmbeddedAws, name: str, proves: bool) -> None:
    event = load_event(name)
    seed(event)
    detail = event["detail"]
    invocation = ssm().get_command_invocation(
        CommandId=detail["command-id"], InstanceId=detail["instance-id"]
    )
    assert invocation["Status"] == detail["status"]
    assert invocation["DocumentName"] == detail["document-name"]
    summary = parse_summary(invocation["StandardOutputContent"])
    assert summary is not None and summary.proves_configuration is proves


# ----- the real document
def _data_plane_missing() -> str | None:
    from proxymx_tools.postfix import missing_tools

    missing = missing_tools(("postconf", "postfix", "smtp-sink"))
    if missing:
        return f"needs {', '.join(missing)} (sudo apt-get install postfix)"
    if os.geteuid() != 0:
        return "needs root to run a private Postfix"
    return None


@pytest.fixture
def local_postfix() -> Iterator[Any]:
    reason = _data_plane_missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    import shutil
    import tempfile

    from proxymx_tools.postfix import LocalPostfix

    # Not under pytest's tmp_path (0700, root only): the Postfix daemons run as "postfix".
    root = Path(tempfile.mkdtemp(prefix="proxymx-postfix-"))
    root.chmod(0o755)
    postfix = LocalPostfix(root)
    try:
        yield postfix.create()
    finally:
        postfix.stop()
        shutil.rmtree(root, ignore_errors=True)


def _classic_sending_v1(clients: Clients, name: str, port: int) -> None:
    from proxymx.loadbalancer.plan import PROXY_POLICY_NAME

    listener = {"Protocol": "TCP", "LoadBalancerPort": port, "InstanceProtocol": "TCP", "InstancePort": port}
    clients.elb.create_load_balancer(
        LoadBalancerName=name, Listeners=[listener], AvailabilityZones=["us-east-1a"]
    )
    clients.elb.create_load_balancer_policy(
        LoadBalancerName=name,
        PolicyName=PROXY_POLICY_NAME,
        PolicyTypeName="ProxyProtocolPolicyType",
        PolicyAttributes=[{"AttributeName": "ProxyProtocol", "AttributeValue": "true"}],
    )
    clients.elb.set_load_balancer_policies_for_backend_server(
        LoadBalancerName=name, InstancePort=port, PolicyNames=[PROXY_POLICY_NAME]
    )


def test_real_document_runs_and_its_outcome_releases_the_instance(local_postfix: Any) -> None:
    # Given the embedded AWS running the document's real script against a private Postfix
    from proxymx_tools.embedded import embedded_aws

    settings = load_settings(
        {
            "SMTP_PORTS": str(local_postfix.smtp_port),
            "DOCUMENT_NAME": DOCUMENT,
            "UPSTREAM_PROXY_TIMEOUT": "1s",
        }
    )
    with embedded_aws(mail_config=local_postfix.config_dir) as world:
        ensure_group(GROUP, HOOK)
        ensure_document(DOCUMENT)
        clients = Clients()
        # And the group behind a Classic ELB that sends the header to that port: the launch is
        # configured for what its units send now (issue 7.4; with no unit it is proven plain)
        _classic_sending_v1(clients, "mx-real", local_postfix.smtp_port)
        clients.autoscaling.attach_load_balancers(AutoScalingGroupName=GROUP, LoadBalancerNames=["mx-real"])
        events = world.launch.launch_into_wait(GROUP, HOOK, 1)
        instance = events[0]["detail"]["EC2InstanceId"]
        # When ConfigureInstance sends the document and CheckOutcome reads the real result
        report = configure_batch(parse_launch_batch(to_sqs_batch(events)), settings, clients)
        assert report.retried == []
        (status_event,) = world.launch.drain_status_events()
        outcome = check_outcome(parse_ssm_event(status_event), settings, clients)
        # Then the script's real summary proved the configuration and the instance is InService
        invocation = ssm().get_command_invocation(
            CommandId=status_event["detail"]["command-id"], InstanceId=instance
        )
        assert invocation["Status"] == "Success", invocation["StandardErrorContent"]
        assert outcome.decision == "continued", outcome.reason
        assert world.launch.lifecycle_state(instance) == "InService"
        assert local_postfix.postconf("-h", "postscreen_upstream_proxy_protocol").strip() == "haproxy"
