"""The sweep's cost grows with API pages, not with load balancers (issue 12).

L compliant load balancers in scope, seeded on the embedded AWS, swept by Reconcile; every call
counted by the shared recorder. The formula (proxymx.inventory):

- Classic: ceil(L/400) DescribeLoadBalancers pages + ceil(L/20) DescribeTags, nothing per ELB
  (their SMTP ports list proxymx's own policy, known without DescribeLoadBalancerPolicies);
- NLB: ceil(L/400) pages of load balancers + ceil(T/400) of target groups + ceil((L+T)/20)
  DescribeTags + 1 DescribeTargetGroupAttributes per SMTP group + 1 DescribeListeners per NLB
  whose listeners decide something (a group on a non-SMTP port, or TCP instance targets whose
  client address a TLS listener would hide); AWS has no batch form of either.

A per-resource read creeping back (a DescribeLoadBalancers by name, DescribeTags of one, a
DescribeTargetHealth of a compliant group) breaks the equality.
"""

from __future__ import annotations

from collections import Counter
from math import ceil

import pytest
from proxymx.aws import Clients
from proxymx.config import Settings
from proxymx.reconcile import Reconcile
from proxymx_tools.embedded import EmbeddedAws
from proxymx_tools.recorder import CallRecorder
from proxymx_tools.seed_account import AccountBuilder, compliant_classic, compliant_nlbs
from proxymx_tools.sweepcost import (
    LATENCY_SECONDS,
    formula_classic,
    formula_nlb,
    reconcile_timeout_seconds,
    sweep_cost,
)
from support import GROUP, HOOK

ELB_SERVICES = ("elb", "elbv2")


def sweep_calls(settings: Settings, clients: Clients, calls: CallRecorder) -> Counter[str]:
    """Sweep the load balancers; the ELB calls made, by operation (service.operation)."""
    calls.calls.clear()
    sweep = Reconcile(settings, clients)
    sweep.sweep_load_balancers()
    assert {c.outcome for c in sweep.summary.load_balancers} == {"compliant"}, sweep.summary.describe()
    return Counter(f"{c.service}.{c.operation}" for c in calls.calls if c.service in ELB_SERVICES)


@pytest.mark.parametrize("count", [10, 100, 1000])
def test_classic_sweep_reads_pages_and_batches_only(
    aws: object, settings: Settings, clients: Clients, calls: CallRecorder, count: int
) -> None:
    # Given L compliant Classic ELBs in scope
    compliant_classic(count)
    # When the sweep reads them
    made = sweep_calls(settings, clients, calls)
    # Then it made pages + ceil(L/20) calls, and not one per load balancer
    assert made == Counter(
        {
            "elb.describe_load_balancers": ceil(count / 400),
            "elb.describe_tags": ceil(count / 20),
            # The v2 listing: one page, no NLB, so no target group is listed.
            "elbv2.describe_load_balancers": 1,
        }
    )
    assert sum(made.values()) <= ceil(count / 400) + ceil(count / 20) + 1


@pytest.mark.parametrize("count", [10, 100, 1000])
def test_nlb_sweep_reads_pages_batches_and_one_call_per_resource_without_a_batch(
    aws: object, settings: Settings, clients: Clients, calls: CallRecorder, count: int
) -> None:
    # Given L compliant NLBs, each with one SMTP target group of IP targets (T = L)
    compliant_nlbs(count)
    # When the sweep reads them
    made = sweep_calls(settings, clients, calls)
    # Then: pages, tags 20 ARNs a call, and one attribute read per group (no batch form in the
    # API); no listener read (port 25, IP targets: the header is needed whatever the listener) and
    # no DescribeTargetHealth for a compliant group
    # (moto answers DescribeTargetGroups in one page whatever PageSize says; AWS pages by 400)
    assert 1 <= made.pop("elbv2.describe_target_groups") <= ceil(count / 400)
    assert made == Counter(
        {
            "elb.describe_load_balancers": 1,
            "elbv2.describe_load_balancers": ceil(count / 400),
            "elbv2.describe_tags": ceil(2 * count / 20),
            "elbv2.describe_target_group_attributes": count,
        }
    )


def test_instance_target_groups_cost_one_listener_read_per_nlb(
    aws: object, settings: Settings, clients: Clients, calls: CallRecorder
) -> None:
    # Given 10 NLBs whose SMTP groups have TCP instance targets (a TLS listener would hide the client)
    builder = AccountBuilder()
    for n in range(10):
        builder.nlb(f"inst-{n}", "preserved")
    # When the sweep reads them
    made = sweep_calls(settings, clients, calls)
    # Then each NLB's listeners are read once, and nothing else per resource is added
    assert made["elbv2.describe_listeners"] == 10
    assert made["elbv2.describe_target_group_attributes"] == 10
    assert made["elbv2.describe_tags"] == 1


