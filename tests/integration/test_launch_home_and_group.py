"""ConfigureInstance trusts the instance, not the event (issue 9, finding 6): the group is the one
the instance really belongs to, and an event from another account or region is rejected."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest
from proxymx.errors import MalformedEvent
from proxymx_tools.embedded import EmbeddedAws, to_sqs_batch
from proxymx_tools.seed_launch import ensure_group
from support import GROUP, HOOK, Calls, Context, load_app


@pytest.fixture
def app(env: None) -> ModuleType:
    return load_app("configure_instance")


def invoke(app: ModuleType, batch: dict[str, Any]) -> list[str]:
    response = app.lambda_handler(batch, Context())
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def test_the_command_names_the_instance_s_real_group(
    world: EmbeddedAws, calls: Calls, app: ModuleType
) -> None:
    # Given a launch event that names another group than the one the instance is in
    ensure_group("proxymx-other-fleet", HOOK)
    (event,) = world.launch.launch_into_wait(GROUP, HOOK, 1)
    event["detail"]["AutoScalingGroupName"] = "proxymx-other-fleet"
    # When it is handled
    assert invoke(app, to_sqs_batch([event])) == []
    # Then the command's context (what CheckOutcome completes) names the real group
    (sent,) = calls.of("SendCommand")
    assert json.loads(sent["Comment"].removeprefix("proxymx:")) == [GROUP, HOOK]


def test_a_real_group_out_of_scope_is_ignored_whatever_the_event_says(
    world: EmbeddedAws, calls: Calls, app: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a scope of one group, and an instance of another group whose event names the scoped one
    ensure_group("proxymx-other-fleet", HOOK)
    monkeypatch.setenv("LAUNCH_GROUP_NAMES", GROUP)
    from proxymx.config import settings

    settings.cache_clear()
    (event,) = world.launch.launch_into_wait("proxymx-other-fleet", HOOK, 1)
    event["detail"]["AutoScalingGroupName"] = GROUP
    # When it is handled
    assert invoke(app, to_sqs_batch([event])) == []
    # Then nothing is sent to an instance outside the scope
    assert calls.of("SendCommand") == []


@pytest.mark.parametrize("field, value", [("account", "210987654321"), ("region", "eu-west-1")])
def test_an_event_from_another_account_or_region_is_rejected_with_no_write(
    world: EmbeddedAws, calls: Calls, app: ModuleType, field: str, value: str
) -> None:
    # Given two launch events for real waiting instances, one of them from another account or region
    good, forged = world.launch.launch_into_wait(GROUP, HOOK, 2)
    forged[field] = value
    batch = to_sqs_batch([good, forged])
    # When the batch is handled
    failures = invoke(app, batch)
    # Then the forged one is rejected (it comes back, then parks in the DLQ), and only the good
    # instance gets the document
    assert failures == [batch["Records"][1]["messageId"]]
    (sent,) = calls.of("SendCommand")
    assert sent["InstanceIds"] == [good["detail"]["EC2InstanceId"]]


@pytest.mark.parametrize("field, value", [("account", "210987654321"), ("region", "eu-west-1")])
def test_a_status_event_from_another_account_or_region_is_rejected_with_no_aws_call(
    world: EmbeddedAws, calls: Calls, app: ModuleType, field: str, value: str
) -> None:
    # Given the status event of a real command, but from another account or region
    events = world.launch.launch_into_wait(GROUP, HOOK, 1)
    assert invoke(app, to_sqs_batch(events)) == []
    (status_event,) = world.launch.drain_status_events()
    status_event[field] = value
    calls.made.clear()
    # When CheckOutcome receives it, it is rejected before any AWS call
    with pytest.raises(MalformedEvent, match="not this function's"):
        load_app("check_outcome").lambda_handler(status_event, Context())
    assert calls.made == []
    assert world.launch.lifecycle_state(events[0]["detail"]["EC2InstanceId"]) == "Pending:Wait"
