"""Every malformed event is rejected at the edge, with one message naming the field.

The pydantic models are gone; what they rejected is pinned here instead, row by row, together
with what the code could not handle and now rejects too (a time without a UTC offset, ports
outside 1-65535, absurd sizes). Each row: a sample event, one change, the parser, and the field
path the message must start with.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from proxymx.errors import MalformedEvent
from proxymx.models.attach import parse_load_balancer_event
from proxymx.models.lifecycle import parse_launch_batch, parse_lifecycle_event
from proxymx.models.reader import parse_time
from proxymx.models.schedule import parse_scheduled_event
from proxymx.models.ssm import parse_ssm_event
from support import EVENTS_DIR, load_event

Parser = Callable[[Any], object]
DELETE = object()
PARSERS: dict[str, tuple[Parser, str]] = {
    # CloudTrail API calls: the ELB's and Auto Scaling's attach calls (EnableProxyProtocol's edge).
    "elb": (parse_load_balancer_event, ""),
    "lifecycle": (parse_lifecycle_event, "malformed lifecycle event: "),
    "ssm": (parse_ssm_event, "malformed SSM event: "),
    "schedule": (parse_scheduled_event, "malformed scheduled event: "),
    "batch": (parse_launch_batch, "malformed SQS batch: "),
}


def changed(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``event`` with the value at ``path`` (dots; list indexes as numbers) replaced or deleted."""
    event = copy.deepcopy(event)
    *parents, last = path.split(".")
    node: Any = event
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return event


def rejected(kind: str, event: Any) -> str:
    parse, prefix = PARSERS[kind]
    with pytest.raises(MalformedEvent) as raised:
        parse(event)
    message = str(raised.value)
    assert message.startswith(prefix), message
    return message.removeprefix(prefix)


# ----- the sample events ----------------------------------------------------------------------

MALFORMED_SAMPLES = {
    "malformed-elb-bad-instance-port.json": (
        "elb",
        "detail.requestParameters.listeners[0].instancePort: input should be a valid integer",
    ),
    "malformed-elb-missing-load-balancer-name.json": (
        "elb",
        "detail.requestParameters.loadBalancerName: field required",
    ),
    "malformed-elb-missing-target-group-arn.json": (
        "elb",
        "detail.requestParameters.targetGroupArn: field required",
    ),
    "malformed-elb-no-user-identity.json": ("elb", "detail.userIdentity: field required"),
    "malformed-lifecycle-bad-instance-id.json": ("lifecycle", "detail.EC2InstanceId: string should match"),
    "malformed-lifecycle-missing-instance.json": ("lifecycle", "detail.EC2InstanceId: field required"),
    "malformed-lifecycle-missing-token.json": ("lifecycle", "detail.LifecycleActionToken: field required"),
    "malformed-ssm-bad-command-id.json": ("ssm", "detail.command-id: string should have at least 36"),
    "malformed-ssm-missing-instance.json": ("ssm", "detail.instance-id: field required"),
}


def test_every_malformed_sample_is_in_the_table() -> None:
    assert sorted(p.name for p in EVENTS_DIR.glob("malformed-*.json")) == sorted(MALFORMED_SAMPLES)


@pytest.mark.parametrize("name", sorted(MALFORMED_SAMPLES))
def test_each_malformed_sample_is_rejected_naming_the_field(name: str) -> None:
    kind, message = MALFORMED_SAMPLES[name]
    assert rejected(kind, load_event(name)).startswith(message)


def _kind(event: dict[str, Any]) -> str:
    return (
        {
            "aws.elasticloadbalancing": "elb",
            "aws.autoscaling": "lifecycle",
            "aws.ssm": "ssm",
            "aws.events": "schedule",
        }[event["source"]]
        if event.get("detail-type") != "AWS API Call via CloudTrail"
        else "elb"
    )


@pytest.mark.parametrize(
    "name",
    sorted(
        p.name
        for p in EVENTS_DIR.glob("*.json")
        if p.name != "expected.json" and not p.name.startswith("malformed")
    ),
)
def test_each_well_formed_sample_is_accepted(name: str) -> None:
    event = load_event(name)
    parse, _ = PARSERS[_kind(event)]
    parse(event)


