"""The fleet-first cutover on the embedded AWS (issue 7.3): a unit blocked by unready fleet targets
is cut over -- the document first, the header when the last target is proven, driven by the
status events the embedded SSM emits and CheckOutcome reads -- all or nothing, and the way back.

The chain is the production one: EnableProxyProtocol (event path) or Reconcile (sweep) starts it;
each status event goes through :func:`proxymx.launch.outcome.check_outcome`.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from proxymx.aws import Clients
from proxymx.config import Settings, load_settings
from proxymx.launch.outcome import OutcomeReport, check_outcome
from proxymx.loadbalancer.cutover import CUTOVER_PREFIX, SLOT_KEY, comment_for
from proxymx.loadbalancer.plan import PROXY_POLICY_NAME
from proxymx.loadbalancer.service import EnableProxyProtocol, ProxyProtocolResult, cutovers_for
from proxymx.models.ssm import parse_ssm_event
from proxymx.reconcile import Reconcile
from proxymx.state import StateTable
from proxymx_tools.cli import main
from proxymx_tools.cutover_chain import deliver_status_events
from proxymx_tools.embedded import STATE_TABLE_NAME, EmbeddedAws, ObedientDocument
from proxymx_tools.recorder import CallRecorder
from proxymx_tools.seed import register_fleet_instances
from proxymx_tools.seed_launch import ensure_document
from support import DOCUMENT

REGION = "us-east-1"
READY_25 = "ready;ports=25;v=any;doc=2;ip6=1;at=20261130T120501Z"
ENV = {"DOCUMENT_NAME": DOCUMENT, "STATE_TABLE": STATE_TABLE_NAME}


def client(service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=REGION)


@pytest.fixture
def fleet(aws: EmbeddedAws) -> EmbeddedAws:
    """Our document, and a fleet whose document runs do what they are asked and prove it."""
    ensure_document(DOCUMENT)
    aws.launch.script_outcome(ObedientDocument())
    return aws


def settings(**extra: str) -> Settings:
    return load_settings({**ENV, **extra})


def classic(name: str = "mx", instance_port: int = 25) -> None:
    client("elb").create_load_balancer(
        LoadBalancerName=name,
        Listeners=[
            {
                "Protocol": "TCP",
                "LoadBalancerPort": 25,
                "InstanceProtocol": "TCP",
                "InstancePort": instance_port,
            }
        ],
        AvailabilityZones=[f"{REGION}a"],
    )


def fleet_behind(world: EmbeddedAws, name: str, count: int, tags: dict[str, str] | None = None) -> list[str]:
    ids = register_fleet_instances(name, count, tags)
    for instance_id in ids:
        world.launch.register_instance(instance_id)
    return ids


def ensure_classic(config: Settings, name: str = "mx") -> ProxyProtocolResult:
    clients = Clients()
    service = EnableProxyProtocol(
        config, clients, sleep=lambda _s: None, cutovers=cutovers_for(config, clients)
    )
    return service.ensure_classic(name)


def deliver(world: EmbeddedAws, config: Settings) -> list[OutcomeReport]:
    """Every status event the embedded SSM emitted so far, each through CheckOutcome."""
    return deliver_status_events(world.launch, config)


def backend_policies(name: str = "mx") -> dict[int, list[str]]:
    lb = client("elb").describe_load_balancers(LoadBalancerNames=[name])["LoadBalancerDescriptions"][0]
    return {
        b["InstancePort"]: b["PolicyNames"]
        for b in lb.get("BackendServerDescriptions", [])
        if b["PolicyNames"]
    }


def record(unit: str) -> dict[str, Any] | None:
    return StateTable(STATE_TABLE_NAME, Clients().dynamodb).get(CUTOVER_PREFIX + unit, now=0)


def tag_of(instance_id: str) -> str | None:
    reservations = client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    tags = {t["Key"]: t["Value"] for t in reservations[0]["Instances"][0].get("Tags", [])}
    return tags.get("proxymx:proxy-protocol")


# ----- Classic ELB -------------------------------------------------------------------------------


def test_classic_with_in_service_unready_fleet_is_cut_over_then_switched(
    fleet: EmbeddedAws, calls: CallRecorder
) -> None:
    # Given a Classic ELB already taking mail through three fleet instances never configured
    classic()
    ids = fleet_behind(fleet, "mx", 3)
    config = settings()
    # When the unit is reconciled
    started = ensure_classic(config)
    # Then the header stays off, the cutover starts: ONE command, Mode=configure for port 25 v1
    assert started.outcome == "blocked"
    assert "cutover started: 3 target(s) being configured" in started.reason
    assert started.cutovers_started == 1
    assert backend_policies() == {}
    (sent,) = calls.of("send_command")
    assert sorted(sent["InstanceIds"]) == sorted(ids)
    assert sent["Parameters"]["Mode"] == ["configure"]
    assert sent["Parameters"]["SmtpPorts"] == ["25"]
    assert sent["Parameters"]["ProxyProtocol"] == ["v1"]
    assert sent["Comment"] == comment_for("configure", "classic/mx")
    # When the status events reach CheckOutcome
    reports = deliver(fleet, config)
    # Then each target is tagged ready, and the last proof switched the ELB
    assert [r.decision for r in reports] == ["cutover-progress"] * 3
    assert all(tag_of(i) is not None and tag_of(i).startswith("ready;ports=25") for i in ids)  # type: ignore[union-attr]
    assert backend_policies() == {25: [PROXY_POLICY_NAME]}
    done = record("classic/mx")
    assert done is not None and done["phase"] == "switched"
    assert set(done["targets"].values()) == {"proven"}
    assert done["gap_seconds"] >= 0
    assert "CutoversSwitched" in {m.name for r in reports for m in r.measured}
    # And the slot is free again
    slot = StateTable(STATE_TABLE_NAME, Clients().dynamodb).get(SLOT_KEY, now=0)
    assert not (slot or {}).get("holders")


def test_mixed_ready_and_unready_only_the_unready_are_configured(
    fleet: EmbeddedAws, calls: CallRecorder
) -> None:
    # Given one target proven earlier, one baked AMI tagged bare `ready`, two never configured
    classic()
    proven, baked, *plain = fleet_behind(fleet, "mx", 4)
    client("ec2").create_tags(Resources=[proven], Tags=[{"Key": "proxymx:proxy-protocol", "Value": READY_25}])
    client("ec2").create_tags(Resources=[baked], Tags=[{"Key": "proxymx:proxy-protocol", "Value": "ready"}])
    config = settings()
    # When reconciled
    assert "cutover started: 2 target(s)" in ensure_classic(config).reason
    # Then only the two unready ones get the document, and the switch follows their proofs
    (sent,) = calls.of("send_command")
    assert sorted(sent["InstanceIds"]) == sorted(plain)
    deliver(fleet, config)
    assert backend_policies() == {25: [PROXY_POLICY_NAME]}


def test_targets_outside_the_fleet_block_forever_with_zero_writes(
    fleet: EmbeddedAws, calls: CallRecorder
) -> None:
    # Given one fleet instance and one outside the fleet, both unready
    classic()
    fleet_behind(fleet, "mx", 1)
    (outsider,) = fleet_behind(fleet, "mx", 1, {"proxymx:fleet": "other"})
    config = settings()
    before = len(calls.writes)
    # When reconciled, twice
    results = [ensure_classic(config), ensure_classic(config)]
    # Then blocked, reported, no cutover: no command, no tag, no state record, no ELB write
    for result in results:
        assert result.outcome == "blocked"
        assert "no cutover: 1 target(s) outside the fleet" in result.reason and outsider in result.reason
    assert calls.writes[before:] == []
    assert record("classic/mx") is None


def test_cutover_off_only_reports(fleet: EmbeddedAws, calls: CallRecorder) -> None:
    classic()
    fleet_behind(fleet, "mx", 2)
    before = len(calls.writes)
    result = ensure_classic(settings(CUTOVER="off"))
    assert result.outcome == "blocked" and "no cutover (Cutover=off)" in result.reason
    assert calls.writes[before:] == []


def test_dry_run_says_what_it_would_start_and_writes_nothing(fleet: EmbeddedAws, calls: CallRecorder) -> None:
    classic()
    fleet_behind(fleet, "mx", 2)
    before = len(calls.writes)
    result = ensure_classic(settings(DRY_RUN="true"))
    assert result.outcome == "blocked" and result.dry_run
    assert "dry run: would start a cutover: configure 2 target(s)" in result.reason
    # Not even the state table
    assert calls.writes[before:] == []
    assert record("classic/mx") is None


def test_a_failing_target_reverts_the_others_and_the_elb_stays_off(
    fleet: EmbeddedAws, calls: CallRecorder
) -> None:
    # Given three unready fleet instances, one of which cannot be configured
    topic = client("sns").create_topic(Name="mx-ops")["TopicArn"]
    classic()
    ids = fleet_behind(fleet, "mx", 3)
    bad = ids[1]
    fleet.launch.script_outcome(ObedientDocument(failing=frozenset({bad})))
    config = settings(NOTIFICATION_TOPIC_ARN=topic)
    ensure_classic(config)
    # When the status events arrive
    reports = deliver(fleet, config)
    # Then the two configured ones got Mode=revert, are tagged plain, the ELB was never switched
    # (a target still running when the failure arrived is reverted as soon as its proof arrives)
    _configure, *reverts = calls.of("send_command")
    assert {r["Parameters"]["Mode"][0] for r in reverts} == {"revert"}
    assert sorted(i for r in reverts for i in r["InstanceIds"]) == sorted(i for i in ids if i != bad)
    assert {r["Comment"] for r in reverts} == {comment_for("revert", "classic/mx")}
    for instance in ids:
        if instance != bad:
            assert (tag_of(instance) or "").startswith("plain;")
    assert backend_policies() == {}
    assert [c for c in calls.writes if c.service == "elb"] == []
    failed = record("classic/mx")
    assert failed is not None and failed["phase"] == "failed"
    assert failed["targets"] == {ids[0]: "reverted", bad: "failed", ids[2]: "reverted"}
    assert failed["retry_after"] >= failed["failed_at"] + 6 * 3600
    assert "CutoversFailed" in {m.name for r in reports for m in r.measured}
    subjects = [c["Subject"] for c in calls.of("publish")]
    assert subjects == ["proxymx: cutover starting on classic/mx", "proxymx: cutover FAILED on classic/mx"]
    # And the next reconcile does not retry before retry_after (no tight loop)
    again = ensure_classic(config)
    assert again.outcome == "blocked" and "not retried before" in again.reason
    assert len(calls.of("send_command")) == 1 + len(reverts)


def test_the_same_status_event_8_times_at_once_switches_once(fleet: EmbeddedAws, calls: CallRecorder) -> None:
    # Given a cutover of two targets whose status events are each delivered 8 times concurrently
    classic()
    fleet_behind(fleet, "mx", 2)
    config = settings()
    ensure_classic(config)
    events = fleet.launch.drain_status_events() * 8

    def check(event: dict[str, Any]) -> str:
        return check_outcome(parse_ssm_event(event), config, Clients(), sleep=lambda _s: None).decision

    with ThreadPoolExecutor(max_workers=8) as pool:
        decisions = list(pool.map(check, events))
    # Then the ELB was switched exactly once
    assert set(decisions) == {"cutover-progress"}
    assert len(calls.of("set_load_balancer_policies_for_backend_server")) == 1
    assert backend_policies() == {25: [PROXY_POLICY_NAME]}
    done = record("classic/mx")
    assert done is not None and done["phase"] == "switched"


def test_a_target_registered_during_the_cutover_joins_it_before_the_switch(
    fleet: EmbeddedAws, calls: CallRecorder
) -> None:
    # Given a cutover in flight
    classic()
    first = fleet_behind(fleet, "mx", 2)
    config = settings()
    ensure_classic(config)
    pending = fleet.launch.drain_status_events()
    # When a new unready fleet instance is registered before the last proof arrives
    (late,) = fleet_behind(fleet, "mx", 1)
    for event in pending:
        check_outcome(parse_ssm_event(event), config, Clients(), sleep=lambda _s: None)
    # Then the switch is held: the late one gets the document, the ELB is still off
    assert backend_policies() == {}
    assert [s["InstanceIds"] for s in calls.of("send_command")][1] == [late]
    # And once it is proven, the ELB is switched
    deliver(fleet, config)
    assert backend_policies() == {25: [PROXY_POLICY_NAME]}
    done = record("classic/mx")
    assert done is not None and set(done["targets"]) == {*first, late}


def test_listener_25_to_2525_is_cut_over_on_port_2525(fleet: EmbeddedAws, calls: CallRecorder) -> None:
    classic(instance_port=2525)
    fleet_behind(fleet, "mx", 1)
    config = settings()
    ensure_classic(config)
    (sent,) = calls.of("send_command")
    assert sent["Parameters"]["SmtpPorts"] == ["2525"]
    deliver(fleet, config)
    assert backend_policies() == {2525: [PROXY_POLICY_NAME]}


# ----- the slot and the hourly cap ---------------------------------------------------------------


def test_one_cutover_in_flight_the_second_waits_for_the_slot(fleet: EmbeddedAws, calls: CallRecorder) -> None:
    # Given two blocked ELBs and MaxCutoversInFlight=1
    classic("mx-a")
    classic("mx-b")
    fleet_behind(fleet, "mx-a", 1)
    fleet_behind(fleet, "mx-b", 1)
    config = settings(MAX_CUTOVERS_IN_FLIGHT="1")
    # When both are reconciled
    first = ensure_classic(config, "mx-a")
    second = ensure_classic(config, "mx-b")
    # Then only the first starts; the second is told why
    assert "cutover started" in first.reason
    assert "no cutover slot free (MaxCutoversInFlight=1)" in second.reason
    assert len(calls.of("send_command")) == 1
    # And once the first is done, the next reconcile starts the second
    deliver(fleet, config)
    assert "cutover started" in ensure_classic(config, "mx-b").reason
    deliver(fleet, config)
    assert backend_policies("mx-a") and backend_policies("mx-b")


def test_the_hourly_cap_holds_further_cutovers(fleet: EmbeddedAws, calls: CallRecorder) -> None:
    classic("mx-a")
    classic("mx-b")
    fleet_behind(fleet, "mx-a", 1)
    fleet_behind(fleet, "mx-b", 1)
    config = settings(MAX_CUTOVERS_PER_HOUR="1", MAX_CUTOVERS_IN_FLIGHT="2")
    assert "cutover started" in ensure_classic(config, "mx-a").reason
    capped = ensure_classic(config, "mx-b")
    assert "hourly cap reached (MaxCutoversPerHour=1)" in capped.reason
    assert len(calls.of("send_command")) == 1
    # The refused one holds no slot
    slot = StateTable(STATE_TABLE_NAME, Clients().dynamodb).get(SLOT_KEY, now=0)
    assert (slot or {}).get("holders") == {"classic/mx-a"}


# ----- Reconcile ---------------------------------------------------------------------------------


def test_reconcile_starts_the_cutover_and_never_switches_in_front_of_unready_targets(
    fleet: EmbeddedAws, calls: CallRecorder
) -> None:
    classic()
    fleet_behind(fleet, "mx", 2)
    config = settings()
    summary = Reconcile(config, Clients(), sleep=lambda _s: None).run()
    (check,) = summary.load_balancers
    assert check.outcome == "blocked" and summary.cutovers_started == 1
    assert {m.name: m.value for m in summary.metrics()}["CutoversStarted"] == 1
    assert [c for c in calls.writes if c.service == "elb"] == []
    # A second sweep while the targets are still being configured: nothing more
    Reconcile(config, Clients(), sleep=lambda _s: None).run()
    assert len(calls.of("send_command")) == 1
    assert backend_policies() == {}


def test_reconcile_advances_a_cutover_whose_status_events_were_lost(fleet: EmbeddedAws) -> None:
    # Given a cutover whose status events never reached CheckOutcome
    classic()
    ids = fleet_behind(fleet, "mx", 2)
    config = settings()
    ensure_classic(config)
    fleet.launch.drain_status_events()
    # When the sweep runs after the commands' timeout
    later = datetime.now(UTC) + timedelta(seconds=config.command_timeout_seconds + 301)
    summary = Reconcile(config, Clients(), now=later, sleep=lambda _s: None).run()
    # Then it replayed each target's invocation: tagged, proven, switched
    assert len(summary.cutover_repairs) == 2
    assert all((tag_of(i) or "").startswith("ready;") for i in ids)
    assert backend_policies() == {25: [PROXY_POLICY_NAME]}
    done = record("classic/mx")
    assert done is not None and done["phase"] == "switched"


def test_reconcile_releases_a_slot_nothing_holds(fleet: EmbeddedAws) -> None:
    table = StateTable(STATE_TABLE_NAME, Clients().dynamodb)
    table.update_expression_if(
        SLOT_KEY, "ADD holders :me", condition="attribute_not_exists(pk)", bindings={":me": {"classic/gone"}}
    )
    summary = Reconcile(settings(), Clients(), sleep=lambda _s: None).run()
    assert summary.cutover_repairs == ["classic/gone: stale slot released"]
    assert not (table.get(SLOT_KEY, now=0) or {}).get("holders")


# ----- NLB ---------------------------------------------------------------------------------------


def nlb_world(target_type: str = "instance") -> tuple[str, str, Any]:
    from proxymx_tools.seed import _V2World

    world = _V2World()
    lb = world.load_balancer("mx-nlb")
    tg = world.elbv2.create_target_group(
        Name="mx-smtp", Protocol="TCP", Port=25, VpcId=world.vpc, TargetType=target_type
    )["TargetGroups"][0]["TargetGroupArn"]
    world.listener(lb, "TCP", 25, tg)
    return lb, tg, world


def nlb_fleet(aws: EmbeddedAws, world: Any, count: int) -> list[str]:
    image = world.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    reservation = world.ec2.run_instances(
        ImageId=image,
        MinCount=count,
        MaxCount=count,
        SubnetId=world.subnets[0],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "proxymx:fleet", "Value": "mx"}]}],
    )
    ids = [i["InstanceId"] for i in reservation["Instances"]]
    for instance_id in ids:
        aws.launch.register_instance(instance_id)
    return ids


def proxy_v2(world: Any, tg: str) -> str:
    attributes = world.elbv2.describe_target_group_attributes(TargetGroupArn=tg)["Attributes"]
    return str({a["Key"]: a["Value"] for a in attributes}.get("proxy_protocol_v2.enabled", "false"))


def test_nlb_instance_targets_are_cut_over_on_their_own_port(fleet: EmbeddedAws, calls: CallRecorder) -> None:
    # Given an NLB target group whose instance targets take SMTP on per-target port 2525
    lb, tg, world = nlb_world()
    ids = nlb_fleet(fleet, world, 2)
    world.elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": i, "Port": 2525} for i in ids])
    config = settings(PROXY_PROTOCOL_WHEN_CLIENT_IP_PRESERVED="true")
    clients = Clients()
    service = EnableProxyProtocol(
        config, clients, sleep=lambda _s: None, cutovers=cutovers_for(config, clients)
    )
    # When reconciled
    result = service.ensure_load_balancer_v2(lb)
    # Then the document runs for v2 on 2525, and the last proof turns the group's header on
    assert result.outcome == "blocked" and "cutover started: 2 target(s)" in result.reason
    (sent,) = calls.of("send_command")
    assert (sent["Parameters"]["SmtpPorts"], sent["Parameters"]["ProxyProtocol"]) == (["2525"], ["v2"])
    assert proxy_v2(world, tg) == "false"
    deliver(fleet, config)
    assert proxy_v2(world, tg) == "true"
    done = record(f"tg/{tg}")
    assert done is not None and done["phase"] == "switched"


def test_nlb_ip_targets_are_mapped_to_their_instances_and_cut_over(
    fleet: EmbeddedAws, calls: CallRecorder
) -> None:
    lb, tg, world = nlb_world("ip")
    ids = nlb_fleet(fleet, world, 2)
    described = world.ec2.describe_instances(InstanceIds=ids)["Reservations"][0]["Instances"]
    ips = {i["InstanceId"]: i["PrivateIpAddress"] for i in described}
    world.elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": ip} for ip in ips.values()])
    config = settings()
    clients = Clients()
    service = EnableProxyProtocol(
        config, clients, sleep=lambda _s: None, cutovers=cutovers_for(config, clients)
    )
    assert "cutover started: 2 target(s)" in service.ensure_load_balancer_v2(lb).reason
    (sent,) = calls.of("send_command")
    assert sorted(sent["InstanceIds"]) == sorted(ids)
    deliver(fleet, config)
    assert proxy_v2(world, tg) == "true"


# ----- the way back ------------------------------------------------------------------------------


def cut_over(world: EmbeddedAws, config: Settings, name: str = "mx", count: int = 2) -> list[str]:
    """A Classic ELB switched by a completed cutover (its fleet tagged ready)."""
    classic(name)
    ids = fleet_behind(world, name, count)
    ensure_classic(config, name)
    deliver(world, config)
    assert backend_policies(name) == {25: [PROXY_POLICY_NAME]}
    return ids


def test_the_way_back_turns_the_elb_off_first_then_reverts_the_fleet(
    fleet: EmbeddedAws, calls: CallRecorder
) -> None:
    # Given a cut-over ELB whose port 25 also carries an operator's other backend policy
    config = settings()
    ids = cut_over(fleet, config)
    client("elb").create_load_balancer_policy(
        LoadBalancerName="mx",
        PolicyName="operator-auth",
        PolicyTypeName="BackendServerAuthenticationPolicyType",
        PolicyAttributes=[],
    )
    client("elb").set_load_balancer_policies_for_backend_server(
        LoadBalancerName="mx", InstancePort=25, PolicyNames=[PROXY_POLICY_NAME, "operator-auth"]
    )
    # When the operator runs `proxymx off mx` and the sweep comes by
    assert main(["off", "mx", "--backend", "moto"]) == 0
    start = len(calls.calls)
    summary = Reconcile(config, Clients(), sleep=lambda _s: None).run()
    (check,) = summary.load_balancers
    # Then the PROXY policy is gone (the other one kept), and only AFTER that the fleet got Mode=revert
    assert check.outcome == "changed" and "header turned off (instance port 25)" in check.reason
    assert backend_policies() == {25: ["operator-auth"]}
    operations = [c.operation for c in calls.calls[start:]]
    off_at = operations.index("set_load_balancer_policies_for_backend_server")
    revert_at = operations.index("send_command")
    assert off_at < revert_at
    revert = calls.calls[start + revert_at].params
    assert revert["Parameters"]["Mode"] == ["revert"] and sorted(revert["InstanceIds"]) == sorted(ids)
    assert revert["Comment"] == comment_for("off", "classic/mx")
    # And CheckOutcome tags them plain; the next sweep finds nothing left to do
    reports = deliver(fleet, config)
    assert {r.decision for r in reports} == {"cutover-progress"}
    assert all((tag_of(i) or "").startswith("plain;") for i in ids)
    again = Reconcile(config, Clients(), sleep=lambda _s: None).run()
    assert again.load_balancers[0].outcome == "compliant"
    assert len(calls.of("send_command")) == 2  # the cutover's configure, the way back's revert


def test_the_way_back_keeps_targets_another_elb_still_sends_to(
    fleet: EmbeddedAws, calls: CallRecorder
) -> None:
    # Given two cut-over ELBs sharing one instance
    config = settings(MAX_CUTOVERS_IN_FLIGHT="2")
    (own,) = cut_over(fleet, config, "mx", 1)
    (shared,) = cut_over(fleet, config, "mx-b", 1)
    client("elb").register_instances_with_load_balancer(
        LoadBalancerName="mx", Instances=[{"InstanceId": shared}]
    )
    # When only "mx" is asked off
    client("elb").add_tags(LoadBalancerNames=["mx"], Tags=[{"Key": "proxymx:proxy-protocol", "Value": "off"}])
    result = ensure_classic(config, "mx")
    # Then its own instance is reverted, the shared one stays configured (mx-b still sends)
    assert "1 target(s) kept configured" in result.reason
    revert = calls.of("send_command")[-1]
    assert revert["InstanceIds"] == [own]
    assert backend_policies("mx-b") == {25: [PROXY_POLICY_NAME]}


def test_the_way_back_of_a_target_group_disables_v2_then_reverts(
    fleet: EmbeddedAws, calls: CallRecorder
) -> None:
    lb, tg, world = nlb_world()
    ids = nlb_fleet(fleet, world, 1)
    world.elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": i} for i in ids])
    config = settings(PROXY_PROTOCOL_WHEN_CLIENT_IP_PRESERVED="true")
    clients = Clients()
    service = EnableProxyProtocol(
        config, clients, sleep=lambda _s: None, cutovers=cutovers_for(config, clients)
    )
    service.ensure_load_balancer_v2(lb)
    deliver(fleet, config)
    assert proxy_v2(world, tg) == "true"
    assert main(["off", tg, "--backend", "moto"]) == 0
    start = len(calls.calls)
    result = service.ensure_load_balancer_v2(lb)
    assert result.outcome == "changed" and result.way_back
    assert proxy_v2(world, tg) == "false"
    operations = [c.operation for c in calls.calls[start:]]
    assert operations.index("modify_target_group_attributes") < operations.index("send_command")
    deliver(fleet, config)
    assert (tag_of(ids[0]) or "").startswith("plain;")


def test_a_dry_run_way_back_writes_nothing(fleet: EmbeddedAws, calls: CallRecorder) -> None:
    ids = cut_over(fleet, settings(), "mx", 1)
    client("elb").add_tags(LoadBalancerNames=["mx"], Tags=[{"Key": "proxymx:proxy-protocol", "Value": "off"}])
    before = len(calls.writes)
    result = ensure_classic(settings(DRY_RUN="true"))
    assert result.outcome == "changed" and result.reason.startswith(
        "dry run: nothing written; would: way back"
    )
    assert "header turned off (instance port 25)" in result.reason
    assert "1 fleet target(s) being reverted to plain (commands none yet)" in result.reason
    assert (tag_of(ids[0]) or "").startswith("ready;")
    assert calls.writes[before:] == []


def test_targets_ssm_cannot_reach_fail_the_cutover_at_once(fleet: EmbeddedAws, calls: CallRecorder) -> None:
    # Given fleet instances whose SSM agent is not registered (SendCommand refuses them)
    classic()
    register_fleet_instances("mx", 2)
    # When reconciled
    result = ensure_classic(settings())
    # Then the cutover failed before it began: nothing configured, nothing to revert, slot free
    assert result.outcome == "blocked" and "cutover started and failed at once" in result.reason
    assert {m.name: m.value for m in result.metrics()}["CutoversFailed"] == 1
    failed = record("classic/mx")
    assert failed is not None and set(failed["targets"].values()) == {"failed"}
    slot = StateTable(STATE_TABLE_NAME, Clients().dynamodb).get(SLOT_KEY, now=0)
    assert not (slot or {}).get("holders")
    assert backend_policies() == {}


def test_a_launch_racing_the_cutover_is_left_to_the_launch_flow(
    fleet: EmbeddedAws, calls: CallRecorder
) -> None:
    # Given an ELB with an unready fleet instance, whose Auto Scaling group holds a launch in
    # Pending:Wait (ConfigureInstance is configuring it)
    from proxymx_tools.seed_launch import ensure_group
    from support import GROUP, HOOK

    classic()
    fleet_behind(fleet, "mx", 1)
    ensure_group(GROUP, HOOK)
    client("autoscaling").attach_load_balancers(AutoScalingGroupName=GROUP, LoadBalancerNames=["mx"])
    (launch,) = fleet.launch.launch_into_wait(GROUP, HOOK, 1)
    launching = launch["detail"]["EC2InstanceId"]
    # When reconciled
    result = ensure_classic(settings())
    # Then the launch counts (blocked), and no cutover sends a second run to it
    assert result.outcome == "blocked" and launching in result.reason
    assert f"no cutover yet: 1 launch(es) in Pending:Wait ({launching})" in result.reason
    assert calls.of("send_command") == []
    assert backend_policies() == {}


# ----- the operator's brake holds a cutover (issue 7.5) ------------------------------------------


def braked_settings(**extra: str) -> Settings:
    from proxymx_tools.embedded import ENABLED_PARAMETER_NAME

    return settings(ENABLED_PARAMETER=ENABLED_PARAMETER_NAME, **extra)


def set_switch(value: str) -> None:
    from proxymx import controls
    from proxymx_tools.embedded import ENABLED_PARAMETER_NAME

    client("ssm").put_parameter(Name=ENABLED_PARAMETER_NAME, Value=value, Type="String", Overwrite=True)
    controls.forget()


def slot_holders() -> set[str]:
    slot = StateTable(STATE_TABLE_NAME, Clients().dynamodb).get(SLOT_KEY, now=0)
    return set((slot or {}).get("holders") or ())


def test_a_pause_during_a_cutover_holds_it_and_the_sweep_resumes_it(
    fleet: EmbeddedAws, calls: CallRecorder
) -> None:
    # Given a cutover of two fleet targets in flight, the kill switch on
    classic()
    ids = fleet_behind(fleet, "mx", 2)
    config = braked_settings()
    assert "cutover started" in ensure_classic(config).reason
    # When the operator pauses proxymx, then the targets' proofs arrive
    set_switch("false")
    reports = deliver(fleet, config)
    # Then no switch and no revert: the fleet stays configured, the record says held and why
    assert backend_policies() == {}
    assert [c for c in calls.writes if c.service == "elb"] == []
    assert len(calls.of("send_command")) == 1
    assert all((tag_of(i) or "").startswith("ready;ports=25") for i in ids)
    held = record("classic/mx")
    assert held is not None and held["phase"] == "held" and held["resume"] == "switch"
    assert "kill switch" in held["reason"] and "'false'" in held["reason"]
    assert set(held["targets"].values()) == {"proven"}
    assert "CutoversHeld" in {m.name for r in reports for m in r.measured}
    # And it keeps its slot (no other cutover may start while everything is frozen)
    assert slot_holders() == {"classic/mx"}
    # And a sweep while still paused changes nothing
    Reconcile(config, Clients(), sleep=lambda _s: None).run()
    assert backend_policies() == {} and record("classic/mx")["phase"] == "held"  # type: ignore[index]
    # When the operator resumes and the next sweep runs
    set_switch("true")
    summary = Reconcile(config, Clients(), sleep=lambda _s: None).run()
    # Then the held cutover is switched (recomputed, with the interlock) and its slot released
    assert "classic/mx: held cutover resumed (switch)" in summary.cutover_repairs
    assert backend_policies() == {25: [PROXY_POLICY_NAME]}
    done = record("classic/mx")
    assert done is not None and done["phase"] == "switched"
    assert slot_holders() == set()
    assert len(calls.of("send_command")) == 1


def test_a_failure_while_paused_holds_the_revert_until_resumed(
    fleet: EmbeddedAws, calls: CallRecorder
) -> None:
    # Given a cutover whose second target cannot be configured, and proxymx paused meanwhile
    classic()
    ids = fleet_behind(fleet, "mx", 2)
    fleet.launch.script_outcome(ObedientDocument(failing=frozenset({ids[1]})))
    config = braked_settings()
    ensure_classic(config)
    set_switch("false")
    # When the status events arrive
    deliver(fleet, config)
    # Then the revert is held too: no Mode=revert sent, the proven target stays configured
    assert len(calls.of("send_command")) == 1
    held = record("classic/mx")
    assert held is not None and (held["phase"], held["resume"]) == ("held", "revert")
    assert held["targets"] == {ids[0]: "proven", ids[1]: "failed"}
    assert (tag_of(ids[0]) or "").startswith("ready;")
    # When resumed, the sweep takes up the revert: all or nothing, then failed
    set_switch("true")
    summary = Reconcile(config, Clients(), sleep=lambda _s: None).run()
    assert any("held cutover resumed (revert" in line for line in summary.cutover_repairs)
    _configure, revert = calls.of("send_command")
    assert (revert["InstanceIds"], revert["Parameters"]["Mode"]) == ([ids[0]], ["revert"])
    deliver(fleet, config)
    failed = record("classic/mx")
    assert failed is not None and failed["phase"] == "failed"
    assert (tag_of(ids[0]) or "").startswith("plain;")
    assert backend_policies() == {}


def test_the_pause_tag_holds_a_cutover_until_it_expires(fleet: EmbeddedAws, calls: CallRecorder) -> None:
    # Given a cutover in flight, then the operator's pause tag on that ELB only
    classic()
    fleet_behind(fleet, "mx", 2)
    config = braked_settings()
    ensure_classic(config)
    until = (datetime.now(UTC) + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    client("elb").add_tags(LoadBalancerNames=["mx"], Tags=[{"Key": "proxymx:pause-until", "Value": until}])
    # When the proofs arrive
    deliver(fleet, config)
    # Then held by the tag: nothing switched, nothing reverted
    held = record("classic/mx")
    assert held is not None and held["phase"] == "held"
    assert "proxymx:pause-until" in held["reason"]
    assert backend_policies() == {} and len(calls.of("send_command")) == 1
    # When the pause has expired (its time is past) and the sweep runs
    past = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    client("elb").add_tags(LoadBalancerNames=["mx"], Tags=[{"Key": "proxymx:pause-until", "Value": past}])
    summary = Reconcile(config, Clients(), sleep=lambda _s: None).run()
    # Then the sweep switched it
    assert "classic/mx: held cutover resumed (switch)" in summary.cutover_repairs
    assert backend_policies() == {25: [PROXY_POLICY_NAME]}


@pytest.mark.parametrize("failing", [False, True])
def test_a_pause_tag_on_the_nlb_holds_its_target_groups_cutover(
    fleet: EmbeddedAws, calls: CallRecorder, failing: bool
) -> None:
    # Given an NLB target group cut over (one target failing, or none), then a pause tag on the NLB
    lb, tg, world = nlb_world()
    ids = nlb_fleet(fleet, world, 2)
    world.elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": i} for i in ids])
    if failing:
        fleet.launch.script_outcome(ObedientDocument(failing=frozenset({ids[1]})))
    config = braked_settings(PROXY_PROTOCOL_WHEN_CLIENT_IP_PRESERVED="true")
    clients = Clients()
    EnableProxyProtocol(
        config, clients, sleep=lambda _s: None, cutovers=cutovers_for(config, clients)
    ).ensure_load_balancer_v2(lb)
    until = (datetime.now(UTC) + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    world.elbv2.add_tags(ResourceArns=[lb], Tags=[{"Key": "proxymx:pause-until", "Value": until}])
    # When the proofs arrive
    deliver(fleet, config)
    # Then held (its switch, or its revert), nothing written to the group or the fleet
    held = record(f"tg/{tg}")
    assert held is not None and held["phase"] == "held"
    assert held["resume"] == ("revert" if failing else "switch")
    assert "proxymx:pause-until" in held["reason"]
    assert proxy_v2(world, tg) == "false" and len(calls.of("send_command")) == 1
    assert calls.of("modify_target_group_attributes") == []


def test_a_revert_after_the_elb_was_deleted_is_not_held(fleet: EmbeddedAws, calls: CallRecorder) -> None:
    # Given a cutover whose second target fails, and its ELB deleted meanwhile (switch on)
    classic()
    ids = fleet_behind(fleet, "mx", 2)
    fleet.launch.script_outcome(ObedientDocument(failing=frozenset({ids[1]})))
    config = braked_settings()
    ensure_classic(config)
    client("elb").delete_load_balancer(LoadBalancerName="mx")
    # When the status events arrive
    deliver(fleet, config)
    # Then the revert is not held (a deleted unit carries no pause tag): the proven one is put back
    _configure, revert = calls.of("send_command")
    assert (revert["InstanceIds"], revert["Parameters"]["Mode"]) == ([ids[0]], ["revert"])
    failed = record("classic/mx")
    assert failed is not None and failed["phase"] == "failed"


def test_the_audit_shows_a_held_cutover_in_progress_with_its_reason(fleet: EmbeddedAws) -> None:
    from proxymx_tools.audit import Audit

    # Given a cutover held by the kill switch
    classic()
    fleet_behind(fleet, "mx", 2)
    config = braked_settings()
    ensure_classic(config)
    set_switch("false")
    deliver(fleet, config)
    # When the account is audited
    report = Audit(config, Clients()).run()
    # Then the unit is a cutover in progress, held, and the audit says why
    (unit,) = [r for r in report.resources if r.id == "mx"]
    assert unit.state == "cutover in progress"
    assert "cutover held" in unit.reason and "kill switch" in unit.reason


# ----- AddTags starts the way back at once -------------------------------------------------------


def add_tags_event(
    api_version: str, resources: list[str], tags: dict[str, str], config: Settings
) -> ProxyProtocolResult:
    """The CloudTrail AddTags call (the sample event, with these resources and tags) through
    EnableProxyProtocol's event path."""
    from proxymx.loadbalancer.service import enable_proxy_protocol
    from proxymx.models.cloudtrail import parse_elb_event
    from support import load_event

    event = load_event("elb-add-tags-off")
    detail = event["detail"]
    detail["apiVersion"] = api_version
    key = "loadBalancerNames" if api_version == "2012-06-01" else "resourceArns"
    detail["requestParameters"] = {key: resources, "tags": [{"key": k, "value": v} for k, v in tags.items()]}
    return enable_proxy_protocol(parse_elb_event(event), config, Clients(), sleep=lambda _s: None)


