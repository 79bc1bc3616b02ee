"""Operators stay in control (issue 7.5) on the embedded AWS: the kill switch, the pause tag,
the flapping guard, the notices (at most once per state), the refresh of fleet targets."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest
from proxymx import controls
from proxymx.aws import Clients
from proxymx.config import Settings, load_settings
from proxymx.errors import ProxymxError
from proxymx.launch.outcome import check_outcome
from proxymx.loadbalancer.plan import PROXY_POLICY_NAME
from proxymx.loadbalancer.service import ProxyProtocolResult, enable_proxy_protocol
from proxymx.models.attach import parse_load_balancer_event
from proxymx.models.cloudtrail import parse_elb_event
from proxymx.models.ssm import parse_ssm_event
from proxymx.reconcile import Reconcile
from proxymx.state import StateTable
from proxymx_tools.embedded import ENABLED_PARAMETER_NAME, STATE_TABLE_NAME, EmbeddedAws, to_sqs_batch
from proxymx_tools.recorder import CallRecorder
from proxymx_tools.seed import register_fleet_instances, seed_world
from support import DOCUMENT, GROUP, HOOK, lambda_context, load_app, load_event

REGION = "us-east-1"
SWITCHED = load_settings({"ENABLED_PARAMETER": ENABLED_PARAMETER_NAME, "STATE_TABLE": STATE_TABLE_NAME})


def client(service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=REGION)


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


# ----- the flapping guard ---------------------------------------------------------------------------


def topic() -> str:
    return str(client("sns").create_topic(Name="mx-alerts")["TopicArn"])


def with_topic(arn: str) -> Settings:
    return replace(SWITCHED, notification_topic_arn=arn)


def undo(event: dict[str, Any], number: int) -> dict[str, Any]:
    """The IaC tool takes the PROXY policy away again: the same call, a new CloudTrail event."""
    name = event["detail"]["requestParameters"]["loadBalancerName"]
    elb = client("elb")
    elb.set_load_balancer_policies_for_backend_server(LoadBalancerName=name, InstancePort=25, PolicyNames=[])
    elb.delete_load_balancer_policy(LoadBalancerName=name, PolicyName=PROXY_POLICY_NAME)
    again = copy.deepcopy(event)
    again["detail"]["eventID"] = f"{event['detail']['eventID'][:-2]}{number:02d}"
    return again


def drift_item(unit: str) -> dict[str, Any]:
    item = client("dynamodb").get_item(TableName=STATE_TABLE_NAME, Key={"pk": {"S": f"DRIFT#{unit}"}})
    return dict(item.get("Item") or {})


def test_an_actor_undoing_three_times_suspends_the_repairs(aws: EmbeddedAws, calls: CallRecorder) -> None:
    # Given a Classic ELB whose PROXY policy an IaC role deleted, and an operator's topic
    settings = with_topic(topic())
    event = seeded()
    name = event["detail"]["requestParameters"]["loadBalancerName"]
    # When the same actor undoes the repair twice more within the hour
    first = handle(event, settings)
    second = handle(undo(event, 2), settings)
    before = len(calls.writes)
    third = handle(undo(event, 3), settings)
    # Then the first two are repaired, the third is not: suspended, naming the actor
    assert (first.outcome, second.outcome, third.outcome) == ("changed", "changed", "suspended")
    actor = "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_PlatformAdmin"
    assert actor in third.reason and "3 time(s) within 60 min" in third.reason
    assert elb_writes(calls, before) == []
    assert backend_policies(name) == {}
    assert {m.name: m.value for m in third.metrics()}["DriftFlapping"] == 1
    # And one SNS notice names the actor
    (notice,) = calls.of("publish")
    assert notice["Subject"] == f"proxymx: repairs suspended on classic/{name} (flapping)"
    assert actor in notice["Message"]
    # When the sweep finds the unit off, and the same event is delivered again
    summary = Reconcile(settings, Clients()).run()
    duplicate = handle(undo(event, 3), settings)
    # Then neither repairs it, the duplicate is counted once, and no second notice is sent
    assert [c.outcome for c in summary.load_balancers] == ["suspended"]
    assert {m.name: m.value for m in summary.metrics()}["DriftFlapping"] == 1
    assert duplicate.outcome == "suspended"
    assert len(drift_item(f"classic/{name}")["drifts"]["M"]) == 3
    assert elb_writes(calls, before) == []
    assert len(calls.of("publish")) == 1


def test_undos_by_different_actors_do_not_add_up(aws: EmbeddedAws) -> None:
    # Given three undos of one unit by three different principals
    event = seeded()
    results = []
    for number, who in enumerate(["alice", "bob", "carol"], 1):
        step = undo(event, number) if number > 1 else copy.deepcopy(event)
        step["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = (
            f"arn:aws:iam::123456789012:role/{who}"
        )
        results.append(handle(step))
    # Then each is repaired: nobody flaps
    assert [r.outcome for r in results] == ["changed", "changed", "changed"]


def test_concurrent_undos_are_each_counted(aws: EmbeddedAws) -> None:
    # Given the guard of one unit, and a second drift event recorded between the first one's
    # read and its write (two Lambda invocations at once)
    table = StateTable(STATE_TABLE_NAME, Clients().dynamodb)
    guard = controls.FlapGuard(table, threshold=3, window_minutes=60)
    raced = [False]
    real_update = table.update_if

    def update_after_a_rival(*args: Any, **kwargs: Any) -> Any:
        if not raced[0]:
            raced[0] = True
            guard.record("classic/mx", "iac", "event-b", 1000, 1000)
        return real_update(*args, **kwargs)

    table.update_if = update_after_a_rival  # type: ignore[method-assign]
    # When the first event is recorded
    guard.record("classic/mx", "iac", "event-a", 1000, 1000)
    # Then both undos are in the item (the loser of the race re-read and counted again)
    drifts = drift_item("classic/mx")["drifts"]["M"]
    assert sorted(drifts) == ["event-a", "event-b"]
    # And the third one suspends
    assert guard.record("classic/mx", "iac", "event-c", 1001, 1001) is not None


# ----- notices: at most once per unit per state change -------------------------------------------------


def notice_item(unit: str) -> dict[str, Any]:
    item = client("dynamodb").get_item(TableName=STATE_TABLE_NAME, Key={"pk": {"S": f"NOTICE#{unit}"}})
    return dict(item.get("Item") or {})


def test_a_blocked_unit_is_notified_once_not_every_sweep(aws: EmbeddedAws, calls: CallRecorder) -> None:
    # Given a Classic ELB in front of two fleet instances never configured, and a topic
    settings = with_topic(topic())
    event = seeded("elb-create-listeners-unready-fleet")
    name = event["detail"]["requestParameters"]["loadBalancerName"]
    # When its event arrives and then three sweeps find it blocked again
    assert handle(event, settings).outcome == "blocked"
    for _sweep in range(3):
        assert [c.outcome for c in Reconcile(settings, Clients()).run().load_balancers] == ["blocked"]
    # Then one blocked notice was published (and, the fleet being cut over meanwhile, one notice
    # that the cutover starts: the sweeps find it in flight and start no second one)
    assert [p["Subject"] for p in calls.of("publish")] == [
        f"proxymx: PROXY protocol blocked on classic/{name}",
        f"proxymx: cutover starting on classic/{name}",
    ]
    assert notice_item(f"classic/{name}")["state"]["S"].startswith("blocked:")
    # When the instances are proven ready and the sweep switches the unit
    lb = client("elb").describe_load_balancers(LoadBalancerNames=[name])["LoadBalancerDescriptions"][0]
    client("ec2").create_tags(
        Resources=[i["InstanceId"] for i in lb["Instances"]],
        Tags=[{"Key": "proxymx:proxy-protocol", "Value": "ready"}],
    )
    assert [c.outcome for c in Reconcile(settings, Clients()).run().load_balancers] == ["changed"]
    # Then the notice is over: a later problem on the unit is news again
    assert notice_item(f"classic/{name}") == {}


def test_a_failed_publish_gives_the_notice_back(aws: EmbeddedAws) -> None:
    # Given a topic that does not exist (the publish fails)
    settings = with_topic("arn:aws:sns:us-east-1:123456789012:gone")
    event = seeded("elb-create-listeners-unready-fleet")
    name = event["detail"]["requestParameters"]["loadBalancerName"]
    # When the blocked unit is notified / Then the failure surfaces and no NOTICE# item stays,
    # so the next event or sweep tries again
    with pytest.raises(ProxymxError, match="Publish"):
        handle(event, settings)
    assert notice_item(f"classic/{name}") == {}


# ----- refresh: fleet targets registered unready behind a unit that sends --------------------------

REFRESHING = load_settings(
    {"DOCUMENT_NAME": DOCUMENT, "STATE_TABLE": STATE_TABLE_NAME, "ENABLED_PARAMETER": ENABLED_PARAMETER_NAME}
)


def sending_classic(name: str = "mx") -> None:
    elb = client("elb")
    elb.create_load_balancer(
        LoadBalancerName=name,
        Listeners=[
            {"Protocol": "TCP", "LoadBalancerPort": 25, "InstanceProtocol": "TCP", "InstancePort": 25}
        ],
        AvailabilityZones=[f"{REGION}a"],
    )
    elb.create_load_balancer_policy(
        LoadBalancerName=name,
        PolicyName=PROXY_POLICY_NAME,
        PolicyTypeName="ProxyProtocolPolicyType",
        PolicyAttributes=[{"AttributeName": "ProxyProtocol", "AttributeValue": "true"}],
    )
    elb.set_load_balancer_policies_for_backend_server(
        LoadBalancerName=name, InstancePort=25, PolicyNames=[PROXY_POLICY_NAME]
    )


def registration_event(instance_ids: list[str], name: str = "mx") -> dict[str, Any]:
    event = load_event("elb-create-listeners")
    event["detail"].update(
        eventName="RegisterInstancesWithLoadBalancer",
        requestParameters={"loadBalancerName": name, "instances": [{"instanceId": i} for i in instance_ids]},
    )
    return event


def readiness_tag(instance_id: str) -> str | None:
    tags = client("ec2").describe_tags(
        Filters=[
            {"Name": "resource-id", "Values": [instance_id]},
            {"Name": "key", "Values": ["proxymx:proxy-protocol"]},
        ]
    )["Tags"]
    return tags[0]["Value"] if tags else None


def test_a_fleet_instance_registered_unready_behind_a_sending_elb_is_configured_and_tagged(
    world: EmbeddedAws, calls: CallRecorder
) -> None:
    # Given a Classic ELB that sends the header, and a fleet instance never configured
    sending_classic()
    (instance,) = register_fleet_instances("mx", 1)
    world.launch.register_instance(instance)
    event = registration_event([instance])
    # When its registration event arrives
    result = handle(event, REFRESHING)
    # Then the document runs on it at once, for what the ELB sends, and nothing else is written
    assert result.outcome == "changed" and result.unready_behind_header == []
    (sent,) = calls.of("send_command")
    assert sent["InstanceIds"] == [instance]
    assert sent["Parameters"]["Mode"] == ["configure"]
    assert (sent["Parameters"]["SmtpPorts"], sent["Parameters"]["ProxyProtocol"]) == (["25"], ["v1"])
    assert sent["Comment"].startswith("proxymx:refresh:") and len(sent["Comment"]) <= 100
    assert elb_writes(calls) == []
    assert {m.name: m.value for m in result.metrics()} == {"TargetsRefreshed": 1}
    # When the same event is delivered again while the command is in flight
    again = handle(event, REFRESHING)
    # Then no second command is sent, and this delivery changed nothing
    assert len(calls.of("send_command")) == 1
    assert again.outcome == "compliant" and "already in flight" in again.reason
    # When CheckOutcome reads the run (no lifecycle action: an in-service instance)
    (status,) = world.launch.drain_status_events()
    report = check_outcome(parse_ssm_event(status), REFRESHING, Clients(), sleep=lambda _s: None)
    # Then the instance is tagged ready for what it proved, and no action is completed
    assert report.outcome == "ignored"
    tag = readiness_tag(instance)
    assert tag is not None and tag.startswith("ready;ports=25")


def test_outside_the_fleet_is_alarmed_and_notified_once_never_touched(
    aws: EmbeddedAws, calls: CallRecorder
) -> None:
    # Given a sending ELB, an operator's topic, and an instance outside the fleet registered twice
    settings = replace(REFRESHING, notification_topic_arn=topic())
    sending_classic()
    (outsider,) = register_fleet_instances("mx", 1, {"proxymx:fleet": "other"})
    first = handle(registration_event([outsider]), settings)
    second = handle(registration_event([outsider]), settings)
    # Then both are blocked and counted for the alarm; no command, one notice
    assert (first.outcome, second.outcome) == ("blocked", "blocked")
    assert {m.name: m.value for m in first.metrics()}["UnreadyTargetsBehindHeader"] == 1
    assert calls.of("send_command") == []
    (notice,) = calls.of("publish")
    assert notice["Subject"] == "proxymx: unready targets behind the PROXY header on classic/mx"
    assert outsider in notice["Message"]


def test_paused_registration_refreshes_nothing_and_alarms(world: EmbeddedAws, calls: CallRecorder) -> None:
    # Given the kill switch off, a sending ELB and an unready fleet instance registered
    set_switch("false")
    sending_classic()
    (instance,) = register_fleet_instances("mx", 1)
    # When the registration event arrives
    result = handle(registration_event([instance]), REFRESHING)
    # Then no command is sent: paused, and the instance is counted unready behind the header
    assert result.outcome == "paused"
    assert calls.of("send_command") == []
    assert {m.name: m.value for m in result.metrics()}["UnreadyTargetsBehindHeader"] == 1


def test_the_sweep_refreshes_a_stale_fleet_target_behind_a_sending_elb(
    world: EmbeddedAws, calls: CallRecorder
) -> None:
    # Given a sending ELB whose fleet instance was proven by an older document (config level 1)
    sending_classic()
    (stale,) = register_fleet_instances("mx", 1, {"proxymx:proxy-protocol": "ready;ports=25;v=any;doc=1"})
    world.launch.register_instance(stale)
    # When the sweep runs
    summary = Reconcile(REFRESHING, Clients()).run()
    # Then the instance is configured again for what the ELB sends; the ELB is not written
    (check,) = summary.load_balancers
    assert check.outcome == "changed" and "refresh" in check.reason
    (sent,) = calls.of("send_command")
    assert sent["InstanceIds"] == [stale] and sent["Parameters"]["Mode"] == ["configure"]
    assert elb_writes(calls) == []
    # And the next sweep, with the command still in flight, sends nothing more
    (again,) = Reconcile(REFRESHING, Clients()).run().load_balancers
    assert len(calls.of("send_command")) == 1
    assert again.outcome == "compliant"


def test_the_paused_sweep_refreshes_nothing_and_reports_paused(
    world: EmbeddedAws, calls: CallRecorder
) -> None:
    # Given the kill switch off, and a sending ELB whose fleet instance was proven by an older document
    set_switch("false")
    sending_classic()
    (stale,) = register_fleet_instances("mx", 1, {"proxymx:proxy-protocol": "ready;ports=25;v=any;doc=1"})
    world.launch.register_instance(stale)
    # When the sweep runs
    summary = Reconcile(REFRESHING, Clients()).run()
    # Then no command is sent: the unit is reported paused, its stale target counted unready
    (check,) = summary.load_balancers
    assert check.outcome == "paused", check.reason
    assert calls.of("send_command") == []
    assert summary.to_dict()["load_balancers_paused"] == 1
    assert {m.name: m.value for m in summary.metrics()}["UnreadyTargetsBehindHeader"] == 1


# ----- Auto Scaling Attach* calls: registration is a write too -----------------------------------------


def attach(event: dict[str, Any], settings: Settings = REFRESHING) -> ProxyProtocolResult:
    return enable_proxy_protocol(parse_load_balancer_event(event), settings, Clients(), sleep=lambda _s: None)


def test_attaching_a_group_to_a_sending_elb_configures_its_instances(
    aws: EmbeddedAws, calls: CallRecorder
) -> None:
    # Given a Classic ELB that sends the header and a fleet group with one running instance never
    # configured (the sample's world)
    event = seed_world(load_event("asg-attach-load-balancers"))
    (group,) = client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["mx-fleet"])[
        "AutoScalingGroups"
    ]
    (instance,) = [i["InstanceId"] for i in group["Instances"]]
    # When the AttachLoadBalancers call arrives
    result = attach(event)
    # Then the group's instance is configured for what the ELB sends; the ELB is not written
    assert result.outcome == "changed" and result.event_name == "AttachLoadBalancers"
    (sent,) = calls.of("send_command")
    assert sent["InstanceIds"] == [instance]
    assert (sent["Parameters"]["Mode"], sent["Parameters"]["ProxyProtocol"]) == (["configure"], ["v1"])
    assert elb_writes(calls) == []


def test_attaching_a_target_group_that_sends_v2_configures_v2(aws: EmbeddedAws, calls: CallRecorder) -> None:
    # Given a fleet group (from the sample, without its ELB) and a TCP target group on 2525 that sends
    event = load_event("asg-attach-load-balancers")
    vpc = client("ec2").describe_vpcs()["Vpcs"][0]["VpcId"]
    tg = client("elbv2").create_target_group(Name="mx-smtp", Protocol="TCP", Port=2525, VpcId=vpc)[
        "TargetGroups"
    ][0]["TargetGroupArn"]
    client("elbv2").modify_target_group_attributes(
        TargetGroupArn=tg, Attributes=[{"Key": "proxy_protocol_v2.enabled", "Value": "true"}]
    )
    event["detail"]["eventName"] = "AttachTrafficSources"
    event["detail"]["requestParameters"] = {
        "autoScalingGroupName": "mx-fleet",
        "trafficSources": [{"identifier": tg, "type": "elbv2"}],
    }
    seed_world(event)
    # When the AttachTrafficSources call arrives
    result = attach(event)
    # Then the group's instance is configured for PROXY v2 on the group's port
    assert result.outcome == "changed"
    (sent,) = calls.of("send_command")
    assert (sent["Parameters"]["SmtpPorts"], sent["Parameters"]["ProxyProtocol"]) == (["2525"], ["v2"])
    assert elb_writes(calls) == []


def test_a_failed_attach_call_is_ignored(aws: EmbeddedAws, calls: CallRecorder) -> None:
    event = load_event("asg-attach-load-balancers")
    event["detail"]["errorCode"] = "ValidationError"
    result = attach(event)
    assert result.outcome == "ignored" and "ValidationError" in result.reason
    assert calls.calls == []


def test_the_sweep_refreshes_a_stale_fleet_target_behind_a_sending_target_group(
    world: EmbeddedAws, calls: CallRecorder
) -> None:
    from proxymx_tools.seed import _V2World

    # Given an NLB target group that sends v2 (placement on_first_ack), and a fleet instance behind
    # it on port 2525 proven for v1 only
    v2 = _V2World()
    lb = v2.load_balancer("mx-nlb")
    tg = v2.elbv2.create_target_group(Name="mx-smtp", Protocol="TCP", Port=25, VpcId=v2.vpc)["TargetGroups"][
        0
    ]["TargetGroupArn"]
    v2.listener(lb, "TCP", 25, tg)
    v2.elbv2.modify_target_group_attributes(
        TargetGroupArn=tg,
        Attributes=[
            {"Key": "proxy_protocol_v2.enabled", "Value": "true"},
            {"Key": "proxy_protocol_v2.client_to_server.header_placement", "Value": "on_first_ack"},
        ],
    )
    image = v2.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    (stale,) = [
        i["InstanceId"]
        for i in v2.ec2.run_instances(
            ImageId=image,
            MinCount=1,
            MaxCount=1,
            SubnetId=v2.subnets[0],
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [
                        {"Key": "proxymx:fleet", "Value": "mx"},
                        {"Key": "proxymx:proxy-protocol", "Value": "ready;ports=2525;v=v1;doc=2"},
                    ],
                }
            ],
        )["Instances"]
    ]
    v2.elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": stale, "Port": 2525}])
    world.launch.register_instance(stale)
    settings = replace(REFRESHING, proxy_protocol_when_client_ip_preserved=True)
    before = len(calls.writes)
    # When the sweep runs
    summary = Reconcile(settings, Clients()).run()
    # Then the instance is configured for v2 on its own port; the target group is not written
    (check,) = summary.load_balancers
    assert check.outcome == "changed", check.reason
    (sent,) = calls.of("send_command")
    assert sent["InstanceIds"] == [stale]
    assert (sent["Parameters"]["SmtpPorts"], sent["Parameters"]["ProxyProtocol"]) == (["2525"], ["v2"])
    assert elb_writes(calls, before) == []


def test_the_sweep_alarms_on_an_unready_target_outside_the_fleet_behind_a_sending_elb(
    aws: EmbeddedAws, calls: CallRecorder
) -> None:
    # Given a sending ELB with an instance outside the fleet, never configured
    sending_classic()
    register_fleet_instances("mx", 1, {"proxymx:fleet": "other"})
    # When the sweep runs / Then it is counted for the alarm, and never touched
    summary = Reconcile(REFRESHING, Clients()).run()
    assert [c.outcome for c in summary.load_balancers] == ["blocked"]
    assert {m.name: m.value for m in summary.metrics()}["UnreadyTargetsBehindHeader"] == 1
    assert calls.of("send_command") == []


def test_a_target_group_flapped_three_times_is_suspended(aws: EmbeddedAws, calls: CallRecorder) -> None:
    # Given an NLB target group whose proxy_protocol_v2 an actor disabled (the sample's world)
    event = seeded("nlb-drift-proxy-disabled")
    arn = event["detail"]["requestParameters"]["targetGroupArn"]
    outcomes = []
    for number in range(1, 4):
        step = copy.deepcopy(event)
        step["detail"]["eventID"] = f"{event['detail']['eventID'][:-2]}{number:02d}"
        if number > 1:
            # the actor disables it again after proxymx's repair
            client("elbv2").modify_target_group_attributes(
                TargetGroupArn=arn, Attributes=[{"Key": "proxy_protocol_v2.enabled", "Value": "false"}]
            )
        before = len(calls.writes)
        outcomes.append(handle(step).outcome)
    # Then the third undo is not repaired: suspended, counted for the alarm
    assert outcomes == ["changed", "changed", "suspended"]
    assert elb_writes(calls, before) == []
    attributes = client("elbv2").describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
    assert {a["Key"]: a["Value"] for a in attributes}["proxy_protocol_v2.enabled"] == "false"


def test_a_fleet_instance_whose_agent_is_not_online_is_reported_and_tried_again(
    world: EmbeddedAws, calls: CallRecorder
) -> None:
    # Given a sending ELB and a fleet instance registered behind it whose SSM agent is not Online
    sending_classic()
    (instance,) = register_fleet_instances("mx", 1)
    event = registration_event([instance])
    # When its registration arrives
    first = handle(event, REFRESHING)
    # Then no command (SendCommand would refuse the batch): reported, alarmed
    assert first.outcome == "blocked" and first.unready_behind_header
    assert calls.of("send_command") == []
    # When its agent comes Online and the event is delivered again
    world.launch.register_instance(instance)
    second = handle(event, REFRESHING)
    # Then the claim given back does not stand in the way: it is configured now
    assert second.outcome == "changed"
    assert [s["InstanceIds"] for s in calls.of("send_command")] == [[instance]]


def test_a_broken_header_placement_is_notified_once(aws: EmbeddedAws, calls: CallRecorder) -> None:
    from proxymx_tools.seed import _V2World

    # Given a target group switched on by hand (default placement: SMTP hangs) in an account
    # that refuses on_first_ack, and an operator's topic
    v2 = _V2World()
    lb = v2.load_balancer("mx-nlb")
    tg = v2.elbv2.create_target_group(Name="mx-smtp", Protocol="TCP", Port=25, VpcId=v2.vpc)["TargetGroups"][
        0
    ]["TargetGroupArn"]
    v2.listener(lb, "TCP", 25, tg)
    v2.elbv2.modify_target_group_attributes(
        TargetGroupArn=tg, Attributes=[{"Key": "proxy_protocol_v2.enabled", "Value": "true"}]
    )
    aws.launch.refuse_header_placement()
    settings = replace(with_topic(topic()), proxy_protocol_when_client_ip_preserved=True)
    # When two sweeps find it broken
    outcomes = [c.outcome for _ in range(2) for c in Reconcile(settings, Clients()).run().load_balancers]
    # Then one notice, with the AWS Support request
    assert outcomes == ["broken", "broken"]
    (notice,) = calls.of("publish")
    assert notice["Subject"] == "proxymx: NLB header placement hangs SMTP (broken)"
    assert tg in notice["Message"] and "Ask AWS Support" in notice["Message"]
