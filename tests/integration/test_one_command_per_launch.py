"""One command per launch (issue 9, finding 1): duplicate deliveries of one launch — concurrent,
across batches, a Reconcile re-drive plus a late SQS message — send ONE SendCommand; a warm-pool
instance's second launch (other destination) still gets its own."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from proxymx.aws import Clients
from proxymx.config import Settings
from proxymx.launch.claims import STALE_CLAIM_SECONDS, LaunchClaims
from proxymx.launch.configure import configure_batch
from proxymx.models.lifecycle import parse_launch_batch
from proxymx.models.schedule import parse_scheduled_event
from proxymx.reconcile import STUCK_AFTER_SECONDS, reconcile
from proxymx.state import StateTable
from proxymx_tools.embedded import STATE_TABLE_NAME, EmbeddedAws, to_sqs_batch
from proxymx_tools.recorder import CallRecorder
from support import GROUP, HOOK, lambda_context, load_app, load_event


@pytest.fixture
def app(powertools: None) -> ModuleType:
    return load_app("configure_instance")


@pytest.fixture
def invoke(app: ModuleType, settings: Settings, clients: Clients) -> Any:
    def run(batch: dict[str, Any]) -> list[str]:
        response = app.lambda_handler(batch, lambda_context(), settings=settings, clients=clients)
        return [item["itemIdentifier"] for item in response["batchItemFailures"]]

    return run


@pytest.fixture
def deliver(settings: Settings) -> Any:
    """One delivery of the event, as one Lambda invocation's domain call (its own clients, as a
    separate Lambda environment has); the record's status."""

    def run(event: dict[str, Any], clients: Clients | None = None) -> str:
        batch = parse_launch_batch(to_sqs_batch([event]))
        report = configure_batch(batch, settings, clients or Clients())
        (outcome,) = report.outcomes.values()
        return outcome.status

    return run


def test_the_same_launch_delivered_8_times_at_once_sends_one_command(
    world: EmbeddedAws, calls: CallRecorder, deliver: Any
) -> None:
    # Given one instance waiting for our hook, and its event delivered 8 times concurrently
    (event,) = world.launch.launch_into_wait(GROUP, HOOK, 1)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: deliver(event), range(8)))
    # Then exactly one SendCommand went out; the others reused it or wait for it (retried)
    assert len(calls.of("send_command")) == 1
    assert set(statuses) <= {"sent", "not-ready"}
    assert statuses.count("sent") >= 1
    # When the retried ones come back, they find the command: sent, nothing sent again
    retried = [deliver(event) for status in statuses if status == "not-ready"]
    assert set(retried) <= {"sent"}
    assert len(calls.of("send_command")) == 1


def test_the_same_launch_in_8_batches_sends_one_command(
    world: EmbeddedAws, calls: CallRecorder, invoke: Any
) -> None:
    # Given one launch event
    (event,) = world.launch.launch_into_wait(GROUP, HOOK, 1)
    # When it arrives in 8 separate batches (redeliveries, EventBridge's at-least-once)
    failures = [invoke(to_sqs_batch([event])) for _ in range(8)]
    # Then every record settles (none comes back) and one command was sent
    assert failures == [[]] * 8
    (sent,) = calls.of("send_command")
    assert sent["InstanceIds"] == [event["detail"]["EC2InstanceId"]]


def test_a_reconcile_redrive_and_the_late_sqs_delivery_collide(
    world: EmbeddedAws, calls: CallRecorder, deliver: Any, settings: Settings, clients: Clients
) -> None:
    # Given an instance stuck in Pending:Wait long enough for the sweep (its event seemed lost)
    (event,) = world.launch.launch_into_wait(GROUP, HOOK, 1)
    instance_id = event["detail"]["EC2InstanceId"]
    ec2_instance = world.launch._ec2_backend().get_instance(instance_id)
    ec2_instance.launch_time -= timedelta(seconds=STUCK_AFTER_SECONDS + 60)
    # When the sweep re-drives it (no lifecycle token), then the SQS delivery arrives late
    summary = reconcile(parse_scheduled_event(load_event("scheduled-reconcile")), settings, clients)
    assert summary.redriven == [instance_id]
    late = deliver(event)
    # Then the late delivery reuses the sweep's command: one SendCommand in all
    assert late == "sent"
    assert len(calls.of("send_command")) == 1