def test_the_sam_cli_scheduled_event_is_accepted() -> None:
    # Given the output of `sam local generate-event cloudwatch scheduled-event` (no "version")
    event = load_event("scheduled-reconcile-sam-generated")
    assert "version" not in event
    # When parsed / Then it is a scheduled event with EventBridge's own version
    parsed = parse_scheduled_event(event)
    assert (parsed.version, parsed.detail, parsed.time) == ("0", {}, datetime(1970, 1, 1, tzinfo=UTC))


# ----- hand-made bad events -------------------------------------------------------------------

ELB = load_event("elb-create-smtp")
ELB_LISTENERS = load_event("elb-create-listeners")
ELB_POLICIES = load_event("elb-drift-backend-detached")
ELB_DELETE = load_event("elb-drift-policy-deleted")
ELB_FAILED = load_event("elb-failed-call")
NLB = load_event("nlb-create")
NLB_TG = load_event("nlb-create-target-group")
NLB_LISTENER = load_event("nlb-create-listener")
NLB_ATTRS = load_event("nlb-drift-proxy-disabled")
LAUNCH = load_event("lifecycle-launch")
SSM = load_event("ssm-status-success")
SSM_COMMAND = load_event("ssm-command-level")
SCHEDULE = load_event("scheduled-reconcile")
RP = "detail.requestParameters"

