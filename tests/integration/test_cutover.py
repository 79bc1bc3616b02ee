"""The fleet-first cutover on the embedded AWS (issue 7.3): a unit blocked by unready fleet targets
is cut over -- the document first, the header when the last target is proven, driven by the
status events the embedded SSM emits and CheckOutcome reads -- all or nothing, and the way back.

The chain is the production one: EnableProxyProtocol (event path) or Reconcile (sweep) starts it;
each status event goes through :func:`proxymx.launch.outcome.check_outcome`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from proxymx.aws import Clients
from proxymx.config import Settings, load_settings
from proxymx.launch.outcome import OutcomeReport, check_outcome
from proxymx.loadbalancer.cutover import CUTOVER_PREFIX, SLOT_KEY, comment_for
from proxymx.loadbalancer.plan import PROXY_POLICY_NAME
from proxymx.loadbalancer.service import EnableProxyProtocol, ProxyProtocolResult, cutovers_for
from proxymx.models.ssm import parse_ssm_event
from proxymx.state import StateTable
from proxymx_tools.embedded import STATE_TABLE_NAME, CommandOutcome, EmbeddedAws, ObedientDocument
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
    """Every status event the embedded SSM emitted so far, each through CheckOutcome (until none
    is left: a revert sent while handling one emits more)."""
    reports = []
    while events := world.launch.drain_status_events():
        for event in events:
            reports.append(check_outcome(parse_ssm_event(event), config, Clients(), sleep=lambda _s: None))
    return reports


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
