"""ConfigureInstance trusts the instance, not the event (issue 9, finding 6): the group is the one
the instance really belongs to, and an event from another account or region is rejected."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from proxymx.aws import Clients
from proxymx.config import Settings, load_settings
from proxymx.errors import MalformedEvent
from proxymx_tools.embedded import STATE_TABLE_NAME, EmbeddedAws, to_sqs_batch
from proxymx_tools.recorder import CallRecorder
from proxymx_tools.seed_launch import ensure_group
from support import DOCUMENT, GROUP, HOOK, lambda_context, load_app

Invoke = Callable[..., list[str]]


@pytest.fixture
def app(powertools: None) -> ModuleType:
    return load_app("configure_instance")


@pytest.fixture
def invoke(app: ModuleType, settings: Settings, clients: Clients) -> Invoke:
    """The handler as Lambda runs it: its context carries the function's own account and region."""

    def run(batch: dict[str, Any], config: Settings | None = None) -> list[str]:
        response = app.lambda_handler(batch, lambda_context(), settings=config or settings, clients=clients)
        return [item["itemIdentifier"] for item in response["batchItemFailures"]]

    return run


@pytest.fixture
def check(powertools: None, settings: Settings, clients: Clients) -> Any:
    """CheckOutcome as Lambda runs it (its context: the function's own account and region)."""
    app = load_app("check_outcome")

    def run(event: dict[str, Any]) -> Any:
        return app.lambda_handler(
            event, lambda_context("CheckOutcomeFunction"), settings=settings, clients=clients
        )

    return run


def test_the_command_names_the_instance_s_real_group(
    world: EmbeddedAws, calls: CallRecorder, invoke: Invoke
) -> None:
    # Given a launch event that names another group than the one the instance is in
    ensure_group("proxymx-other-fleet", HOOK)
    (event,) = world.launch.launch_into_wait(GROUP, HOOK, 1)
    event["detail"]["AutoScalingGroupName"] = "proxymx-other-fleet"
    # When it is handled
    assert invoke(to_sqs_batch([event])) == []
    # Then the command's context (what CheckOutcome completes) names the real group
    (sent,) = calls.of("send_command")
    assert json.loads(sent["Comment"].removeprefix("proxymx:")) == [GROUP, HOOK]


def test_a_real_group_out_of_scope_is_ignored_whatever_the_event_says(
    world: EmbeddedAws, calls: CallRecorder, invoke: Invoke
) -> None:
    # Given a scope of one group, and an instance of another group whose event names the scoped one
    ensure_group("proxymx-other-fleet", HOOK)
    scoped = load_settings(
        {"DOCUMENT_NAME": DOCUMENT, "STATE_TABLE": STATE_TABLE_NAME, "LAUNCH_GROUP_NAMES": GROUP}
    )
    (event,) = world.launch.launch_into_wait("proxymx-other-fleet", HOOK, 1)
    event["detail"]["AutoScalingGroupName"] = GROUP
    # When it is handled
    assert invoke(to_sqs_batch([event]), scoped) == []
    # Then nothing is sent to an instance outside the scope
    assert calls.of("send_command") == []


@pytest.mark.parametrize("field, value", [("account", "210987654321"), ("region", "eu-west-1")])
def test_an_event_from_another_account_or_region_is_rejected_with_no_write(
    world: EmbeddedAws, calls: CallRecorder, invoke: Invoke, field: str, value: str
) -> None:
    # Given two launch events for real waiting instances, one of them from another account or region
    good, forged = world.launch.launch_into_wait(GROUP, HOOK, 2)
    forged[field] = value
    batch = to_sqs_batch([good, forged])
    # When the batch is handled
    failures = invoke(batch)
    # Then the forged one is rejected (it comes back, then parks in the DLQ), and only the good
    # instance gets the document
    assert failures == [batch["Records"][1]["messageId"]]
    (sent,) = calls.of("send_command")
    assert sent["InstanceIds"] == [good["detail"]["EC2InstanceId"]]


@pytest.mark.parametrize("origin", [("account", "210987654321"), ("region", "eu-west-1")])
def test_a_status_event_from_another_account_or_region_is_rejected_with_no_aws_call(
    world: EmbeddedAws, calls: CallRecorder, invoke: Invoke, check: Any, origin: tuple[str, str]
) -> None:
    field, value = origin
    # Given the status event of a real command, but from another account or region
    events = world.launch.launch_into_wait(GROUP, HOOK, 1)
    assert invoke(to_sqs_batch(events)) == []
    (status_event,) = world.launch.drain_status_events()
    status_event[field] = value
    calls.calls.clear()
    # When CheckOutcome receives it, it is rejected before any AWS call
    with pytest.raises(MalformedEvent, match="not this function's"):
        check(status_event)
    assert calls.calls == []
    assert world.launch.lifecycle_state(events[0]["detail"]["EC2InstanceId"]) == "Pending:Wait"