# kind, base event, path, new value (DELETE: removed), the message's field path
ROWS: list[tuple[str, dict[str, Any], str, Any, str]] = [
    # -- the EventBridge envelope (every kind) --
    ("elb", ELB, "source", "aws.ec2", "source"),
    ("elb", ELB, "detail-type", "AWS API Call via Nothing", "detail-type"),
    ("elb", ELB, "detail", DELETE, "detail"),
    ("elb", ELB, "detail", "{}", "detail"),
    ("elb", ELB, "version", DELETE, "version"),
    ("elb", ELB, "id", DELETE, "id"),
    ("elb", ELB, "id", "i" * 257, "id"),
    ("elb", ELB, "account", 123456789012, "account"),
    ("elb", ELB, "account", "12345", "account"),
    ("elb", ELB, "region", DELETE, "region"),
    ("elb", ELB, "region", "us east 1", "region"),
    ("elb", ELB, "resources", DELETE, "resources"),
    ("elb", ELB, "resources", "arn:aws:elasticloadbalancing:x", "resources"),
    ("elb", ELB, "resources", [5], "resources[0]"),
    ("elb", ELB, "resources", ["arn"] * 101, "resources"),
    ("elb", ELB, "time", DELETE, "time"),
    ("elb", ELB, "time", "2026-11-20T09:14:03", "time"),
    ("elb", ELB, "time", 1764000000, "time"),
    ("lifecycle", LAUNCH, "time", "2026-11-28T04:00:00", "time"),
    ("lifecycle", LAUNCH, "time", "2026-11-28 04:00:00Z", "time"),
    ("lifecycle", LAUNCH, "time", "2026-02-30T04:00:00Z", "time"),
    ("lifecycle", LAUNCH, "time", "2026-11-28T24:00:00Z", "time"),
    ("lifecycle", LAUNCH, "time", "2026-11-28T04:00:00+24:00", "time"),
    ("lifecycle", LAUNCH, "time", "2026-11-28T04:00:00.1234567890Z", "time"),
    ("lifecycle", LAUNCH, "time", "yesterday", "time"),
    ("lifecycle", LAUNCH, "source", "aws.ec2", "source"),
    ("lifecycle", LAUNCH, "detail-type", "EC2 Instance-terminate Lifecycle Action", "detail-type"),
    ("ssm", SSM, "source", "aws.ec2", "source"),
    ("ssm", SSM, "time", "2026-11-28T04:02:13", "time"),
    ("schedule", SCHEDULE, "source", "aws.scheduler", "source"),
    ("schedule", SCHEDULE, "detail", None, "detail"),
    ("schedule", SCHEDULE, "detail", "{}", "detail"),
    ("schedule", SCHEDULE, "version", 0, "version"),
    ("schedule", SCHEDULE, "time", "2026-11-28T05:00:00", "time"),
    ("schedule", SCHEDULE, "resources", DELETE, "resources"),
    # -- CloudTrail: what every call carries --
    ("elb", ELB, "detail.apiVersion", "2099-01-01", "detail.apiVersion"),
    ("elb", ELB, "detail.apiVersion", DELETE, "detail.apiVersion"),
    ("elb", ELB, "detail.eventSource", "ec2.amazonaws.com", "detail.eventSource"),
    ("elb", ELB, "detail.eventName", DELETE, "detail.eventName"),
    ("elb", ELB, "detail.eventName", ["CreateLoadBalancer"], "detail.eventName"),
    ("elb", ELB, "detail.eventTime", "yesterday", "detail.eventTime"),
    ("elb", ELB, "detail.eventTime", "2026-11-20T09:14:03", "detail.eventTime"),
    ("elb", ELB, "detail.userIdentity", DELETE, "detail.userIdentity"),
    ("elb", ELB, "detail.userIdentity", "root", "detail.userIdentity"),
    ("elb", ELB, "detail.userIdentity.type", DELETE, "detail.userIdentity.type"),
    (
        "elb",
        ELB,
        "detail.userIdentity.sessionContext.sessionIssuer.arn",
        5,
        "detail.userIdentity.sessionContext.sessionIssuer.arn",
    ),
    ("elb", ELB, "detail.userAgent", "u" * 16385, "detail.userAgent"),
    ("elb", ELB, "detail.requestParameters", DELETE, RP),
    ("elb", ELB, "detail.requestParameters", [], RP),
    # -- a failed call is read loosely, but it is still a CloudTrail ELB call --
    ("elb", ELB_FAILED, "detail.userIdentity", DELETE, "detail.userIdentity"),
    ("elb", ELB_FAILED, "detail.eventTime", "2026-11-20", "detail.eventTime"),
    ("elb", ELB_FAILED, "detail.errorCode", 5, "detail.errorCode"),
    ("elb", ELB_FAILED, "detail.requestParameters", "garbage", RP),
    # -- Classic ELB --
    ("elb", ELB, f"{RP}.loadBalancerName", DELETE, f"{RP}.loadBalancerName"),
    ("elb", ELB, f"{RP}.loadBalancerName", "", f"{RP}.loadBalancerName"),
    ("elb", ELB, f"{RP}.loadBalancerName", "n" * 33, f"{RP}.loadBalancerName"),
    ("elb", ELB, f"{RP}.loadBalancerName", ["mx"], f"{RP}.loadBalancerName"),
    ("elb", ELB, f"{RP}.listeners", {"protocol": "TCP"}, f"{RP}.listeners"),
    (
        "elb",
        ELB,
        f"{RP}.listeners",
        [ELB["detail"]["requestParameters"]["listeners"][0]] * 101,
        f"{RP}.listeners",
    ),
    ("elb", ELB, f"{RP}.listeners.0.instancePort", "smtp", f"{RP}.listeners[0].instancePort"),
    ("elb", ELB, f"{RP}.listeners.0.instancePort", "25", f"{RP}.listeners[0].instancePort"),
    ("elb", ELB, f"{RP}.listeners.0.instancePort", 25.0, f"{RP}.listeners[0].instancePort"),
    ("elb", ELB, f"{RP}.listeners.0.instancePort", True, f"{RP}.listeners[0].instancePort"),
    ("elb", ELB, f"{RP}.listeners.0.instancePort", 0, f"{RP}.listeners[0].instancePort"),
    ("elb", ELB, f"{RP}.listeners.1.instancePort", 65536, f"{RP}.listeners[1].instancePort"),
    ("elb", ELB, f"{RP}.listeners.0.loadBalancerPort", DELETE, f"{RP}.listeners[0].loadBalancerPort"),
    ("elb", ELB, f"{RP}.listeners.0.protocol", DELETE, f"{RP}.listeners[0].protocol"),
    ("elb", ELB, f"{RP}.listeners.0.protocol", "TCP; reboot", f"{RP}.listeners[0].protocol"),
    ("elb", ELB, f"{RP}.listeners.0.instanceProtocol", 6, f"{RP}.listeners[0].instanceProtocol"),
    ("elb", ELB_LISTENERS, f"{RP}.listeners", [], f"{RP}.listeners"),
    ("elb", ELB_LISTENERS, f"{RP}.listeners", DELETE, f"{RP}.listeners"),
    ("elb", ELB_POLICIES, f"{RP}.instancePort", DELETE, f"{RP}.instancePort"),
    ("elb", ELB_POLICIES, f"{RP}.instancePort", 70000, f"{RP}.instancePort"),
    ("elb", ELB_POLICIES, f"{RP}.policyNames", ["ok", 5], f"{RP}.policyNames[1]"),
    ("elb", ELB_POLICIES, f"{RP}.policyNames", "mx-backend-auth", f"{RP}.policyNames"),
    ("elb", ELB_DELETE, f"{RP}.policyName", DELETE, f"{RP}.policyName"),
    ("elb", ELB_DELETE, f"{RP}.policyName", "", f"{RP}.policyName"),
    # -- ELBv2 --
    ("elb", NLB, f"{RP}.name", DELETE, f"{RP}.name"),
    ("elb", NLB, f"{RP}.type", "classic", f"{RP}.type"),
    ("elb", NLB, "detail.responseElements.loadBalancers", [], "detail.responseElements.loadBalancers"),
    (
        "elb",
        NLB,
        "detail.responseElements.loadBalancers.0.loadBalancerArn",
        DELETE,
        "detail.responseElements.loadBalancers[0].loadBalancerArn",
    ),
    ("elb", NLB_TG, f"{RP}.name", "t" * 33, f"{RP}.name"),
    ("elb", NLB_TG, f"{RP}.port", 0, f"{RP}.port"),
    ("elb", NLB_TG, f"{RP}.port", "25", f"{RP}.port"),
    ("elb", NLB_TG, "detail.responseElements", DELETE, "detail.responseElements"),
    ("elb", NLB_TG, "detail.responseElements.targetGroups", [], "detail.responseElements.targetGroups"),
    (
        "elb",
        NLB_TG,
        "detail.responseElements.targetGroups.0.targetGroupArn",
        DELETE,
        "detail.responseElements.targetGroups[0].targetGroupArn",
    ),
    (
        "elb",
        NLB_TG,
        "detail.responseElements.targetGroups.0.port",
        65536,
        "detail.responseElements.targetGroups[0].port",
    ),
    ("elb", NLB_LISTENER, f"{RP}.loadBalancerArn", DELETE, f"{RP}.loadBalancerArn"),
    ("elb", NLB_LISTENER, f"{RP}.loadBalancerArn", "a" * 2049, f"{RP}.loadBalancerArn"),
    ("elb", NLB_LISTENER, f"{RP}.port", 99999, f"{RP}.port"),
    ("elb", NLB_ATTRS, f"{RP}.targetGroupArn", DELETE, f"{RP}.targetGroupArn"),
    ("elb", NLB_ATTRS, f"{RP}.attributes", [], f"{RP}.attributes"),
    ("elb", NLB_ATTRS, f"{RP}.attributes.0.value", DELETE, f"{RP}.attributes[0].value"),
    ("elb", NLB_ATTRS, f"{RP}.attributes.0.value", False, f"{RP}.attributes[0].value"),
    ("elb", NLB_ATTRS, f"{RP}.attributes.0.key", "k" * 257, f"{RP}.attributes[0].key"),
    # -- the launch lifecycle event --
    ("lifecycle", LAUNCH, "detail", DELETE, "detail"),
    ("lifecycle", LAUNCH, "detail.EC2InstanceId", DELETE, "detail.EC2InstanceId"),
    ("lifecycle", LAUNCH, "detail.EC2InstanceId", "web-01", "detail.EC2InstanceId"),
    ("lifecycle", LAUNCH, "detail.EC2InstanceId", "i-0A1B2C3D4E5F60718", "detail.EC2InstanceId"),
    ("lifecycle", LAUNCH, "detail.EC2InstanceId", "i-0a1b2c3d4e5f607180", "detail.EC2InstanceId"),
    ("lifecycle", LAUNCH, "detail.EC2InstanceId", "i-0a1b2c3d4e5f60718\n", "detail.EC2InstanceId"),
    ("lifecycle", LAUNCH, "detail.LifecycleActionToken", DELETE, "detail.LifecycleActionToken"),
    ("lifecycle", LAUNCH, "detail.LifecycleActionToken", "", "detail.LifecycleActionToken"),
    ("lifecycle", LAUNCH, "detail.LifecycleActionToken", "t" * 37, "detail.LifecycleActionToken"),
    ("lifecycle", LAUNCH, "detail.AutoScalingGroupName", DELETE, "detail.AutoScalingGroupName"),
    ("lifecycle", LAUNCH, "detail.AutoScalingGroupName", "g" * 256, "detail.AutoScalingGroupName"),
    ("lifecycle", LAUNCH, "detail.LifecycleHookName", DELETE, "detail.LifecycleHookName"),
    ("lifecycle", LAUNCH, "detail.LifecycleHookName", "h" * 256, "detail.LifecycleHookName"),
    ("lifecycle", LAUNCH, "detail.LifecycleHookName", "my hook", "detail.LifecycleHookName"),
    (
        "lifecycle",
        LAUNCH,
        "detail.LifecycleTransition",
        "autoscaling:EC2_INSTANCE_TERMINATING",
        "detail.LifecycleTransition",
    ),
    ("lifecycle", LAUNCH, "detail.Origin", "Nowhere", "detail.Origin"),
    ("lifecycle", LAUNCH, "detail.Destination", 5, "detail.Destination"),
    ("lifecycle", LAUNCH, "detail.NotificationMetadata", "m" * 1024, "detail.NotificationMetadata"),
    ("lifecycle", LAUNCH, "detail.NotificationMetadata", {"a": 1}, "detail.NotificationMetadata"),
    # -- SSM status events --
    ("ssm", SSM, "detail-type", "EC2 Instance State-change Notification", "detail-type"),
    ("ssm", SSM, "detail-type", DELETE, "detail-type"),
    ("ssm", SSM, "detail", DELETE, "detail"),
    ("ssm", SSM, "detail.command-id", DELETE, "detail.command-id"),
    ("ssm", SSM, "detail.command-id", "c" * 37, "detail.command-id"),
    ("ssm", SSM, "detail.document-name", DELETE, "detail.document-name"),
    ("ssm", SSM, "detail.document-name", "", "detail.document-name"),
    ("ssm", SSM, "detail.instance-id", "web-1", "detail.instance-id"),
    ("ssm", SSM, "detail.status", DELETE, "detail.status"),
    ("ssm", SSM, "detail.status", "", "detail.status"),
    ("ssm", SSM, "detail.status", "S" * 65, "detail.status"),
    ("ssm", SSM, "detail.requested-date-time", "yesterday", "detail.requested-date-time"),
    ("ssm", SSM, "detail.requested-date-time", "2026-11-28T04:01:58.412", "detail.requested-date-time"),
    ("ssm", SSM_COMMAND, "detail.command-id", DELETE, "detail.command-id"),
    ("ssm", SSM_COMMAND, "detail.status", DELETE, "detail.status"),
]