def test_a_foreign_proxy_policy_name_costs_one_policy_read(
    aws: object, settings: Settings, clients: Clients, calls: CallRecorder
) -> None:
    # Given 30 compliant Classic ELBs, 5 of them with a PROXY policy proxymx did not name
    builder = AccountBuilder()
    for n in range(30):
        builder.classic(f"c-{n:02d}", "compliant-foreign-policy" if n < 5 else "compliant")
    # When the sweep reads them
    made = sweep_calls(settings, clients, calls)
    # Then only those 5 have their policies read (the name says nothing about the type)
    assert made["elb.describe_load_balancer_policies"] == 5
    assert made["elb.describe_tags"] == 2


# ----- the sweep's time at a realistic latency (simulated: no real sleeping) -----------------


@pytest.mark.parametrize("kind", ["classic", "nlb"])
def test_a_1000_load_balancer_sweep_finishes_well_inside_the_reconcile_timeout(
    aws: object, settings: Settings, clients: Clients, kind: str
) -> None:
    # Given 1,000 compliant load balancers of one kind, and 50 ms per AWS call (sweepcost says why)
    if kind == "classic":
        compliant_classic(1000)
    else:
        compliant_nlbs(1000)
    # When one whole sweep runs (trail check, load balancers, stuck instances), its calls charged
    # the latency on a simulated clock
    cost = sweep_cost(settings, clients, latency=LATENCY_SECONDS)
    # Then it finishes within half of the function's timeout (the other half is the margin for a
    # slow day: the same rule as each call's budget, proxymx.budget)
    timeout = reconcile_timeout_seconds()
    assert cost.summary.checked == 1000
    assert cost.simulated_seconds <= timeout / 2, (cost.simulated_seconds, cost.operations)
    # And the load balancer part is the formula's, plus the few fixed reads of the other steps
    formula = formula_classic(1000) if kind == "classic" else formula_nlb(1000)
    elb_calls = sum(n for op, n in cost.operations.items() if op.split(".")[0] in ELB_SERVICES)
    assert elb_calls <= formula + 2
    assert cost.calls - elb_calls <= 5


# ----- the refresh of stale fleet targets behind units that send (issues 7.2 and 12) ----------
#
# Readiness is read once per sweep in account-wide pages (proxymx.loadbalancer.targets.
# SweepReadiness): one paged DescribeInstances of the proxymx-tagged instances, 1,000 a page.
# A Classic ELB's instances come with its page: no per-unit read at all. An NLB group's targets
# (DescribeTargetHealth, no batch form) are read only when a live fleet instance that is not
# launching is stale for the group's requirement.

STALE = "ready;ports=25;v=any;doc=1"  # proven by an older document (config level 1)


def all_calls(settings: Settings, clients: Clients, calls: CallRecorder) -> tuple[Reconcile, Counter[str]]:
    """Sweep the load balancers; every call made, by operation (service.operation)."""
    calls.calls.clear()
    sweep = Reconcile(settings, clients)
    sweep.sweep_load_balancers()
    return sweep, Counter(f"{c.service}.{c.operation}" for c in calls.calls)


def elb_only(made: Counter[str]) -> Counter[str]:
    return Counter({op: n for op, n in made.items() if op.split(".")[0] in ELB_SERVICES})


def other_than_elb(made: Counter[str]) -> Counter[str]:
    return Counter({op: n for op, n in made.items() if op.split(".")[0] not in ELB_SERVICES})


def private_ips(ids: list[str]) -> list[str]:
    from proxymx_tools.seed_account import _client

    found: dict[str, str] = {}
    for start in range(0, len(ids), 200):
        pages = _client("ec2").describe_instances(InstanceIds=ids[start : start + 200])
        for reservation in pages["Reservations"]:
            for instance in reservation["Instances"]:
                found[instance["InstanceId"]] = instance["PrivateIpAddress"]
    return [found[i] for i in ids]


def sent_to(calls: CallRecorder) -> Counter[str]:
    """How many SendCommand calls named each instance."""
    return Counter(i for c in calls.calls if c.operation == "send_command" for i in c.params["InstanceIds"])