def tag_elb(name: str, tags: dict[str, str]) -> None:
    client("elb").add_tags(LoadBalancerNames=[name], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


def test_add_tags_off_on_a_switched_elb_turns_it_off_then_reverts_the_fleet_at_once(
    fleet: EmbeddedAws, calls: CallRecorder
) -> None:
    # Given a cut-over Classic ELB, then the operator's tag asking for the header off
    config = settings()
    ids = cut_over(fleet, config)
    tag_elb("mx", {"proxymx:proxy-protocol": "off"})
    start = len(calls.calls)
    # When the AddTags call's event arrives (no sweep)
    result = add_tags_event("2012-06-01", ["mx"], {"proxymx:proxy-protocol": "off"}, config)
    # Then the way back ran at once: the header off first, then Mode=revert to the fleet
    assert result.outcome == "changed" and result.event_name == "AddTags"
    assert result.way_back and "header turned off (instance port 25)" in result.reason
    assert backend_policies() == {}
    operations = [c.operation for c in calls.calls[start:]]
    off_at = operations.index("set_load_balancer_policies_for_backend_server")
    assert off_at < operations.index("send_command")
    revert = calls.of("send_command")[-1]
    assert revert["Parameters"]["Mode"] == ["revert"] and sorted(revert["InstanceIds"]) == sorted(ids)
    deliver(fleet, config)
    assert all((tag_of(i) or "").startswith("plain;") for i in ids)


def test_add_tags_off_on_a_switched_target_group_disables_v2_then_reverts(
    fleet: EmbeddedAws, calls: CallRecorder
) -> None:
    # Given an NLB target group switched by a cutover
    lb, tg, world = nlb_world()
    ids = nlb_fleet(fleet, world, 1)
    world.elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": i} for i in ids])
    config = settings(PROXY_PROTOCOL_WHEN_CLIENT_IP_PRESERVED="true")
    clients = Clients()
    EnableProxyProtocol(
        config, clients, sleep=lambda _s: None, cutovers=cutovers_for(config, clients)
    ).ensure_load_balancer_v2(lb)
    deliver(fleet, config)
    assert proxy_v2(world, tg) == "true"
    # When the operator tags the target group off and its AddTags event arrives
    world.elbv2.add_tags(ResourceArns=[tg], Tags=[{"Key": "proxymx:proxy-protocol", "Value": "off"}])
    start = len(calls.calls)
    result = add_tags_event("2015-12-01", [tg], {"proxymx:proxy-protocol": "off"}, config)
    # Then v2 is off first, then the fleet reverted
    assert result.outcome == "changed" and result.way_back
    assert proxy_v2(world, tg) == "false"
    operations = [c.operation for c in calls.calls[start:]]
    assert operations.index("modify_target_group_attributes") < operations.index("send_command")
    deliver(fleet, config)
    assert (tag_of(ids[0]) or "").startswith("plain;")


def test_add_tags_of_unrelated_keys_is_ignored_without_an_aws_call(
    fleet: EmbeddedAws, calls: CallRecorder
) -> None:
    # Given a cut-over Classic ELB
    config = settings()
    cut_over(fleet, config)
    start = len(calls.calls)
    # When someone adds a cost-centre tag, and the pause tag (which only stops writes)
    tags = {"cost-center": "mail-42", "proxymx:pause-until": "2999-01-01T00:00:00Z"}
    result = add_tags_event("2012-06-01", ["mx"], tags, config)
    # Then ignored, and not a single AWS call was made
    assert result.outcome == "ignored" and "cost-center, proxymx:pause-until" in result.reason
    assert calls.calls[start:] == []
    assert backend_policies() == {25: [PROXY_POLICY_NAME]}


def test_add_tags_naming_an_alb_is_ignored(fleet: EmbeddedAws, calls: CallRecorder) -> None:
    alb = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188"
    result = add_tags_event("2015-12-01", [alb], {"proxymx:proxy-protocol": "off"}, settings())
    assert result.outcome == "ignored" and "not a network load balancer or target group" in result.reason
    assert calls.writes == []


@pytest.mark.parametrize(
    ("request_parameters", "field"),
    [
        ({"tags": [{"key": "proxymx:proxy-protocol", "value": "off"}]}, "loadBalancerNames"),
        ({"loadBalancerNames": [], "tags": [{"key": "k"}]}, "loadBalancerNames"),
        ({"loadBalancerNames": ["mx"], "tags": []}, "tags"),
        ({"loadBalancerNames": ["mx"], "tags": [{"value": "off"}]}, "tags[0].key"),
    ],
)
def test_a_malformed_add_tags_is_rejected_naming_the_field(
    request_parameters: dict[str, Any], field: str
) -> None:
    from proxymx.errors import MalformedEvent
    from proxymx.models.cloudtrail import parse_elb_event
    from support import load_event

    event = load_event("elb-add-tags-off")
    event["detail"]["requestParameters"] = request_parameters
    with pytest.raises(MalformedEvent, match=rf"detail\.requestParameters\.{re.escape(field)}"):
        parse_elb_event(event)


# ----- proxymx cutover list | clear ---------------------------------------------------------------


def failed_cutover(world: EmbeddedAws, config: Settings) -> list[str]:
    """A Classic ELB "mx" whose cutover failed (one target could not be configured)."""
    classic()
    ids = fleet_behind(world, "mx", 2)
    world.launch.script_outcome(ObedientDocument(failing=frozenset({ids[1]})))
    ensure_classic(config)
    deliver(world, config)
    failed = record("classic/mx")
    assert failed is not None and failed["phase"] == "failed"
    return ids


def test_cutover_list_prints_each_record(fleet: EmbeddedAws, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a failed cutover, and one in flight on another ELB
    config = settings(MAX_CUTOVERS_IN_FLIGHT="2")
    failed_cutover(fleet, config)
    classic("mx-b")
    fleet_behind(fleet, "mx-b", 1)
    fleet.launch.script_outcome(ObedientDocument())
    ensure_classic(config, "mx-b")
    capsys.readouterr()
    # When the operator lists them
    assert main(["cutover", "list", "--backend", "moto", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    # Then each record with its phase, start, reason and retry_after
    by_unit = {row["unit"]: row for row in listed["cutovers"]}
    assert set(by_unit) == {"classic/mx", "classic/mx-b"}
    assert by_unit["classic/mx"]["phase"] == "failed"
    assert "target(s) failed" in by_unit["classic/mx"]["reason"]
    failed = record("classic/mx")
    assert failed is not None
    retry = datetime.fromtimestamp(failed["retry_after"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert by_unit["classic/mx"]["retry_after"] == retry
    assert by_unit["classic/mx-b"]["phase"] == "configuring"
    assert by_unit["classic/mx-b"]["started"].startswith(str(datetime.now(UTC).year))
    # And the text form has a header and one line per record
    assert main(["cutover", "list", "--backend", "moto"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["unit", "phase", "started", "retry_after", "reason"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["classic/mx", "failed"],
        ["classic/mx-b", "configuring"],
    ]


def test_cutover_clear_deletes_a_failed_cutover_so_the_next_sweep_starts_again(
    fleet: EmbeddedAws, calls: CallRecorder, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a failed cutover waiting for its retry_after, its cause fixed
    config = settings()
    failed_cutover(fleet, config)
    fleet.launch.script_outcome(ObedientDocument())
    assert "not retried before" in ensure_classic(config).reason
    slot_before = slot_holders()
    writes_before = len(calls.writes)
    # When the operator clears it
    assert main(["cutover", "clear", "mx", "--backend", "moto"]) == 0
    assert "cleared    CUTOVER#classic/mx" in capsys.readouterr().out
    # Then the record is gone with ONE conditional delete, nothing else released
    assert record("classic/mx") is None
    (delete,) = calls.writes[writes_before:]
    assert delete.operation == "delete_item" and "ConditionExpression" in delete.params
    assert slot_holders() == slot_before
    # And the next reconcile starts a new cutover, which switches the ELB
    assert "cutover started" in ensure_classic(config).reason
    deliver(fleet, config)
    assert backend_policies() == {25: [PROXY_POLICY_NAME]}


@pytest.mark.parametrize("paused", [False, True])
def test_cutover_clear_refuses_a_cutover_in_flight(
    fleet: EmbeddedAws, calls: CallRecorder, capsys: pytest.CaptureFixture[str], paused: bool
) -> None:
    # Given a cutover in flight (configuring; or held by the kill switch)
    classic()
    fleet_behind(fleet, "mx", 2)
    config = braked_settings()
    ensure_classic(config)
    if paused:
        set_switch("false")
        deliver(fleet, config)
    phase = "held" if paused else "configuring"
    assert (record("classic/mx") or {}).get("phase") == phase
    capsys.readouterr()
    # When the operator tries to clear it
    code = main(["cutover", "clear", "mx", "--backend", "moto"])
    # Then refused with exit 1 and a clear message; the record is untouched
    err = capsys.readouterr().err
    assert code == 1
    assert f"refused    CUTOVER#classic/mx is in flight ({phase})" in err
    assert ("proxymx resume" in err) is paused
    assert (record("classic/mx") or {}).get("phase") == phase
    assert slot_holders() == {"classic/mx"}


def test_cutover_clear_of_an_unknown_unit_says_so(
    fleet: EmbeddedAws, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cutover", "clear", "nothing-here", "--backend", "moto"]) == 1
    assert "no cutover record CUTOVER#classic/nothing-here" in capsys.readouterr().err


def test_cutover_cli_finds_the_stacks_state_table(
    fleet: EmbeddedAws, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a deployed stack whose StateTable has a generated name, and a failed cutover in it
    template = {
        "Resources": {
            "StateTable": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                },
            }
        }
    }
    client("cloudformation").create_stack(StackName="mx-stack", TemplateBody=json.dumps(template))
    name = client("cloudformation").describe_stack_resource(
        StackName="mx-stack", LogicalResourceId="StateTable"
    )["StackResourceDetail"]["PhysicalResourceId"]
    StateTable(name, Clients().dynamodb).put_if_absent(
        "CUTOVER#classic/mx", {"unit": "classic/mx", "phase": "failed"}, now=0, expires_at=2**40
    )
    # When listed and cleared by the stack's name (the default backend: the AWS environment)
    assert main(["cutover", "list", "--stack", "mx-stack", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert (listed["table"], [r["unit"] for r in listed["cutovers"]]) == (name, ["classic/mx"])
    assert main(["cutover", "clear", "mx", "--stack", "mx-stack"]) == 0
    # Then the stack's table lost the record; an unknown stack is a clear error
    assert StateTable(name, Clients().dynamodb).get("CUTOVER#classic/mx", now=0) is None
    capsys.readouterr()
    assert main(["cutover", "list", "--stack", "no-such-stack"]) == 1
    assert "proxymx cutover list:" in capsys.readouterr().err
