"""The launch flow's pure plan (proxymx.launch.plan): what ConfigureInstance and CheckOutcome
decide, without AWS."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from proxymx.config import Settings, load_settings
from proxymx.launch.plan import (
    MAX_INSTANCES_PER_COMMAND,
    Launch,
    Verdict,
    admit,
    command_chunks,
    launches_of,
    needs_heartbeat,
    release,
)
from proxymx.models.lifecycle import parse_launch_batch
from support import load_event

NOW = datetime(2026, 11, 28, 5, 0, tzinfo=UTC)
DEFAULTS = load_settings({})


def launch(number: int, group: str = "mx", hook: str = "proxymx-postfix-launch") -> Launch:
    return Launch(f"i-{number:017x}", group, hook, time=NOW, message_id=f"m{number}")


# ----- from the queue ----------------------------------------------------------------------


def test_a_malformed_record_is_rejected_alone_and_the_others_become_launches() -> None:
    # Given a batch with a good lifecycle event and a malformed one
    events = [load_event("lifecycle-launch"), load_event("malformed-lifecycle-bad-instance-id")]
    batch = parse_launch_batch(
        {"Records": [{"messageId": f"m{n}", "body": json.dumps(e)} for n, e in enumerate(events)]}
    )
    # When read
    launches, rejected = launches_of(batch)
    # Then the good one is a typed launch carrying its record and token, the bad one is named
    (good,) = launches
    assert (good.message_id, good.group_name, good.hook_name) == (
        batch.records[0].message_id,
        "proxymx-mx-fleet",
        "proxymx-postfix-launch",
    )
    assert good.token is not None
    (bad,) = rejected
    assert bad.message_id == batch.records[1].message_id
    assert "EC2InstanceId" in bad.reason


# ----- scope and de-duplication ---------------------------------------------------------------


def test_admit_keeps_the_first_of_each_instance_and_ignores_other_hooks_and_groups() -> None:
    settings = load_settings({"LAUNCH_GROUP_NAMES": "mx"})
    first = launch(1)
    again = Launch(first.instance_id, "mx", "proxymx-postfix-launch", time=NOW, message_id="m9")
    theirs, elsewhere = launch(2, hook="their-hook"), launch(3, group="web")
    intake = admit([first, theirs, again, elsewhere], settings)
    assert intake.pending == (first,)
    assert {(i.launch.message_id, i.reason.split(":")[0]) for i in intake.ignored} == {
        ("m2", "out of scope"),
        ("m9", "duplicate of message m1 in this batch"),
        ("m3", "out of scope"),
    }


# ----- commands ---------------------------------------------------------------------------------


def test_commands_are_per_group_and_hook_and_never_over_50_instances() -> None:
    # Given 120 launches of one group and 3 of another, arriving interleaved
    launches = [launch(n) for n in range(120)] + [launch(1000 + n, group="mx-b") for n in range(3)]
    # When chunked
    chunks = command_chunks(reversed(launches))
    # Then 3 commands for the first group (50, 50, 20) and one for the second, ids sorted
    assert [(c.group_name, len(c.launches)) for c in chunks] == [
        ("mx", 50),
        ("mx", 50),
        ("mx", 20),
        ("mx-b", 3),
    ]
    assert all(len(c.instance_ids) <= MAX_INSTANCES_PER_COMMAND for c in chunks)
    assert chunks[0].instance_ids == sorted(chunks[0].instance_ids)
    assert sorted(i for c in chunks for i in c.instance_ids) == sorted(x.instance_id for x in launches)


@pytest.mark.parametrize(("age", "expected"), [(119, False), (120, True), (3600, True)])
def test_a_heartbeat_once_the_launch_has_waited_heartbeat_after_seconds(age: int, expected: bool) -> None:
    old = Launch("i-0123456789abcdef0", "mx", "h", time=NOW - timedelta(seconds=age))
    assert needs_heartbeat(old, NOW, DEFAULTS) is expected


# ----- what to do with the lifecycle action ---------------------------------------------------


def settings_with(**env: str) -> Settings:
    return load_settings(env)


PROVEN = Verdict("CONTINUE", "Postfix 3.7.11 configured and verified")
UNPROVEN = Verdict("ABANDON", "Failed (exit code 1)")


@pytest.mark.parametrize(
    ("verdict", "env", "decision", "action", "metric"),
    [
        (PROVEN, {}, "continued", "CONTINUE", "InstancesConfigured"),
        (UNPROVEN, {}, "abandoned", "ABANDON", "ConfigurationFailed"),
        (UNPROVEN, {"FAILURE_RESULT": "HOOK_DEFAULT"}, "left-to-hook-default", None, "ConfigurationFailed"),
        # A dry run never shrinks the fleet, nor feeds the abandoned-instances alarm
        (UNPROVEN, {"DRY_RUN": "true"}, "continued", "CONTINUE", "DryRunReleased"),
        (
            UNPROVEN,
            {"DRY_RUN": "true", "FAILURE_RESULT": "HOOK_DEFAULT"},
            "continued",
            "CONTINUE",
            "DryRunReleased",
        ),
    ],
)
def test_release(
    verdict: Verdict, env: dict[str, str], decision: str, action: str | None, metric: str
) -> None:
    plan = release(verdict, settings_with(**env))
    assert (plan.decision, plan.action, plan.metric) == (decision, action, metric)
    assert plan.dry_run_override is (env.get("DRY_RUN") == "true")


def test_only_a_failure_is_notified_and_only_with_a_topic() -> None:
    topic = {"NOTIFICATION_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:ops"}
    assert release(UNPROVEN, settings_with(**topic)).notify
    assert not release(PROVEN, settings_with(**topic)).notify
    assert not release(UNPROVEN, DEFAULTS).notify


def test_a_launch_found_by_the_sweep_has_the_origin_and_destination_of_an_ordinary_launch() -> None:
    # Given the lifecycle event of an ordinary launch (EC2 -> the group), and the same instance as
    # the sweep finds it (no event: origin and destination are the defaults)
    from proxymx.launch.plan import Launch
    from proxymx.models.lifecycle import parse_lifecycle_event

    event = parse_lifecycle_event(load_event("lifecycle-launch"))
    from_event = Launch.from_event(event)
    swept = Launch(from_event.instance_id, from_event.group_name, from_event.hook_name, from_event.time)
    # Then both name the same launch: the claim key (instance, destination) of a Reconcile re-drive
    # collides with the late SQS delivery's (issue 9, finding 1)
    assert (swept.origin, swept.destination) == (from_event.origin, from_event.destination)
    assert (swept.origin, swept.destination) == ("EC2", "AutoScalingGroup")


def test_a_duplicate_found_without_a_message_says_an_earlier_launch() -> None:
    # Given the same instance twice from the sweep (no SQS message ids)
    now = datetime(2026, 11, 30, tzinfo=UTC)
    first = Launch("i-0123456789abcdef0", "proxymx-mx-fleet", "proxymx-postfix-launch", now)
    intake = admit([first, first], load_settings({}))
    # Then one is pending and the other ignored as a duplicate, naming no message
    assert intake.pending == (first,)
    (ignored,) = intake.ignored
    assert ignored.reason == "duplicate of an earlier launch in this batch"


def test_the_configuration_took_the_run_else_the_wait_from_the_request() -> None:
    from proxymx.launch.plan import Invocation, configuration_seconds

    at = datetime(2026, 11, 30, 12, 0, 30, tzinfo=UTC)
    requested = at - timedelta(seconds=30)

    def run(started: datetime | None, ended: datetime | None) -> Invocation:
        return Invocation("c", "i", "doc", "Success", "Success", 0, "", "", "", started, ended)

    # The run's own duration when SSM says when it started and ended (zero is a duration too)
    assert configuration_seconds(run(requested, requested + timedelta(seconds=12)), requested, at) == 12.0
    assert configuration_seconds(run(requested, requested), requested, at) == 0.0
    # Else from the request to the event: a missing start or end, or an end before the start
    assert configuration_seconds(run(None, at), requested, at) == 30.0
    assert configuration_seconds(run(requested, None), requested, at) == 30.0
    assert configuration_seconds(run(at, requested), requested, at) == 30.0
    # And nothing when the event came before its request (clocks)
    assert configuration_seconds(run(None, None), at + timedelta(seconds=1), at) is None
    assert configuration_seconds(run(None, None), at, at) == 0.0