@pytest.mark.parametrize("count", [10, 100, 1000])
def test_classic_sweep_with_fresh_fleet_targets_adds_one_instance_page_and_no_per_unit_call(
    world: object, settings: Settings, clients: Clients, calls: CallRecorder, count: int
) -> None:
    # Given L compliant Classic ELBs, each with a registered fleet instance proven ready
    builder = AccountBuilder()
    fresh = builder.fleet(count, ready=True)
    for n, instance in enumerate(fresh):
        builder.classic(f"mx-{n:04d}", "compliant", [instance])
    # When the sweep reads them
    sweep, made = all_calls(settings, clients, calls)
    # Then every unit is compliant, the ELB calls are the formula's exactly (as without targets),
    # and readiness cost one DescribeInstances page per 1,000 tagged instances, nothing per unit
    assert {c.outcome for c in sweep.summary.load_balancers} == {"compliant"}
    assert elb_only(made) == Counter(
        {
            "elb.describe_load_balancers": ceil(count / 400),
            "elb.describe_tags": ceil(count / 20),
            "elbv2.describe_load_balancers": 1,
        }
    )
    assert other_than_elb(made) == Counter({"ec2.describe_instances": ceil(count / 1000)})


@pytest.mark.parametrize("count", [10, 100])
def test_nlb_sweep_with_fresh_fleet_targets_reads_no_target_health(
    world: object, settings: Settings, clients: Clients, calls: CallRecorder, count: int
) -> None:
    # Given L compliant NLBs, each group with an IP target: a fleet instance proven ready
    builder = AccountBuilder()
    fresh = builder.fleet(count, ready=True)
    for n, ip in enumerate(private_ips(fresh)):
        builder.nlb(f"nlb-{n:04d}", "compliant", [ip])
    # When the sweep reads them
    sweep, made = all_calls(settings, clients, calls)
    # Then the ELB calls are the formula's (no DescribeTargetHealth of a compliant group), and
    # readiness cost one DescribeInstances page
    assert {c.outcome for c in sweep.summary.load_balancers} == {"compliant"}
    assert made["elbv2.describe_target_health"] == 0
    assert 1 <= made.pop("elbv2.describe_target_groups") <= ceil(count / 400)
    assert elb_only(made) == Counter(
        {
            "elb.describe_load_balancers": 1,
            "elbv2.describe_load_balancers": ceil(count / 400),
            "elbv2.describe_tags": ceil(2 * count / 20),
            "elbv2.describe_target_group_attributes": count,
        }
    )
    assert other_than_elb(made) == Counter({"ec2.describe_instances": 1})


def test_a_launching_fleet_instance_is_not_a_reason_to_read_target_groups(
    world: EmbeddedAws, settings: Settings, clients: Clients, calls: CallRecorder
) -> None:
    # Given 10 compliant NLBs whose fleet targets are fresh, and a fleet instance held in
    # Pending:Wait by its launch hook (no readiness tag yet: the launch flow configures it)
    builder = AccountBuilder()
    for n, ip in enumerate(private_ips(builder.fleet(10, ready=True))):
        builder.nlb(f"nlb-{n:04d}", "compliant", [ip])
    world.launch.launch_into_wait(GROUP, HOOK)
    # When the sweep reads them
    sweep, made = all_calls(settings, clients, calls)
    # Then the Auto Scaling pages are read once (to see it launching), and no group's targets
    assert {c.outcome for c in sweep.summary.load_balancers} == {"compliant"}
    assert made["elbv2.describe_target_health"] == 0
    assert other_than_elb(made) == Counter(
        {"ec2.describe_instances": 1, "autoscaling.describe_auto_scaling_groups": 1}
    )
    assert made["ssm.send_command"] == 0


