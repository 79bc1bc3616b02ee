"""What one Reconcile sweep costs: its AWS calls, and its time at a realistic per-call latency,
simulated (issue 12). For the tests and ``make bench``; never imported by a handler.

The sweep makes its calls one after another, so its time is the sum of its calls' latencies plus
any backoff it sleeps. Each call is counted by the shared recorder and charged
:data:`LATENCY_SECONDS`; the sweep's ``sleep`` is a simulated one that only adds to the clock.

Why 50 ms: AWS publishes no latency figures for control-plane Describe calls. A Describe call is
one HTTPS round trip inside the region (a kept-alive connection from Lambda: a few ms of network)
plus the service's own work, which for the ELB APIs is tens of milliseconds; 50 ms is the figure
issue 12 takes, and ``make bench`` also shows 100 ms, for a slow day.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from math import ceil

from proxymx.aws import Clients
from proxymx.config import Settings
from proxymx.reconcile import Reconcile, ReconcileSummary

from proxymx_tools import template as tpl
from proxymx_tools.recorder import CallRecorder

LATENCY_SECONDS = 0.05


def reconcile_timeout_seconds() -> int:
    """The Reconcile function's Timeout in template.yaml (what the sweep must finish inside)."""
    template = tpl.load_template()
    timeout = template["Resources"]["ReconcileFunction"]["Properties"].get("Timeout")
    if timeout is None:
        timeout = template["Globals"]["Function"]["Timeout"]
    return int(timeout)


@dataclass
class SimulatedClock:
    latency: float = LATENCY_SECONDS
    slept: float = 0.0

    def sleep(self, seconds: float) -> None:
        self.slept += seconds


@dataclass
class SweepCost:
    summary: ReconcileSummary
    operations: Counter[str] = field(default_factory=Counter)
    latency: float = LATENCY_SECONDS
    slept: float = 0.0

    @property
    def calls(self) -> int:
        return sum(self.operations.values())

    @property
    def simulated_seconds(self) -> float:
        return self.calls * self.latency + self.slept

    def at(self, latency: float) -> float:
        return self.calls * latency + self.slept


def sweep_cost(settings: Settings, clients: Clients, latency: float = LATENCY_SECONDS) -> SweepCost:
    """Run one whole sweep (trail check, load balancers, stuck instances) and count its calls."""
    clock = SimulatedClock(latency)
    with CallRecorder() as recorder:
        summary = Reconcile(settings, clients, sleep=clock.sleep).run()
    return SweepCost(
        summary,
        Counter(f"{c.service}.{c.operation}" for c in recorder.calls),
        latency,
        clock.slept,
    )


def formula_classic(load_balancers: int) -> int:
    """Calls for L compliant Classic ELBs: pages of 400 + DescribeTags of 20 (issue 12)."""
    return ceil(load_balancers / 400) + ceil(load_balancers / 20)


def formula_nlb(load_balancers: int, listener_reads: int = 0) -> int:
    """Calls for L compliant NLBs with one SMTP group each: pages of load balancers and of
    groups, DescribeTags of 20 ARNs (NLBs and groups), one attribute read per group, and the
    listener reads where they decide something."""
    return 2 * ceil(load_balancers / 400) + ceil(2 * load_balancers / 20) + load_balancers + listener_reads


@dataclass(frozen=True)
class SweepRow:
    kind: str
    load_balancers: int
    calls: int
    formula: int
    seconds: float
    slow_seconds: float


def measure(kind: str, load_balancers: int) -> SweepRow:
    """Seed ``load_balancers`` compliant ones of ``kind`` in a fresh embedded AWS and sweep once."""
    from proxymx.config import load_settings

    from proxymx_tools.embedded import embedded_aws
    from proxymx_tools.seed_account import compliant_classic, compliant_nlbs

    with embedded_aws():
        if kind == "Classic":
            compliant_classic(load_balancers)
            formula = formula_classic(load_balancers)
        else:
            compliant_nlbs(load_balancers)
            formula = formula_nlb(load_balancers)
        cost = sweep_cost(load_settings({}), Clients())
    # The formula counts the load balancer reads; the sweep's fixed reads (the v2 or Classic listing
    # with nothing in it, the trail check, the fleet's groups) are in the measured calls.
    return SweepRow(
        kind, load_balancers, cost.calls, formula, cost.simulated_seconds, cost.at(2 * LATENCY_SECONDS)
    )


def sweep_table(sizes: tuple[int, ...] = (10, 100, 1000)) -> str:
    import logging

    timeout = reconcile_timeout_seconds()
    # The sweep's own warnings (no CloudTrail trail in the embedded AWS) are not the table's.
    logging.disable(logging.WARNING)
    try:
        rows = [measure(kind, size) for kind in ("Classic", "NLB") for size in sizes]
    finally:
        logging.disable(logging.NOTSET)
    ms = int(LATENCY_SECONDS * 1000)
    lines = [
        f"Reconcile sweep: L compliant load balancers, simulated at {ms} ms and {2 * ms} ms a call "
        f"(timeout {timeout} s)",
        f"{'kind':<8} {'L':>5} {'calls':>6} {'formula':>8} {'calls/LB':>9} "
        f"{f'{ms} ms':>8} {f'{2 * ms} ms':>8} {'of timeout':>10}",
    ]
    for row in rows:
        lines.append(
            f"{row.kind:<8} {row.load_balancers:>5} {row.calls:>6} {row.formula:>8} "
            f"{row.calls / row.load_balancers:>9.2f} {row.seconds:>7.1f}s {row.slow_seconds:>7.1f}s "
            f"{row.seconds / timeout:>10.0%}"
        )
    lines.append(
        "formula (load balancer reads): Classic ceil(L/400) + ceil(L/20); "
        "NLB 2*ceil(L/400) + ceil(2L/20) + L "
        "(one DescribeTargetGroupAttributes per group; +1 DescribeListeners per NLB whose listeners "
        "decide); calls also count the sweep's fixed reads (the other listing, the trail, the fleet's groups)"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(sweep_table())