@pytest.mark.parametrize(
    ("kind", "base", "path", "value", "field"),
    ROWS,
    ids=[f"{kind}:{path}={'<deleted>' if v is DELETE else str(v)[:24]}" for kind, _, path, v, _ in ROWS],
)
def test_a_bad_event_is_rejected_naming_the_field(
    kind: str, base: dict[str, Any], path: str, value: Any, field: str
) -> None:
    # Given a good sample event / When parsed / Then it is accepted
    PARSERS[kind][0](base)
    # Given the same event with one field broken / When parsed / Then it is rejected naming that field
    message = rejected(kind, changed(base, path, value))
    assert message.startswith(f"{field}: "), message
    # And the message stays short whatever the value was
    assert len(message) < 400


@pytest.mark.parametrize("kind", sorted(PARSERS))
@pytest.mark.parametrize("event", [None, [], "[]", 5])
def test_an_event_that_is_not_an_object_is_rejected(kind: str, event: Any) -> None:
    parse, _ = PARSERS[kind]
    with pytest.raises(MalformedEvent):
        parse(event)


# ----- the SQS batch that carries launches ----------------------------------------------------


def batch(**record: Any) -> dict[str, Any]:
    good = {"messageId": "m1", "body": json.dumps(LAUNCH), "eventSource": "aws:sqs", "attributes": {}}
    return {"Records": [{key: value for key, value in (good | record).items() if value is not DELETE}]}


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"detail": {}}, "Records"),
        ({"Records": "m1"}, "Records"),
        ({"Records": ["m1"]}, "Records[0]"),
        (batch(messageId=DELETE), "Records[0].messageId"),
        (batch(messageId=""), "Records[0].messageId"),
        (batch(messageId="m" * 101), "Records[0].messageId"),
        (batch(body=DELETE), "Records[0].body"),
        (batch(body={"detail": {}}), "Records[0].body"),
        (batch(body="b" * 262145), "Records[0].body"),
        (batch(eventSource="aws:kinesis"), "Records[0].eventSource"),
        (batch(attributes={"ApproximateReceiveCount": 3}), "Records[0].attributes.ApproximateReceiveCount"),
        (batch(attributes=["ApproximateReceiveCount"]), "Records[0].attributes"),
    ],
)
def test_a_bad_batch_is_rejected_naming_the_field(event: dict[str, Any], field: str) -> None:
    parse_launch_batch(batch())
    assert rejected("batch", event).startswith(f"{field}: ")