def test_classic_sweep_refreshes_k_stale_fleet_targets_at_a_cost_per_stale_unit(
    world: EmbeddedAws, settings: Settings, clients: Clients, calls: CallRecorder
) -> None:
    # Given 100 compliant Classic ELBs with a fresh fleet instance each, and k = 3 of them with a
    # second fleet instance proven by an older document (its SSM agent Online)
    builder = AccountBuilder()
    fresh = builder.fleet(100, ready=True)
    stale = builder.instances(3, {"proxymx:fleet": "mx", "proxymx:proxy-protocol": STALE})
    for instance in stale:
        world.launch.register_instance(instance)
    for n, instance in enumerate(fresh):
        builder.classic(f"mx-{n:04d}", "compliant", [instance, *([stale[n]] if n < 3 else [])])
    # When the sweep runs
    sweep, made = all_calls(settings, clients, calls)
    # Then the k units are refreshed, every stale instance sent the document exactly once, for
    # what its ELB sends; the ELB calls are the formula's, the ELBs are not written
    outcomes = Counter(c.outcome for c in sweep.summary.load_balancers)
    assert outcomes == Counter({"compliant": 97, "changed": 3})
    assert sent_to(calls) == Counter({i: 1 for i in stale})
    assert elb_only(made) == Counter(
        {"elb.describe_load_balancers": 1, "elb.describe_tags": 5, "elbv2.describe_load_balancers": 1}
    )
    # And beyond the pages (one of instances, one of Auto Scaling groups: are they launching?),
    # what it costs grows with the stale units only: per unit a claim, the agent check, the
    # command, its id recorded; the kill switch read at most once (cached)
    beyond = other_than_elb(made)
    assert beyond.pop("ec2.describe_instances") == 1
    assert beyond.pop("autoscaling.describe_auto_scaling_groups") == 1
    assert beyond.pop("ssm.get_parameter", 0) <= 1
    assert beyond == Counter(
        {
            "dynamodb.put_item": 3,
            "ssm.describe_instance_information": 3,
            "ssm.send_command": 3,
            "dynamodb.update_item": 3,
        }
    )
    # And the next sweep, the commands still in flight, sends nothing more
    again, _ = all_calls(settings, clients, calls)
    assert {c.outcome for c in again.summary.load_balancers} == {"compliant"}
    assert sent_to(calls) == Counter()


def test_nlb_sweep_refreshes_k_stale_fleet_targets_reading_the_groups_of_that_requirement(
    world: EmbeddedAws, settings: Settings, clients: Clients, calls: CallRecorder
) -> None:
    # Given 20 compliant NLBs with a fresh fleet IP target each, and k = 3 of them with a second
    # fleet target proven by an older document
    builder = AccountBuilder()
    fresh = private_ips(builder.fleet(20, ready=True))
    stale = builder.instances(3, {"proxymx:fleet": "mx", "proxymx:proxy-protocol": STALE})
    for instance in stale:
        world.launch.register_instance(instance)
    stale_ips = private_ips(stale)
    for n, ip in enumerate(fresh):
        builder.nlb(f"nlb-{n:04d}", "compliant", [ip, *([stale_ips[n]] if n < 3 else [])])
    # When the sweep runs
    sweep, made = all_calls(settings, clients, calls)
    # Then each stale instance is sent the document exactly once, for PROXY v2 on its port
    outcomes = Counter(c.outcome for c in sweep.summary.load_balancers)
    assert outcomes == Counter({"compliant": 17, "changed": 3})
    assert sent_to(calls) == Counter({i: 1 for i in stale})
    sends = [c.params for c in calls.calls if c.operation == "send_command"]
    assert {(s["Parameters"]["SmtpPorts"][0], s["Parameters"]["ProxyProtocol"][0]) for s in sends} == {
        ("25", "v2")
    }
    # And the price of a stale fleet instance: each sending group with that requirement has its
    # targets read once (no batch form; which group holds it is unknown until read), their IPs
    # mapped from the sweep's instance page (no DescribeInstances per group)
    assert made["elbv2.describe_target_health"] == 20
    assert made["ec2.describe_instances"] == 1
    assert made["ssm.send_command"] == 3


def test_a_1000_nlb_sweep_with_a_fleet_instance_that_stays_stale_finishes_inside_the_timeout(
    world: object, settings: Settings, clients: Clients
) -> None:
    # Given 1,000 compliant NLBs and one live fleet instance that stays stale on every sweep: proven
    # plain (a launch behind units that send nothing, or the way back), registered in none of them
    # -- the worst case of the NLB pre-check, which cannot tell which group holds it
    compliant_nlbs(1000)
    AccountBuilder().instances(1, {"proxymx:fleet": "mx", "proxymx:proxy-protocol": "plain;doc=2"})
    # When one whole sweep runs at 50 ms per call (simulated)
    cost = sweep_cost(settings, clients, latency=LATENCY_SECONDS)
    # Then every group's targets are read once (the documented price) and nothing is sent
    assert cost.operations["elbv2.describe_target_health"] == 1000
    assert cost.operations["ssm.send_command"] == 0
    assert {c.outcome for c in cost.summary.load_balancers} == {"compliant"}
    # And the sweep still finishes within half of the function's timeout
    assert cost.simulated_seconds <= reconcile_timeout_seconds() / 2, (
        cost.simulated_seconds,
        cost.operations,
    )
