"""Operators stay in control (issue 7.5) on the embedded AWS: the kill switch, the pause tag,
the flapping guard, the notices (at most once per state), the refresh of fleet targets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from proxymx import controls
from proxymx.aws import Clients
from proxymx.config import Settings, load_settings
from proxymx.loadbalancer.plan import PROXY_POLICY_NAME
from proxymx.loadbalancer.service import ProxyProtocolResult, enable_proxy_protocol
from proxymx.models.cloudtrail import parse_elb_event
from proxymx.reconcile import Reconcile
from proxymx_tools.embedded import ENABLED_PARAMETER_NAME, STATE_TABLE_NAME, EmbeddedAws, to_sqs_batch
from proxymx_tools.recorder import CallRecorder
from proxymx_tools.seed import seed_world
from support import DOCUMENT, GROUP, HOOK, lambda_context, load_app, load_event

REGION = "us-east-1"
SWITCHED = load_settings({"ENABLED_PARAMETER": ENABLED_PARAMETER_NAME, "STATE_TABLE": STATE_TABLE_NAME})


def client(service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=REGION)


@pytest.fixture(autouse=True)
def _fresh_switch() -> Iterator[None]:
    # The verdict is cached per process (30 s): each test starts without one.
    controls.forget()
    yield
    controls.forget()


def set_switch(value: str, name: str = ENABLED_PARAMETER_NAME) -> None:
    client("ssm").put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
    controls.forget()


def backend_policies(name: str) -> dict[int, list[str]]:
    lb = client("elb").describe_load_balancers(LoadBalancerNames=[name])["LoadBalancerDescriptions"][0]
    return {
        b["InstancePort"]: b["PolicyNames"]
        for b in lb.get("BackendServerDescriptions", [])
        if b["PolicyNames"]
    }


def seeded(event_name: str = "elb-drift-policy-deleted") -> dict[str, Any]:
    """The sample event, and the world it presumes built in the embedded AWS."""
    return seed_world(load_event(event_name))


def handle(event: dict[str, Any], settings: Settings = SWITCHED) -> ProxyProtocolResult:
    return enable_proxy_protocol(parse_elb_event(event), settings, Clients(), sleep=lambda _s: None)


def elb_writes(calls: CallRecorder, since: int = 0) -> list[Any]:
    return [c for c in calls.writes[since:] if c.service in ("elb", "elbv2")]


# ----- the kill switch -----------------------------------------------------------------------------


def test_paused_drift_is_not_repaired_and_resumed_it_is(aws: EmbeddedAws, calls: CallRecorder) -> None:
    # Given the kill switch set to false by an operator
    set_switch("false")
    event = seeded()
    # When a drift event arrives (the PROXY policy deleted by hand)
    result = handle(event)
    # Then nothing is written to the load balancer: paused, with the switch named and the plan
    assert result.outcome == "paused"
    assert f"kill switch {ENABLED_PARAMETER_NAME} = 'false'" in result.reason and "would:" in result.reason
    assert elb_writes(calls) == []
    assert [m.name for m in result.metrics()].count("ProxymxPaused") == 1
    # When the operator resumes and the same drift is seen again
    set_switch("true")
    before = len(calls.writes)
    resumed = handle(event)
    # Then it is repaired
    assert resumed.outcome == "changed" and resumed.drift_repaired
    assert elb_writes(calls, before) != []


def test_a_missing_switch_pauses_fail_safe(aws: EmbeddedAws, calls: CallRecorder) -> None:
    # Given a parameter name no parameter has (deleted, or a wrong name)
    settings = load_settings({"ENABLED_PARAMETER": "/proxymx/gone/enabled"})
    # When a drift event arrives / Then proxymx does not take "unreadable" for "go"
    result = handle(seeded(), settings)
    assert result.outcome == "paused"
    assert "not found: paused (fail safe)" in result.reason
    assert elb_writes(calls) == []


def test_the_verdict_is_cached_30_seconds(aws: EmbeddedAws, calls: CallRecorder) -> None:
    # Given a switch read once at t=0 (on)
    now = [1000.0]
    switch = controls.KillSwitch(ENABLED_PARAMETER_NAME, clock=lambda: now[0])
    ssm = Clients().ssm
    assert switch.halted(ssm) is None
    # When the operator pauses and 29 s pass
    client("ssm").put_parameter(Name=ENABLED_PARAMETER_NAME, Value="false", Type="String", Overwrite=True)
    now[0] += 29
    # Then the cached verdict still holds, without another read
    assert switch.halted(ssm) is None
    assert len(calls.of("get_parameter")) == 1
    # And at 30 s the new value is read: paused
    now[0] += 1
    assert switch.halted(ssm) is not None
    assert len(calls.of("get_parameter")) == 2


def test_a_compliant_event_does_not_read_the_switch(aws: EmbeddedAws, calls: CallRecorder) -> None:
    # Given a Classic ELB whose PROXY policy is in place
    event = seeded()
    assert handle(event).outcome == "changed"
    controls.forget()
    before = len(calls.of("get_parameter"))
    # When the same event is handled again (nothing to write)
    again = handle(event)
    # Then the switch is not read: it guards writes, and reads cost a call
    assert again.outcome == "compliant"
    assert len(calls.of("get_parameter")) == before


def test_paused_sweep_writes_no_load_balancer_and_reports_it(aws: EmbeddedAws, calls: CallRecorder) -> None:
    # Given a Classic ELB without its policy, and the switch off
    seed_world(load_event("elb-create-smtp"))
    set_switch("false")
    before = len(calls.writes)
    # When the sweep runs
    summary = Reconcile(SWITCHED, Clients()).run()
    # Then it writes nothing to load balancers and says so
    assert [c.outcome for c in summary.load_balancers] == ["paused"]
    assert summary.to_dict()["load_balancers_paused"] == 1
    assert {m.name: m.value for m in summary.metrics()}["ProxymxPaused"] == 1
    assert elb_writes(calls, before) == []


def test_paused_launches_are_still_configured(
    world: EmbeddedAws, calls: CallRecorder, settings: Settings
) -> None:
    # Given the kill switch off, and an instance held in Pending:Wait by our hook
    set_switch("false")
    events = world.launch.launch_into_wait(GROUP, HOOK, 1)
    app = load_app("configure_instance")
    config = load_settings({"DOCUMENT_NAME": DOCUMENT, "ENABLED_PARAMETER": ENABLED_PARAMETER_NAME})
    # When its lifecycle event arrives
    response = app.lambda_handler(to_sqs_batch(events), lambda_context(), settings=config, clients=Clients())
    # Then it is configured as always: leaving it to the hook's ABANDON would shrink the fleet
    assert response["batchItemFailures"] == []
    (sent,) = calls.of("send_command")
    assert sent["InstanceIds"] == [events[0]["detail"]["EC2InstanceId"]]


def test_the_pause_tag_still_pauses_one_unit(aws: EmbeddedAws, calls: CallRecorder) -> None:
    # Given the switch on, and a drifted Classic ELB carrying a pause tag far in the future
    event = seed_world(load_event("elb-drift-policy-deleted"))
    name = event["detail"]["requestParameters"]["loadBalancerName"]
    client("elb").add_tags(
        LoadBalancerNames=[name], Tags=[{"Key": "proxymx:pause-until", "Value": "2999-01-01T00:00:00Z"}]
    )
    before = len(calls.writes)
    # When the drift event is handled
    result = enable_proxy_protocol(parse_elb_event(event), SWITCHED, Clients(), sleep=lambda _s: None)
    # Then the unit is paused by its tag, nothing written
    assert result.outcome == "paused" and "proxymx:pause-until" in result.reason
    assert elb_writes(calls, before) == []
    assert PROXY_POLICY_NAME not in str(backend_policies(name))


def test_the_cli_pauses_and_resumes(capsys: pytest.CaptureFixture[str]) -> None:
    from proxymx_tools.cli import main

    # Given the embedded AWS's kill switch (on) / When `proxymx pause`, then `proxymx resume`
    assert main(["pause", "--backend", "moto"]) == 0
    paused = capsys.readouterr().out
    assert main(["resume", "--backend", "moto", "--stack", "other"]) == 0
    resumed = capsys.readouterr().out
    # Then each says what the parameter now holds
    assert paused.startswith(f"{ENABLED_PARAMETER_NAME} = false: proxymx is PAUSED")
    assert resumed.startswith("/proxymx/other/enabled = true: proxymx is running")
