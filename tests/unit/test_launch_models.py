"""Launch-flow event models: lifecycle (and its SQS record) and SSM status events, at the edge."""

from __future__ import annotations

import json

import pytest
from proxymx.errors import MalformedEvent
from proxymx.models.lifecycle import parse_launch_batch, parse_lifecycle_event
from proxymx.models.ssm import CommandStatusChange, InvocationStatusChange, parse_ssm_event
from support import load_event


def test_plain_launch_event_is_read() -> None:
    # Given the sample launch lifecycle event
    event = load_event("lifecycle-launch")
    # When it is parsed
    launch = parse_lifecycle_event(event)
    # Then every field the flow needs is typed
    assert launch.detail.group_name == "proxymx-mx-fleet"
    assert launch.detail.hook_name == "proxymx-postfix-launch"
    assert launch.instance_id == "i-0a1b2c3d4e5f60718"
    assert launch.detail.origin == "EC2"
    assert not launch.into_warm_pool


@pytest.mark.parametrize(
    ("name", "origin", "destination"),
    [
        ("lifecycle-launch-warm-pool-into-pool", "EC2", "WarmPool"),
        ("lifecycle-launch-warm-pool-to-group", "WarmPool", "AutoScalingGroup"),
    ],
)
def test_warm_pool_transitions_are_read(name: str, origin: str, destination: str) -> None:
    launch = parse_lifecycle_event(load_event(name))
    assert (launch.detail.origin, launch.detail.destination) == (origin, destination)
    assert launch.into_warm_pool is (destination == "WarmPool")


def test_event_without_warm_pool_fields_defaults_to_a_plain_launch() -> None:
    event = load_event("lifecycle-launch")
    del event["detail"]["Origin"], event["detail"]["Destination"]
    launch = parse_lifecycle_event(event)
    assert (launch.detail.origin, launch.detail.destination) == ("EC2", "AutoScalingGroup")


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("malformed-lifecycle-missing-instance", "detail.EC2InstanceId"),
        ("malformed-lifecycle-bad-instance-id", "detail.EC2InstanceId"),
        ("malformed-lifecycle-missing-token", "detail.LifecycleActionToken"),
    ],
)
def test_malformed_lifecycle_event_names_the_field(name: str, field: str) -> None:
    with pytest.raises(MalformedEvent, match=field.replace(".", r"\.")):
        parse_lifecycle_event(load_event(name))


def test_sqs_body_that_is_not_json_is_malformed() -> None:
    batch = parse_launch_batch(
        {"Records": [{"messageId": "m1", "body": "{not json", "eventSource": "aws:sqs"}]}
    )
    with pytest.raises(MalformedEvent, match="not JSON"):
        batch.records[0].launch()


def test_sqs_record_carries_the_launch_and_its_receive_count() -> None:
    body = json.dumps(load_event("lifecycle-launch"))
    batch = parse_launch_batch(
        {
            "Records": [
                {
                    "messageId": "m1",
                    "body": body,
                    "eventSource": "aws:sqs",
                    "attributes": {"ApproximateReceiveCount": "3", "SentTimestamp": "1764302400000"},
                }
            ]
        }
    )
    record = batch.records[0]
    assert record.receive_count == 3
    assert record.sent_at is not None and record.sent_at.year == 2025
    assert record.launch().instance_id == "i-0a1b2c3d4e5f60718"


def test_batch_without_records_is_malformed() -> None:
    with pytest.raises(MalformedEvent, match="Records"):
        parse_launch_batch({"detail": {}})


@pytest.mark.parametrize(
    ("name", "status"),
    [("ssm-status-success", "Success"), ("ssm-status-failed", "Failed"), ("ssm-status-timedout", "TimedOut")],
)
def test_invocation_status_events_are_read(name: str, status: str) -> None:
    event = parse_ssm_event(load_event(name))
    assert isinstance(event, InvocationStatusChange)
    assert event.detail.status == status
    assert event.is_terminal
    assert event.detail.instance_id == "i-0a1b2c3d4e5f60718"


def test_command_level_event_is_recognised() -> None:
    event = parse_ssm_event(load_event("ssm-command-level"))
    assert isinstance(event, CommandStatusChange)


def test_in_progress_is_not_terminal() -> None:
    raw = load_event("ssm-status-success")
    raw["detail"]["status"] = "InProgress"
    event = parse_ssm_event(raw)
    assert isinstance(event, InvocationStatusChange)
    assert not event.is_terminal


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("malformed-ssm-bad-command-id", "detail.command-id"),
        ("malformed-ssm-missing-instance", "detail.instance-id"),
    ],
)
def test_malformed_ssm_event_names_the_field(name: str, field: str) -> None:
    with pytest.raises(MalformedEvent, match=field.replace(".", r"\.")):
        parse_ssm_event(load_event(name))


def test_unknown_detail_type_is_malformed() -> None:
    raw = load_event("ssm-status-success")
    raw["detail-type"] = "EC2 Instance State-change Notification"
    with pytest.raises(MalformedEvent, match="detail-type"):
        parse_ssm_event(raw)
