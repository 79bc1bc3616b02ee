"""Reconcile: the scheduled sweep that finds what the events missed (DESIGN.md, flow 3).

EventBridge delivers CloudTrail and Auto Scaling events on a best-effort basis. On a schedule
(``ReconcileSchedule``, every 5 minutes by default) the sweep:

1. reads every Classic ELB and every NLB in pages and batches (:mod:`proxymx.inventory`: the
   calls grow with pages, not with load balancers, issue 12) and runs each one through the SAME
   domain code as EnableProxyProtocol
   (:meth:`proxymx.loadbalancer.service.EnableProxyProtocol.ensure_classic` with the state read,
   ``ensure_listed_v2``): the same plan, scope (SMTP ports, opt-out tag, required tag), interlock,
   dry run, read-back. A target group attached to no load balancer takes no traffic and is
   left to the ``CreateListener`` event, or to the sweep after it;
2. finds the instances of the fleet's groups (tag ``proxymx:fleet=<FleetTagValue>``, and
   ``LaunchGroupNames`` when set) held in ``Pending:Wait`` by one of our hooks for longer than
   :data:`STUCK_AFTER_SECONDS`, with no invocation of our document in flight, and hands them
   to ConfigureInstance's domain code (:func:`proxymx.launch.configure.configure`) as typed
   :class:`~proxymx.launch.plan.Launch` objects dated at the instance's launch time; CheckOutcome
   takes it from there;
3. never lets one failure stop it: each load balancer and each group is checked on its own,
   failures are collected, and :class:`ReconcileFailed` fails the invocation at the end (after
   the summary is logged; the handler emits its metrics before it is raised) so the alarm fires.

Decisions:

- Warm pools: instances waiting in a warm pool are not swept (they are not in the group's
  instance list; ``DescribeWarmPool`` would be one more read and permission for a rare case).
- Dry run: no load balancer write, exactly like EnableProxyProtocol. Stuck instances are
  re-driven as the launch path does in a dry run (the document runs in plan mode and writes
  nothing on the instance; CheckOutcome then releases it): a dry run never shrinks the fleet.
- A load balancer that answers "not found" after being listed was deleted meanwhile:
  ``vanished``, not a failure.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools import Logger

from proxymx.aws import Clients
from proxymx.config import Settings
from proxymx.errors import NotReadyYet, ProxymxError
from proxymx.frozen import frozen
from proxymx.inventory import FleetGroup, Inventory, ListedClassic
from proxymx.loadbalancer.cutover_flow import Cutovers
from proxymx.loadbalancer.cutover_flow import cutovers_for as cutover_engine
from proxymx.loadbalancer.service import EnableProxyProtocol, ProxyProtocolResult, blocked_notifier
from proxymx.models.schedule import ScheduledEvent
from proxymx.results import FailedResult, Metric, count
from proxymx.scope import fleet_tag, launch_out_of_scope
from proxymx.trail import check_event_path

if TYPE_CHECKING:
    # The launch side is imported where the sweep first needs it (a group with instances waiting,
    # which most sweeps never see): it is a third of this handler's cold import (issue 11).
    from proxymx.launch.autoscaling import AutoScaling
    from proxymx.launch.configure import LaunchOutcome
    from proxymx.launch.plan import Launch

logger = Logger(child=True)

# How long an instance may wait before the sweep calls it stuck. The event path sends within
# seconds of the launch (an SSM agent is Online 30-120 s after boot, and the queue retries a late
# one every 60 s), so 5 minutes without a command means its event was lost. It must stay well
# below the hook's HeartbeatTimeout (900 s), after which the hook's DefaultResult applies anyway.
STUCK_AFTER_SECONDS = 300
# A listed load balancer that is not readable was deleted meanwhile: one short retry, not the
# event path's 15 s of read-after-create patience.
SWEEP_BACKOFF: tuple[float, ...] = (1.0,)
# Warm-pool instances are not in a group's instance list: not swept (see above).
SWEPT_STATES = ("Pending:Wait",)

LoadBalancerKind = Literal["classic", "network"]
CheckOutcome = Literal[
    "changed", "compliant", "ignored", "blocked", "broken", "paused", "suspended", "vanished", "failed"
]


@frozen
class LoadBalancerCheck:
    kind: LoadBalancerKind
    load_balancer: str
    outcome: CheckOutcome
    reason: str
    changes: tuple[str, ...] = ()
    enabled_count: int = 0
    # Units kept off by the interlock (targets not ready, issue 7.2).
    blocked: tuple[str, ...] = ()
    # NLB target groups whose header placement AWS refused (proxymx.loadbalancer.nlbheader).
    placement_blocked: tuple[str, ...] = ()
    broken: tuple[str, ...] = ()
    cutovers_started: int = 0
    # Targets behind a unit that sends, not ready and not refreshed (outside the fleet, paused...).
    unready_behind_header: tuple[str, ...] = ()


@frozen
class SkippedInstance:
    instance_id: str
    group_name: str
    reason: str


@dataclass
class ReconcileSummary:
    dry_run: bool
    load_balancers: list[LoadBalancerCheck] = field(default_factory=list)
    # Waiting in scope, by group, and what became of each: re-driven (configure's outcomes) or not.
    skipped_instances: list[SkippedInstance] = field(default_factory=list)
    instances: list[LaunchOutcome] = field(default_factory=list)
    # Failures that are not one load balancer's or one instance's (a listing that failed).
    errors: list[str] = field(default_factory=list)
    # No logging CloudTrail trail in the region (proxymx.trail); None when it could not be read.
    cloudtrail_blind: bool | None = None
    # Cutovers (issue 7.3): started by this sweep, and what the safety net did (lost events
    # replayed, stale slots released, switches retried).
    cutovers_started: int = 0
    cutover_repairs: list[str] = field(default_factory=list)
    cutover_metrics: list[Metric] = field(default_factory=list)

    @property
    def checked(self) -> int:
        return sum(1 for c in self.load_balancers if c.outcome != "vanished")

    @property
    def changed(self) -> list[LoadBalancerCheck]:
        return [c for c in self.load_balancers if c.outcome == "changed"]

    @property
    def interlocked(self) -> int:
        """Units whose header the interlock keeps off (not placement-blocked target groups)."""
        return sum(len(c.blocked) for c in self.load_balancers)

    @property
    def held(self) -> list[LoadBalancerCheck]:
        """Held back by an operator (kill switch, pause tag) or by the flapping guard."""
        return [c for c in self.load_balancers if c.outcome in ("paused", "suspended")]

    @property
    def failed(self) -> list[LoadBalancerCheck]:
        return [c for c in self.load_balancers if c.outcome == "failed"]

    @property
    def redriven(self) -> list[str]:
        return [o.instance_id or "" for o in self.instances if o.status == "sent"]

    @property
    def instances_failed(self) -> list[LaunchOutcome]:
        return [o for o in self.instances if o.status in ("failed", "rejected")]

    @property
    def failures(self) -> list[str]:
        return [
            *(f"{c.kind} load balancer {c.load_balancer}: {c.reason}" for c in self.failed),
            *(f"instance {o.instance_id}: {o.reason}" for o in self.instances_failed),
            *self.errors,
        ]

    @property
    def outcome(self) -> Literal["failed", "changed", "compliant"]:
        if self.failures:
            return "failed"
        return "changed" if self.changed or self.redriven else "compliant"

    @property
    def reason(self) -> str:
        return self.describe()

    def to_dict(self) -> dict[str, Any]:
        """The handler's answer (and the one summary log line's ``summary``)."""
        instance_counts = Counter(o.status for o in self.instances)
        return {
            "outcome": self.outcome,
            "reason": self.describe(),
            "dry_run": self.dry_run,
            "load_balancers_checked": self.checked,
            "load_balancers_changed": len(self.changed),
            "load_balancers_failed": len(self.failed),
            # Header kept off in front of unready targets (issue 7.2): needs attention, not a failure.
            "load_balancers_blocked": self.interlocked,
            # Writes held back by the kill switch / a pause tag, or repairs suspended (flapping).
            "load_balancers_paused": sum(1 for c in self.held if c.outcome == "paused"),
            "load_balancers_suspended": sum(1 for c in self.held if c.outcome == "suspended"),
            "instances_redriven": len(self.redriven),
            "instances": {
                "stuck": len(self.instances),
                "skipped": len(self.skipped_instances),
                **{status: number for status, number in sorted(instance_counts.items())},
            },
            "changed": [asdict(c) for c in self.changed],
            "header_placement_blocked": [arn for c in self.load_balancers for arn in c.placement_blocked],
            "header_placement_broken": [arn for c in self.load_balancers for arn in c.broken],
            "redriven": self.redriven,
            "cloudtrail_blind": self.cloudtrail_blind,
            "cutovers_started": self.cutovers_started,
            "cutover_repairs": self.cutover_repairs,
            "failures": self.failures,
        }

    def describe(self) -> str:
        text = (
            f"{self.checked} load balancer(s) checked, {len(self.changed)} changed, "
            f"{len(self.failed)} failed; {len(self.redriven)} stuck instance(s) re-driven"
        )
        if self.interlocked:
            text += f"; {self.interlocked} unit(s) blocked: targets not ready for the header"
        if self.cutovers_started:
            text += f"; {self.cutovers_started} cutover(s) started"
        if self.cutover_repairs:
            text += f"; {len(self.cutover_repairs)} cutover repair(s)"
        if self.held:
            text += f"; {len(self.held)} held back (paused or suspended)"
        blocked = sum(len(c.placement_blocked) for c in self.load_balancers)
        broken = sum(len(c.broken) for c in self.load_balancers)
        if blocked or broken:
            # Loud on every sweep until AWS Support allows on_first_ack (proxymx.loadbalancer.nlbheader).
            text += f"; NLB header placement: {blocked} target group(s) blocked, {broken} broken"
        if self.dry_run:
            text += " (dry run: no load balancer written)"
        if self.errors:
            text += f"; {len(self.errors)} sweep error(s)"
        return text

    def metrics(self) -> list[Metric]:
        """EMF metrics; every one is emitted, zeros included, so the dashboards show every sweep."""
        enabled = sum(c.enabled_count for c in self.changed) if not self.dry_run else 0
        metrics = [
            count("ReconcileLoadBalancersChecked", self.checked),
            count("ReconcileLoadBalancersChanged", len(self.changed)),
            count("ReconcileLoadBalancersFailed", len(self.failed)),
            count("ReconcileInstancesStuck", len(self.instances)),
            count("ReconcileInstancesRedriven", len(self.redriven)),
            count("ReconcileFailures", len(self.failures)),
            # The same metric EnableProxyProtocol emits (one alarm on it): the header kept off in
            # front of unready targets, found again by every sweep until agreement.
            count("LoadBalancersBlocked", self.interlocked),
        ]
        # The same metrics (and alarms) as EnableProxyProtocol: loud on every sweep until fixed.
        for name, number in (
            ("HeaderPlacementBlocked", sum(len(c.placement_blocked) for c in self.load_balancers)),
            ("HeaderPlacementBroken", sum(len(c.broken) for c in self.load_balancers)),
            # The same metric EnableProxyProtocol emits for a write an operator's brake held back.
            ("ProxymxPaused", sum(1 for c in self.held if c.outcome == "paused")),
            # Units whose repairs stay suspended (flapping): the alarm holds while they do.
            ("DriftFlapping", sum(1 for c in self.held if c.outcome == "suspended")),
            # The same alarm as a registration's: targets answering 500 to the header.
            ("UnreadyTargetsBehindHeader", sum(len(c.unready_behind_header) for c in self.load_balancers)),
        ):
            if number:
                metrics.append(count(name, number))
        if self.cloudtrail_blind is not None:
            # 1 while the ELB rules cannot fire (CloudTrailBlindAlarm); 0 keeps the graph honest.
            metrics.append(count("CloudTrailBlind", int(self.cloudtrail_blind)))
        if enabled:
            # The same metric EnableProxyProtocol emits: ports / target groups switched on.
            metrics.append(count("ProxyProtocolEnabled", enabled))
        if self.dry_run and self.changed:
            metrics.append(count("DryRunChangesPlanned", sum(len(c.changes) for c in self.changed)))
        if self.cutovers_started:
            metrics.append(count("CutoversStarted", self.cutovers_started))
        metrics.extend(self.cutover_metrics)
        return metrics

    def raise_if_failed(self) -> None:
        if self.failures:
            raise ReconcileFailed(self)


class ReconcileFailed(FailedResult):
    """Raised after the whole sweep when something failed, so the invocation fails and alarms fire
    (the handler emits the summary's metrics first)."""

    def __init__(self, summary: ReconcileSummary) -> None:
        failures = summary.failures
        more = f" (+{len(failures) - 3} more)" if len(failures) > 3 else ""
        super().__init__(summary, f"reconcile: {len(failures)} failure(s): {'; '.join(failures[:3])}{more}")
        self.summary = summary


def _check(kind: LoadBalancerKind, name: str, result: ProxyProtocolResult) -> LoadBalancerCheck:
    return LoadBalancerCheck(
        kind=kind,
        load_balancer=name,
        outcome=result.outcome,
        reason=result.reason,
        changes=tuple(result.changes),
        enabled_count=result.enabled_count,
        blocked=tuple(result.blocked),
        placement_blocked=tuple(result.placement_blocked),
        broken=tuple(result.broken),
        cutovers_started=result.cutovers_started,
        unready_behind_header=tuple(result.unready_behind_header),
    )


class Reconcile:
    """The sweep. Its collaborators are built at first use from ``clients``; tests pass their own
    ``inventory`` / ``service`` (anything with the same methods)."""

    def __init__(
        self,
        settings: Settings,
        clients: Clients,
        *,
        inventory: Inventory | None = None,
        service: EnableProxyProtocol | None = None,
        now: datetime | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.inventory = inventory or Inventory(clients)
        at = now
        self.cutovers: Cutovers | None = (
            cutover_engine(settings, clients, sleep=sleep or time.sleep, now=lambda: at)
            if at is not None
            else cutover_engine(settings, clients, sleep=sleep or time.sleep)
        )
        self.service = service or EnableProxyProtocol(
            settings,
            clients,
            backoff=SWEEP_BACKOFF,
            sleep=sleep or time.sleep,
            notifier=blocked_notifier(settings, clients),
            cutovers=self.cutovers,
            # Units that already send get their stale fleet targets refreshed (readiness in pages).
            sweep=True,
        )
        self.now = now or datetime.now(UTC)
        self.summary = ReconcileSummary(dry_run=settings.dry_run)

    @cached_property
    def autoscaling(self) -> AutoScaling:
        from proxymx.launch.autoscaling import AutoScaling

        return AutoScaling(self.clients.autoscaling)

    def run(self) -> ReconcileSummary:
        self.check_event_path()
        self.sweep_cutovers()
        self.sweep_load_balancers()
        self.sweep_stuck_instances()
        if self.cutovers is not None:
            self.summary.cutover_metrics = list(self.cutovers.measured)
        return self.summary

    # ----- 0b. cutovers whose status events were lost (the safety net, issue 7.3) -------------

    def sweep_cutovers(self) -> None:
        if self.cutovers is None or self.settings.dry_run:
            return
        try:
            self.summary.cutover_repairs = self.cutovers.sweep()
        except ProxymxError as exc:
            self._error(f"cutover safety net failed: {exc}")
        for line in self.summary.cutover_repairs:
            logger.warning(f"reconcile: cutover {line}")

    # ----- 0. can the load-balancer events arrive at all? ----------------------------------

    def check_event_path(self) -> None:
        # Not a sweep failure: the sweep still repairs every load balancer; the metric's alarm
        # tells the operator the event path is blind (and an unreadable answer is only logged).
        try:
            check = check_event_path(self.clients.client("cloudtrail"))
        except ProxymxError as exc:
            logger.warning(f"reconcile: could not check for a logging CloudTrail trail: {exc}")
            return
        self.summary.cloudtrail_blind = check.blind
        if check.blind:
            logger.warning(f"reconcile: {check.reason}")

    # ----- 1. load balancers ----------------------------------------------------------------

    def sweep_load_balancers(self) -> None:
        """Every load balancer read in pages and batches (:mod:`proxymx.inventory`), then each one
        through the domain code with what was read; a per-resource read only where AWS has none."""
        try:
            classic = self.inventory.classic_load_balancers()
        except ProxymxError as exc:
            self._error(f"listing Classic load balancers failed: {exc}")
            classic = []
        for listed in classic:
            if listed.error:
                self._failed("classic", listed.name, listed.error)
                continue
            self._check_one("classic", listed.name, partial(self._ensure_classic, listed))
        try:
            v2 = self.inventory.v2_load_balancers()
        except ProxymxError as exc:
            self._error(f"listing network load balancers failed: {exc}")
            return
        # IpAddressType came with the pages: no DescribeLoadBalancers per target group.
        self.service.nlb.known_ip_address_types.update(v2.ip_address_types())
        tags = {**v2.target_group_tags, **{lb.arn: lb.tags for lb in v2.load_balancers}}
        for lb in v2.network:
            if lb.error:
                self._failed("network", lb.arn, lb.error)
                continue
            ensure = partial(self.service.ensure_listed_v2, lb.arn, lb.name, lb.target_groups, tags)
            self._check_one("network", lb.arn, ensure)

    def _ensure_classic(self, listed: ListedClassic) -> ProxyProtocolResult:
        state = self.inventory.classic_policies(listed, self.settings)
        return self.service.ensure_classic(listed.name, state=state)

    def _failed(self, kind: LoadBalancerKind, name: str, reason: str) -> None:
        logger.error(
            f"reconcile: {kind} load balancer {name} failed: {reason}", extra={"load_balancer": name}
        )
        self.summary.load_balancers.append(LoadBalancerCheck(kind, name, "failed", reason))

    def _check_one(
        self, kind: LoadBalancerKind, name: str, ensure: Callable[[], ProxyProtocolResult]
    ) -> None:
        try:
            check = _check(kind, name, ensure())
        except NotReadyYet as exc:
            check = LoadBalancerCheck(kind, name, "vanished", f"deleted during the sweep ({exc})")
        except Exception as exc:
            # Anything, not only ProxymxError: one bad load balancer must not stop the sweep.
            # The failure is logged with its traceback and fails the invocation at the end.
            logger.exception(f"reconcile: {kind} load balancer {name} failed", extra={"load_balancer": name})
            check = LoadBalancerCheck(kind, name, "failed", f"{type(exc).__name__}: {exc}")
        self.summary.load_balancers.append(check)
        self.summary.cutovers_started += check.cutovers_started

    # ----- 2. instances stuck in Pending:Wait ------------------------------------------------

    def sweep_stuck_instances(self) -> None:
        key, value = fleet_tag(self.settings)
        try:
            groups = self.inventory.fleet_groups(key, value, self.settings.launch_group_names, SWEPT_STATES)
        except ProxymxError as exc:
            self._error(f"listing the fleet's Auto Scaling groups failed: {exc}")
            return
        launches: list[Launch] = []
        for group in groups:
            if not group.waiting:
                continue
            try:
                launches.extend(self._stuck_in(group))
            except Exception as exc:
                logger.exception(f"reconcile: group {group.name} failed", extra={"group": group.name})
                self._error(f"group {group.name}: {type(exc).__name__}: {exc}")
        if not launches:
            return
        # The launch side is imported here, where a sweep first needs it (most sweeps never do).
        from proxymx.launch.configure import configure

        try:
            report = configure(launches, self.settings, self.clients, now=self.now)
        except Exception as exc:
            # configure turns AWS errors into per-instance outcomes; this is a bug's path.
            logger.exception("reconcile: re-driving the stuck instances failed")
            self._error(f"re-driving {len(launches)} stuck instance(s): {type(exc).__name__}: {exc}")
            return
        self.summary.instances.extend(report.outcomes.values())

    def _stuck_in(self, group: FleetGroup) -> list[Launch]:
        """The group's stuck instances, as the launches Auto Scaling announced (or should have)."""
        from proxymx.launch.plan import Launch

        hooks = [
            hook
            for hook in self.autoscaling.launch_hook_names(group.name, self.settings.lifecycle_hook_names)
            if launch_out_of_scope(group.name, hook, self.settings) is None
        ]
        if not hooks:
            for instance in group.waiting:
                self._skip(instance.instance_id, group.name, "waits for another launch hook than ours")
            return []
        hook = hooks[0]
        launched = self.inventory.launch_times(i.instance_id for i in group.waiting)
        launches = []
        for instance in group.waiting:
            instance_id = instance.instance_id
            since = launched.get(instance_id)
            if since is None:
                self._skip(instance_id, group.name, "EC2 no longer knows the instance")
                continue
            if self.now - since < timedelta(seconds=STUCK_AFTER_SECONDS):
                self._skip(instance_id, group.name, "launched recently: the event path has it")
                continue
            busy = self._command_in_flight(instance_id)
            if busy:
                self._skip(instance_id, group.name, busy)
                continue
            logger.info(
                f"reconcile: {instance_id} is stuck in Pending:Wait with no command of our document: "
                "re-driven",
                extra={"instance_id": instance_id, "group": group.name, "hook": hook},
            )
            # Dated at the launch: ConfigureInstance then records a heartbeat before it sends,
            # giving the command a full HeartbeatTimeout. No token: the sweep does not know it,
            # and heartbeats and the completion go by instance id (proxymx.launch.context).
            launches.append(Launch(instance_id, group.name, hook, time=since))
        return launches

    def _command_in_flight(self, instance_id: str) -> str | None:
        recent = self.now - timedelta(seconds=STUCK_AFTER_SECONDS)
        for invocation in self.inventory.our_invocations(instance_id, self.settings.document_name):
            if invocation.in_flight:
                return f"command {invocation.command_id} of our document is {invocation.status}"
            if invocation.requested is not None and invocation.requested > recent:
                # Finished a moment ago: its status event may still be on its way to CheckOutcome.
                return f"command {invocation.command_id} ended recently ({invocation.status})"
        return None

    # ----- bookkeeping ---------------------------------------------------------------------

    def _skip(self, instance_id: str, group: str, reason: str) -> None:
        logger.info(
            f"reconcile: {instance_id} waiting in {group} not re-driven: {reason}",
            extra={"instance_id": instance_id, "group": group},
        )
        self.summary.skipped_instances.append(SkippedInstance(instance_id, group, reason))

    def _error(self, message: str) -> None:
        logger.error(f"reconcile: {message}")
        self.summary.errors.append(message)


def reconcile(
    event: ScheduledEvent,
    settings: Settings,
    clients: Clients,
    *,
    now: datetime | None = None,
    sleep: Callable[[float], Any] | None = None,
) -> ReconcileSummary:
    """The one domain call of the Reconcile handler: sweep, never stop early, summarise; then
    :class:`ReconcileFailed` if anything failed. (The Scheduled Event carries nothing the sweep
    needs; it is validated at the edge so that a stray event never starts a sweep.)"""
    summary = Reconcile(settings, clients, now=now, sleep=sleep).run()
    log = logger.error if summary.failures else logger.info
    log(f"reconcile: {summary.describe()}", extra={"summary": summary.to_dict()})
    summary.raise_if_failed()
    return summary
