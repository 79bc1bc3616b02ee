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
from proxymx_tools.recorder import CallRecorder
from proxymx_tools.seed_account import AccountBuilder, compliant_classic, compliant_nlbs
from proxymx_tools.sweepcost import (
    LATENCY_SECONDS,
    formula_classic,
    formula_nlb,
    reconcile_timeout_seconds,
    sweep_cost,
)

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
