"""ConfigureInstance on the embedded AWS: SQS batches of launch lifecycle events -> SendCommand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from proxymx.aws import Clients
from proxymx.config import Settings, load_settings
from proxymx.errors import MalformedEvent
from proxymx_tools.embedded import EmbeddedAws, to_sqs_batch
from proxymx_tools.recorder import CallRecorder
from support import DOCUMENT, GROUP, HOOK, lambda_context, load_app, load_event


@pytest.fixture
def app(powertools: None) -> ModuleType:
    # Loaded with Powertools' variables set: Powertools reads them when the module is imported.
    return load_app("configure_instance")


@pytest.fixture
def invoke(app: ModuleType, settings: Settings, clients: Clients) -> Any:
    """Run the handler as Lambda does, with the test's settings and clients injected; the ids of
    the records that must come back."""

    def run(batch: dict[str, Any], config: Settings | None = None) -> list[str]:
        response = app.lambda_handler(batch, lambda_context(), settings=config or settings, clients=clients)
        return [item["itemIdentifier"] for item in response["batchItemFailures"]]

    return run


def test_launch_sends_our_document_with_context_and_output_to_logs(
    world: EmbeddedAws, calls: CallRecorder, invoke: Any
) -> None:
    # Given one instance held in Pending:Wait by our hook, its agent Online
    events = world.launch.launch_into_wait(GROUP, HOOK, 1)
    instance = events[0]["detail"]["EC2InstanceId"]
    # When its lifecycle event arrives through the queue
    failures = invoke(to_sqs_batch(events))
    # Then the record succeeds and one command carries our document to that instance only
    assert failures == []
    (sent,) = calls.of("send_command")
    assert sent["InstanceIds"] == [instance]
    assert sent["DocumentName"] == DOCUMENT
    # (the group has no load balancer: nothing sends the header, so Postfix is proven plain --
    # issue 7.4; configuring it would answer 421 forever)
    assert sent["Parameters"] == {
        "SmtpPorts": ["25"],
        "ProxyProtocol": ["any"],
        "UpstreamProxyTimeout": ["5s"],
        "DryRun": ["false"],
        "Mode": ["revert"],
    }
    assert sent["CloudWatchOutputConfig"]["CloudWatchOutputEnabled"] is True
    assert 30 <= sent["TimeoutSeconds"] <= 3600
    assert json.loads(sent["Comment"].removeprefix("proxymx:")) == [GROUP, HOOK]
    # And the instance still waits: only CheckOutcome may release it
    assert world.launch.lifecycle_state(instance) == "Pending:Wait"


def test_120_instances_arriving_together_take_3_send_commands(
    world: EmbeddedAws, calls: CallRecorder, invoke: Any
) -> None:
    # Given 120 instances launched together
    events = world.launch.launch_into_wait(GROUP, HOOK, 120)
    # When their events arrive in one batch
    failures = invoke(to_sqs_batch(events))
    # Then at most 3 SendCommand calls, none over 50 instances, cover every instance once
    assert failures == []
    sends = calls.of("send_command")
    assert len(sends) <= 3
    assert all(len(send["InstanceIds"]) <= 50 for send in sends)
    covered = [iid for send in sends for iid in send["InstanceIds"]]
    assert sorted(covered) == sorted(e["detail"]["EC2InstanceId"] for e in events)


def test_late_agent_is_retried_by_the_queue_then_sent(
    world: EmbeddedAws, calls: CallRecorder, invoke: Any
) -> None:
    # Given an instance whose SSM agent is not registered yet
    events = world.launch.launch_into_wait(GROUP, HOOK, 1, online_after_polls=1)
    batch = to_sqs_batch(events)
    # When the event is first delivered
    first = invoke(batch)
    # Then the record fails (SQS brings it back later) and nothing is sent
    assert first == [batch["Records"][0]["messageId"]]
    assert calls.of("send_command") == []
    # When SQS redelivers it and the agent is Online by then
    batch["Records"][0]["attributes"]["ApproximateReceiveCount"] = "2"
    second = invoke(batch)
    # Then it is sent
    assert second == []
    assert len(calls.of("send_command")) == 1


def test_one_slow_agent_does_not_hold_back_its_batch_mates(
    world: EmbeddedAws, calls: CallRecorder, invoke: Any
) -> None:
    # Given 49 instances whose agents are Online and one whose agent is not registered yet,
    # in one batch (one InstanceIds filter of 50: AWS refuses the whole filter for that one)
    ready = world.launch.launch_into_wait(GROUP, HOOK, 49)
    slow = world.launch.launch_into_wait(GROUP, HOOK, 1, online_after_polls=100)
    batch = to_sqs_batch(ready + slow)
    # When the batch is handled
    failures = invoke(batch)
    # Then the 49 are sent at once, and only the slow one goes back to the queue
    (send,) = calls.of("send_command")
    assert sorted(send["InstanceIds"]) == sorted(e["detail"]["EC2InstanceId"] for e in ready)
    assert failures == [batch["Records"][-1]["messageId"]]
    # And the narrowing cost a bounded number of registration reads (bisection, not 50 calls)
    assert len(calls.of("describe_instance_information")) <= 2 * 6 + 1


def test_long_wait_records_a_lifecycle_heartbeat(
    world: EmbeddedAws, calls: CallRecorder, invoke: Any
) -> None:
    # Given an instance whose agent is still not Online five minutes after the launch event
    events = world.launch.launch_into_wait(GROUP, HOOK, 1, online_after_polls=5)
    old = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    events[0]["time"] = old
    instance = events[0]["detail"]["EC2InstanceId"]
    # When its event is retried
    failures = invoke(to_sqs_batch(events))
    # Then the record comes back later and the action's heartbeat was recorded
    assert len(failures) == 1
    assert len(calls.of("record_lifecycle_action_heartbeat")) == 1
    assert world.launch.actions[instance].heartbeats == 1


def test_vanished_instance_is_dropped_not_retried(
    world: EmbeddedAws, calls: CallRecorder, invoke: Any
) -> None:
    # Given an instance whose lifecycle action already ended (expired: default result applied)
    events = world.launch.launch_into_wait(GROUP, HOOK, 1)
    world.launch.expire_action(events[0]["detail"]["EC2InstanceId"])
    # And an event for an instance Auto Scaling never heard of (terminated and gone)
    gone = load_event("lifecycle-launch")
    gone["detail"]["EC2InstanceId"] = "i-0fedcba9876543210"
    # When both events arrive
    failures = invoke(to_sqs_batch([*events, gone]))
    # Then both records succeed (dropped, with a log line) and nothing is sent
    assert failures == []
    assert calls.of("send_command") == []


def test_malformed_record_fails_alone_without_sinking_the_batch(
    world: EmbeddedAws, calls: CallRecorder, invoke: Any
) -> None:
    # Given a batch with one good event and one malformed event
    good = world.launch.launch_into_wait(GROUP, HOOK, 1)
    batch = to_sqs_batch([*good, load_event("malformed-lifecycle-bad-instance-id")])
    # When it is processed
    failures = invoke(batch)
    # Then only the malformed record fails, and the good one is sent
    assert failures == [batch["Records"][1]["messageId"]]
    assert len(calls.of("send_command")) == 1


@pytest.mark.parametrize(
    "name",
    [
        "malformed-lifecycle-missing-instance",
        "malformed-lifecycle-bad-instance-id",
        "malformed-lifecycle-missing-token",
    ],
)
def test_malformed_only_batch_is_rejected_with_no_aws_call(
    world: EmbeddedAws, calls: CallRecorder, invoke: Any, name: str
) -> None:
    with pytest.raises(MalformedEvent, match=r"detail\."):
        invoke(to_sqs_batch([load_event(name)]))
    assert calls.calls == []


def test_other_hooks_are_ignored_with_no_aws_call(
    world: EmbeddedAws, calls: CallRecorder, invoke: Any
) -> None:
    failures = invoke(to_sqs_batch([load_event("lifecycle-out-of-scope")]))
    assert failures == []
    assert calls.calls == []


def test_duplicate_deliveries_share_one_command(world: EmbeddedAws, calls: CallRecorder, invoke: Any) -> None:
    events = world.launch.launch_into_wait(GROUP, HOOK, 1)
    failures = invoke(to_sqs_batch([events[0], events[0]]))
    assert failures == []
    (sent,) = calls.of("send_command")
    assert len(sent["InstanceIds"]) == 1


def test_warm_pool_launch_is_configured_too(world: EmbeddedAws, calls: CallRecorder, invoke: Any) -> None:
    # Given an instance launched into the warm pool (it waits in Warmed:Pending:Wait)
    events = world.launch.launch_into_wait(GROUP, HOOK, 1, destination="WarmPool")
    instance = events[0]["detail"]["EC2InstanceId"]
    assert world.launch.lifecycle_state(instance) == "Warmed:Pending:Wait"
    # When its event arrives
    failures = invoke(to_sqs_batch(events))
    # Then it is configured before it is stopped into the pool
    assert failures == []
    assert calls.of("send_command")[0]["InstanceIds"] == [instance]


def test_dry_run_sends_the_document_in_dry_run_mode(
    world: EmbeddedAws, calls: CallRecorder, invoke: Any
) -> None:
    dry_run = load_settings({"DOCUMENT_NAME": DOCUMENT, "DRY_RUN": "true"})
    events = world.launch.launch_into_wait(GROUP, HOOK, 1)
    assert invoke(to_sqs_batch(events), dry_run) == []
    assert calls.of("send_command")[0]["Parameters"]["DryRun"] == ["true"]


def test_sample_event_file_is_a_valid_queue_body(world: EmbeddedAws, invoke: Any) -> None:
    # The events/ file, seeded as proxymx invoke does, goes through the handler cleanly.
    from proxymx_tools.seed_launch import seed

    event = load_event("lifecycle-launch")
    seed(event)
    assert invoke(to_sqs_batch([event])) == []
    assert world.launch.sent_commands, "the sample event's instance got the document"


# ----- the launch side agrees (issue 7.4) -----------------------------------------------------


def _classic_behind_group(clients: Clients, name: str, *, sends: bool, opt_out: bool = False) -> None:
    from proxymx.loadbalancer.plan import PROXY_POLICY_NAME

    elb = clients.elb
    elb.create_load_balancer(
        LoadBalancerName=name,
        Listeners=[
            {"Protocol": "TCP", "LoadBalancerPort": 25, "InstanceProtocol": "TCP", "InstancePort": 25}
        ],
        AvailabilityZones=["us-east-1a"],
        **({"Tags": [{"Key": "proxymx:opt-out", "Value": "true"}]} if opt_out else {}),
    )
    if sends:
        elb.create_load_balancer_policy(
            LoadBalancerName=name,
            PolicyName=PROXY_POLICY_NAME,
            PolicyTypeName="ProxyProtocolPolicyType",
            PolicyAttributes=[{"AttributeName": "ProxyProtocol", "AttributeValue": "true"}],
        )
        elb.set_load_balancer_policies_for_backend_server(
            LoadBalancerName=name, InstancePort=25, PolicyNames=[PROXY_POLICY_NAME]
        )
    clients.autoscaling.attach_load_balancers(AutoScalingGroupName=GROUP, LoadBalancerNames=[name])


def test_a_launch_behind_an_opted_out_elb_that_still_sends_is_configured_v1(
    world: EmbeddedAws, calls: CallRecorder, clients: Clients, invoke: Any
) -> None:
    # Given the group's Classic ELB is opted out of proxymx but was switched on earlier
    _classic_behind_group(clients, "mx-old", sends=True, opt_out=True)
    events = world.launch.launch_into_wait(GROUP, HOOK, 1)
    # When the launch arrives
    assert invoke(to_sqs_batch(events)) == []
    # Then it is configured for what the ELB sends now: v1 on port 25
    (sent,) = calls.of("send_command")
    assert (sent["Parameters"]["Mode"], sent["Parameters"]["ProxyProtocol"]) == (["configure"], ["v1"])
    assert sent["Parameters"]["SmtpPorts"] == ["25"]


def test_a_launch_behind_one_elb_that_sends_and_one_that_does_not_is_abandoned(
    world: EmbeddedAws, calls: CallRecorder, clients: Clients, invoke: Any
) -> None:
    # Given two Classic ELBs on port 25 in front of the group: one sends the header, one does not
    _classic_behind_group(clients, "mx-proxy", sends=True)
    _classic_behind_group(clients, "mx-plain", sends=False)
    events = world.launch.launch_into_wait(GROUP, HOOK, 1)
    instance = events[0]["detail"]["EC2InstanceId"]
    # When the launch arrives
    assert invoke(to_sqs_batch(events)) == []
    # Then no command is sent and the instance is ABANDONed with the reason
    assert calls.of("send_command") == []
    (completion,) = calls.of("complete_lifecycle_action")
    assert (completion["InstanceId"], completion["LifecycleActionResult"]) == (instance, "ABANDON")
    assert world.launch.lifecycle_state(instance) != "InService"
