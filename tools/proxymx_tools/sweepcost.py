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