def test_a_record_whose_body_is_bad_fails_alone_when_it_is_read() -> None:
    # Given a batch of one good record and one whose body is not a launch event
    good, bad = batch()["Records"][0], batch(messageId="m2", body=json.dumps([LAUNCH]))["Records"][0]
    parsed = parse_launch_batch({"Records": [good, bad]})
    # Then the batch parses, the good launch reads, and the bad one is rejected naming the event
    assert parsed.records[0].launch().instance_id == LAUNCH["detail"]["EC2InstanceId"]
    with pytest.raises(
        MalformedEvent, match=r"^malformed lifecycle event: \(event\): input should be an object"
    ):
        parsed.records[1].launch()
    with pytest.raises(MalformedEvent, match="not JSON"):
        parse_lifecycle_event(b"\xff\xfe")


# ----- times ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T04:00:00Z", datetime(2026, 11, 28, 4, tzinfo=UTC)),
        ("2026-11-28t04:00:00z", datetime(2026, 11, 28, 4, tzinfo=UTC)),
        ("2026-11-28T04:00:00.412Z", datetime(2026, 11, 28, 4, 0, 0, 412000, tzinfo=UTC)),
        ("2026-11-28T04:00:00.123456789Z", datetime(2026, 11, 28, 4, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-28T05:30:00+01:30", datetime(2026, 11, 28, 4, tzinfo=UTC)),
        ("2026-11-27T23:00:00-05:00", datetime(2026, 11, 28, 4, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_rfc3339_times_with_an_offset_are_read_as_aware_datetimes(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() is not None


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-28T04:00:00",
        "2026-11-28",
        "2026-11-28T04:00Z",
        "2026-11-28 04:00:00Z",
        "2026-11-28T04:00:00+0100",
        "2026-11-28T04:00:00+01",
        "2026-11-28T04:00:00+24:00",
        "2026-11-28T04:00:00+01:60",
        "2026-13-01T04:00:00Z",
        "0000-01-01T00:00:00Z",
        "2026-11-28T04:00:00.Z",
        "+2026-11-28T04:00:00Z",
        "2026-11-28T04:00:00Z\n",
        "\uff12026-11-28T04:00:00Z",
    ],
)
def test_other_times_are_refused(text: str) -> None:
    assert parse_time(text) is None


def test_the_offset_is_kept() -> None:
    parsed = parse_time("2026-11-28T05:30:00+01:30")
    assert parsed is not None and parsed.utcoffset() == timedelta(hours=1, minutes=30)
    assert parsed.tzinfo == timezone(timedelta(hours=1, minutes=30))


# ----- whatever arrives, the parsers answer with a model or MalformedEvent --------------------

NASTY: list[Any] = [
    None,
    "",
    0,
    -1,
    2**70,
    1.5,
    True,
    [],
    {},
    [None],
    {"": None},
    "x" * 3000,
    "\uff12\uff15",
    "$(id)",
]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in children:
        found += _paths(child, (*prefix, key))
    return found


@pytest.mark.parametrize(
    "name", sorted(p.name for p in EVENTS_DIR.glob("*.json") if p.name != "expected.json")
)
def test_random_damage_never_escapes_as_another_exception(name: str) -> None:
    # Given a sample event and 300 seeded mutations of it (a field replaced by a nasty value or removed)
    import random

    event = load_event(name)
    parse, _ = PARSERS[_kind(event)]
    rng = random.Random(name)
    paths = _paths(event)
    for _ in range(300):
        damaged = copy.deepcopy(event)
        *parents, last = rng.choice(paths)
        node: Any = damaged
        for part in parents:
            node = node[part]
        if rng.random() < 0.2:
            del node[last]
        else:
            node[last] = copy.deepcopy(rng.choice(NASTY))
        # When parsed / Then a model comes back or MalformedEvent, never another exception
        try:
            parse(damaged)
        except MalformedEvent as exc:
            assert len(str(exc)) < 400