def test_a_warm_pool_instance_is_configured_again_when_it_enters_service(
    world: EmbeddedAws, calls: CallRecorder, invoke: Any
) -> None:
    # Given an instance configured on its way into the warm pool
    (into_pool,) = world.launch.launch_into_wait(GROUP, HOOK, 1, destination="WarmPool")
    instance_id = into_pool["detail"]["EC2InstanceId"]
    assert invoke(to_sqs_batch([into_pool])) == []
    # When it leaves the pool for the group (a second launch: other destination)
    token = world.launch.hold_in_wait(GROUP, instance_id, HOOK)
    into_service = json.loads(json.dumps(into_pool))
    into_service["detail"].update(
        {"Origin": "WarmPool", "Destination": "AutoScalingGroup", "LifecycleActionToken": token}
    )
    assert invoke(to_sqs_batch([into_service])) == []
    # Then the document runs again (it re-proves Postfix after the restart)
    assert [send["InstanceIds"] for send in calls.of("send_command")] == [[instance_id], [instance_id]]


def _deny_first_send_command(client: Any) -> None:
    if client.meta.service_model.service_name != "ssm":
        return
    denied: list[bool] = []

    def before_call(**_: Any) -> Any:
        if denied:
            return None
        denied.append(True)
        error = {"Code": "AccessDeniedException", "Message": "not yet"}
        return _Http(), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}

    client.meta.events.register("before-call.ssm.SendCommand", before_call)


class _Http:
    status_code = 400
    headers: dict[str, str] = {}
    content = b""
    text = ""


def test_a_failed_send_releases_the_claim_so_the_redelivery_sends(
    world: EmbeddedAws, calls: CallRecorder, deliver: Any
) -> None:
    # Given a launch whose first SendCommand is refused
    (event,) = world.launch.launch_into_wait(GROUP, HOOK, 1)
    clients = Clients(observers=[_deny_first_send_command])
    first = deliver(event, clients)
    # When the queue redelivers it
    second = deliver(event, clients)
    # Then the first failed (retried), and the retry was not blocked by its own dead claim
    assert (first, second) == ("failed", "sent")
    assert len(calls.of("send_command")) == 2


def test_a_claim_left_by_a_crashed_run_blocks_while_fresh_and_is_taken_over_once_stale(
    world: EmbeddedAws, calls: CallRecorder, deliver: Any, clients: Clients
) -> None:
    # Given two launches whose claims were taken by runs that died before sending: one 30 s ago,
    # one longer ago than any run can last
    fresh, stale = world.launch.launch_into_wait(GROUP, HOOK, 2)
    claims = LaunchClaims(StateTable(STATE_TABLE_NAME, clients.dynamodb), command_timeout_seconds=600)
    now = datetime.now(UTC)
    crashed = {
        "fresh": now - timedelta(seconds=30),
        "stale": now - timedelta(seconds=STALE_CLAIM_SECONDS + 1),
    }
    for name, event in (("fresh", fresh), ("stale", stale)):
        assert claims.claim(event["detail"]["EC2InstanceId"], "AutoScalingGroup", crashed[name]).won
    # When each is delivered again
    statuses = (deliver(fresh), deliver(stale))
    # Then the fresh claim makes its delivery wait (retried), the stale one is taken over and sent
    assert statuses == ("not-ready", "sent")
    (sent,) = calls.of("send_command")
    assert sent["InstanceIds"] == [stale["detail"]["EC2InstanceId"]]
