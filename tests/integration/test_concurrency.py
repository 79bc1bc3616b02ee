"""The same event, 8 times at once (issue 9, "keep it that way"): EventBridge and SQS deliver at
least once, sometimes twice at the same moment, and Lambda runs each delivery in its own
environment. Each thread here is one such invocation: the real handler, its own clients.

The embedded AWS answers one request at a time (``proxymx_tools.embedded.BACKEND_LOCK``), as AWS
applies each request atomically; what may interleave is the handlers' calls, as in AWS.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from proxymx.aws import Clients
from proxymx.config import Settings, load_settings
from proxymx.loadbalancer.plan import PROXY_POLICY_NAME
from proxymx_tools.embedded import EmbeddedAws, to_sqs_batch
from proxymx_tools.recorder import CallRecorder
from proxymx_tools.seed import seed_world
from support import GROUP, HOOK, lambda_context, load_app, load_event

TIMES = 8


def at_once(call: Any, times: int = TIMES) -> list[Any]:
    """``call(i)`` from ``times`` threads at once; the results (an exception is re-raised)."""
    with ThreadPoolExecutor(max_workers=times) as pool:
        return list(pool.map(call, range(times)))


def each_at_once(call: Any, items: list[Any]) -> list[Any]:
    """``call(item)`` for every item, each from its own thread, at once."""
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(call, items))


def test_the_same_launches_in_8_concurrent_batches_send_one_command_each(
    world: EmbeddedAws, calls: CallRecorder, settings: Settings
) -> None:
    # Given two launches, and 8 SQS batches carrying both (redeliveries, EventBridge's
    # at-least-once), handled by 8 ConfigureInstance invocations at the same moment
    events = world.launch.launch_into_wait(GROUP, HOOK, 2)
    instance_ids = sorted(e["detail"]["EC2InstanceId"] for e in events)
    app = load_app("configure_instance")

    def invoke(batch: dict[str, Any]) -> list[str]:
        response = app.lambda_handler(batch, lambda_context(), settings=settings, clients=Clients())
        return [item["itemIdentifier"] for item in response["batchItemFailures"]]

    batches = [to_sqs_batch(events) for _ in range(TIMES)]
    retried = each_at_once(invoke, batches)
    # When SQS redelivers what came back (until nothing does; bounded)
    for _ in range(3):
        pending = [
            {**batch, "Records": [r for r in batch["Records"] if r["messageId"] in back]}
            for batch, back in zip(batches, retried, strict=True)
            if back
        ]
        if not pending:
            break
        batches = pending
        retried = each_at_once(invoke, batches)
    # Then every record settled, and each instance got exactly one SendCommand
    assert not any(retried)
    sent = Counter(i for params in calls.of("send_command") for i in params["InstanceIds"])
    assert sent == Counter(dict.fromkeys(instance_ids, 1))


def test_the_same_status_event_8_times_at_once_completes_the_action_once(
    world: EmbeddedAws, calls: CallRecorder, settings: Settings, clients: Clients
) -> None:
    # Given one launch configured, and its status event
    (event,) = world.launch.launch_into_wait(GROUP, HOOK, 1)
    instance_id = event["detail"]["EC2InstanceId"]
    response = load_app("configure_instance").lambda_handler(
        to_sqs_batch([event]), lambda_context(), settings=settings, clients=clients
    )
    assert response["batchItemFailures"] == []
    (status,) = world.launch.drain_status_events()
    app = load_app("check_outcome")
    # When 8 CheckOutcome invocations get it at the same moment
    reports = at_once(
        lambda _: app.lambda_handler(
            status, lambda_context("CheckOutcomeFunction"), settings=settings, clients=Clients()
        )
    )
    # Then exactly one completion took effect (CONTINUE); the others found the action over
    decisions = Counter(report["decision"] for report in reports)
    assert decisions["continued"] == 1, decisions
    assert set(decisions) <= {"continued", "already-over", "ignored"}
    completions = calls.of("complete_lifecycle_action")
    assert 1 <= len(completions) <= TIMES
    assert {c["LifecycleActionResult"] for c in completions} == {"CONTINUE"}
    assert world.launch.lifecycle_state(instance_id) == "InService"
    assert world.launch.actions[instance_id].result == "CONTINUE"


def test_the_same_load_balancer_event_8_times_at_once_keeps_the_operators_policy(
    aws: EmbeddedAws, calls: CallRecorder, powertools: None
) -> None:
    # Given a new Classic ELB whose SMTP port already carries an operator's own backend policy
    event = seed_world(load_event("elb-create-smtp"))
    elb = boto3.client("elb", region_name="us-east-1")
    elb.create_load_balancer_policy(
        LoadBalancerName="mx-inbound",
        PolicyName="mx-operator",
        PolicyTypeName="BackendServerAuthenticationPolicyType",
        PolicyAttributes=[{"AttributeName": "PublicKeyPolicyName", "AttributeValue": "k"}],
    )
    elb.set_load_balancer_policies_for_backend_server(
        LoadBalancerName="mx-inbound", InstancePort=25, PolicyNames=["mx-operator"]
    )
    app = load_app("enable_proxy_protocol")
    config = load_settings({"SELF_ROLE_ARNS": "arn:aws:iam::123456789012:role/proxymx-EnableProxyProtocol"})
    # When 8 EnableProxyProtocol invocations handle its creation event at the same moment
    results = at_once(
        lambda _: app.lambda_handler(
            event, lambda_context("EnableProxyProtocolFunction"), settings=config, clients=Clients()
        )
    )
    # Then every one succeeded (DuplicatePolicyName is "already there"; a port that already has
    # ours is not written again), and the port holds the operator's policy and ours, once each
    assert {r["outcome"] for r in results} <= {"changed", "compliant"}
    lb = elb.describe_load_balancers(LoadBalancerNames=["mx-inbound"])["LoadBalancerDescriptions"][0]
    backends = {b["InstancePort"]: b["PolicyNames"] for b in lb["BackendServerDescriptions"]}
    assert backends == {25: ["mx-operator", PROXY_POLICY_NAME]}
    policies = elb.describe_load_balancer_policies(LoadBalancerName="mx-inbound")["PolicyDescriptions"]
    assert sorted(p["PolicyName"] for p in policies) == sorted(["mx-operator", PROXY_POLICY_NAME])
