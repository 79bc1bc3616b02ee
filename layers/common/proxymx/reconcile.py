"""Reconcile: the scheduled sweep that finds what the events missed (DESIGN.md, flow 3).

EventBridge delivers CloudTrail and Auto Scaling events on a best-effort basis. On a schedule
(``ReconcileSchedule``, every 5 minutes by default) the sweep:

1. lists every Classic ELB and every NLB and runs each one through the SAME domain code as
   EnableProxyProtocol (:meth:`proxymx.loadbalancer.service.EnableProxyProtocol.ensure_classic`
   / ``ensure_load_balancer_v2``): the same plan, scope (SMTP ports, opt-out tag, required tag),
   dry run, read-back. A target group attached to no load balancer takes no traffic and is
   left to the ``CreateListener`` event, or to the sweep after it;
2. finds the instances of the fleet's groups (tag ``proxymx:fleet=<FleetTagValue>``, and
   ``LaunchGroupNames`` when set) held in ``Pending:Wait`` by one of our hooks for longer than
   :data:`STUCK_AFTER_SECONDS`, with no invocation of our document in flight, and hands them
   to ConfigureInstance's domain code (:func:`proxymx.launch.configure.configure_launches`) as
   the same launch queue batch the SQS path builds; CheckOutcome takes it from there;
3. never lets one failure stop it: each load balancer and each group is checked on its own,
   failures are collected, and :meth:`ReconcileSummary.raise_if_failed` fails the invocation
   at the end (after the summary is logged and the metrics are emitted) so the alarm fires.

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

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools import Logger

from proxymx.config import FLEET_TAG_KEY, Settings
from proxymx.errors import NotReadyYet, ProxymxError
from proxymx.inventory import FleetGroup, Inventory
from proxymx.launch import autoscaling
from proxymx.launch.configure import Metric, RecordOutcome, configure_launches
from proxymx.loadbalancer.classic import ClassicElb
from proxymx.loadbalancer.nlb import NetworkLoadBalancers
from proxymx.loadbalancer.service import EnableProxyProtocol, ProxyProtocolResult
from proxymx.models.lifecycle import LAUNCH_DETAIL_TYPE, LAUNCH_TRANSITION, LaunchQueueBatch

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_ssm import SSMClient

logger = Logger(child=True)

# How long an instance may wait before the sweep calls it stuck. The event path sends within
# seconds of the launch (an SSM agent is Online 30-120 s after boot, and the queue retries a late
# one every 60 s), so 5 minutes without a command means its event was lost. It must stay well
# below the hook's HeartbeatTimeout (900 s), after which the hook's DefaultResult applies anyway.
STUCK_AFTER_SECONDS = 300
# A listed load balancer that is not readable was deleted meanwhile: one short retry, not the
# event path's 15 s of read-after-create patience.
SWEEP_BACKOFF: tuple[float, ...] = (1.0,)
# The sweep does not know the lifecycle action's token, and needs none: heartbeats and the
# completion go by instance id (proxymx.launch.context). The model requires a value.
SWEEP_TOKEN = "unknown-to-the-sweep"  # noqa: S105 - a lifecycle token, not a secret

LoadBalancerKind = Literal["classic", "network"]
CheckOutcome = Literal["changed", "compliant", "ignored", "blocked", "paused", "vanished", "failed"]


@dataclass(frozen=True)
class LoadBalancerCheck:
    kind: LoadBalancerKind
    load_balancer: str
    outcome: CheckOutcome
    reason: str
    changes: tuple[str, ...] = ()
    enabled_count: int = 0


@dataclass(frozen=True)
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
    instances: list[RecordOutcome] = field(default_factory=list)
    # Failures that are not one load balancer's or one instance's (a listing that failed).
    errors: list[str] = field(default_factory=list)

    @property
    def checked(self) -> int:
        return sum(1 for c in self.load_balancers if c.outcome != "vanished")

    @property
    def changed(self) -> list[LoadBalancerCheck]:
        return [c for c in self.load_balancers if c.outcome == "changed"]

    @property
    def failed(self) -> list[LoadBalancerCheck]:
        return [c for c in self.load_balancers if c.outcome == "failed"]

    @property
    def redriven(self) -> list[str]:
        return [o.instance_id or "" for o in self.instances if o.status == "sent"]

    @property
    def instances_failed(self) -> list[RecordOutcome]:
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

    def as_dict(self) -> dict[str, Any]:
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
            "load_balancers_blocked": sum(1 for c in self.load_balancers if c.outcome == "blocked"),
            "instances_redriven": len(self.redriven),
            "instances": {
                "stuck": len(self.instances),
                "skipped": len(self.skipped_instances),
                **{status: count for status, count in sorted(instance_counts.items())},
            },
            "changed": [asdict(c) for c in self.changed],
            "redriven": self.redriven,
            "failures": self.failures,
        }

    def describe(self) -> str:
        text = (
            f"{self.checked} load balancer(s) checked, {len(self.changed)} changed, "
            f"{len(self.failed)} failed; {len(self.redriven)} stuck instance(s) re-driven"
        )
        if self.dry_run:
            text += " (dry run: no load balancer written)"
        if self.errors:
            text += f"; {len(self.errors)} sweep error(s)"
        return text

    def metrics(self) -> list[Metric]:
        """EMF metrics; every one is emitted, zeros included, so the dashboards show every sweep."""
        enabled = sum(c.enabled_count for c in self.changed) if not self.dry_run else 0
        metrics = [
            Metric("ReconcileLoadBalancersChecked", "Count", self.checked),
            Metric("ReconcileLoadBalancersChanged", "Count", len(self.changed)),
            Metric("ReconcileLoadBalancersFailed", "Count", len(self.failed)),
            Metric("ReconcileInstancesStuck", "Count", len(self.instances)),
            Metric("ReconcileInstancesRedriven", "Count", len(self.redriven)),
            Metric("ReconcileFailures", "Count", len(self.failures)),
            # The same metric EnableProxyProtocol emits (one alarm on it): the header kept off in
            # front of unready targets, found again by every sweep until agreement.
            Metric(
                "LoadBalancersBlocked", "Count", sum(1 for c in self.load_balancers if c.outcome == "blocked")
            ),
        ]
        if enabled:
            # The same metric EnableProxyProtocol emits: ports / target groups switched on.
            metrics.append(Metric("ProxyProtocolEnabled", "Count", enabled))
        if self.dry_run and self.changed:
            metrics.append(Metric("DryRunChangesPlanned", "Count", sum(len(c.changes) for c in self.changed)))
        return metrics

    def raise_if_failed(self) -> None:
        if self.failures:
            raise ReconcileFailed(self)


class ReconcileFailed(ProxymxError):
    """Raised after the whole sweep when something failed, so the invocation fails and alarms fire."""

    def __init__(self, summary: ReconcileSummary) -> None:
        failures = summary.failures
        more = f" (+{len(failures) - 3} more)" if len(failures) > 3 else ""
        super().__init__(f"reconcile: {len(failures)} failure(s): {'; '.join(failures[:3])}{more}")
        self.summary = summary


def _check(kind: LoadBalancerKind, name: str, result: ProxyProtocolResult) -> LoadBalancerCheck:
    return LoadBalancerCheck(
        kind=kind,
        load_balancer=name,
        outcome=result.outcome,
        reason=result.reason,
        changes=tuple(result.changes),
        enabled_count=result.enabled_count,
    )


class Reconcile:
    def __init__(
        self,
        settings: Settings,
        *,
        inventory: Inventory | None = None,
        classic: ClassicElb | None = None,
        nlb: NetworkLoadBalancers | None = None,
        ssm_client: SSMClient | None = None,
        autoscaling_client: AutoScalingClient | None = None,
        now: datetime | None = None,
    ) -> None:
        self.settings = settings
        self.inventory = inventory or Inventory(ssm=ssm_client, autoscaling=autoscaling_client)
        self.service = EnableProxyProtocol(
            settings,
            classic or ClassicElb(backoff=SWEEP_BACKOFF),
            nlb or NetworkLoadBalancers(backoff=SWEEP_BACKOFF),
        )
        self.ssm_client = ssm_client
        self.autoscaling_client = autoscaling_client
        self.now = now or datetime.now(UTC)
        self.summary = ReconcileSummary(dry_run=settings.dry_run)

    def run(self) -> ReconcileSummary:
        self.sweep_load_balancers()
        self.sweep_stuck_instances()
        return self.summary

    # ----- 1. load balancers ----------------------------------------------------------------

    def sweep_load_balancers(self) -> None:
        try:
            names = self.inventory.classic_load_balancer_names()
        except ProxymxError as exc:
            self._error(f"listing Classic load balancers failed: {exc}")
            names = []
        for name in names:
            self._check_one("classic", name)
        try:
            arns = self.inventory.network_load_balancer_arns()
        except ProxymxError as exc:
            self._error(f"listing network load balancers failed: {exc}")
            arns = []
        for arn in arns:
            self._check_one("network", arn)

    def _check_one(self, kind: LoadBalancerKind, name: str) -> None:
        try:
            if kind == "classic":
                check = _check(kind, name, self.service.ensure_classic(name))
            else:
                check = _check(kind, name, self.service.ensure_load_balancer_v2(name))
        except NotReadyYet as exc:
            check = LoadBalancerCheck(kind, name, "vanished", f"deleted during the sweep ({exc})")
        except Exception as exc:
            # Anything, not only ProxymxError: one bad load balancer must not stop the sweep.
            # The failure is logged with its traceback and fails the invocation at the end.
            logger.exception(f"reconcile: {kind} load balancer {name} failed", extra={"load_balancer": name})
            check = LoadBalancerCheck(kind, name, "failed", f"{type(exc).__name__}: {exc}")
        self.summary.load_balancers.append(check)

    # ----- 2. instances stuck in Pending:Wait ------------------------------------------------

    def sweep_stuck_instances(self) -> None:
        try:
            groups = self.inventory.fleet_groups(
                FLEET_TAG_KEY,
                self.settings.fleet_tag_value,
                self.settings.launch_group_names,
                # Warm-pool instances are not in a group's instance list: not swept (see above).
                ("Pending:Wait",),
            )
        except ProxymxError as exc:
            self._error(f"listing the fleet's Auto Scaling groups failed: {exc}")
            return
        records: list[dict[str, Any]] = []
        for group in groups:
            if not group.waiting:
                continue
            try:
                records.extend(self._stuck_in(group))
            except Exception as exc:
                logger.exception(f"reconcile: group {group.name} failed", extra={"group": group.name})
                self._error(f"group {group.name}: {type(exc).__name__}: {exc}")
        if not records:
            return
        try:
            report = configure_launches(
                LaunchQueueBatch.model_validate({"Records": records}),
                self.settings,
                ssm_client=self.ssm_client,
                autoscaling_client=self.autoscaling_client,
                now=self.now,
            )
        except Exception as exc:
            # configure_launches turns AWS errors into per-instance outcomes; this is a bug's path.
            logger.exception("reconcile: re-driving the stuck instances failed")
            self._error(f"re-driving {len(records)} stuck instance(s): {type(exc).__name__}: {exc}")
            return
        self.summary.instances.extend(report.outcomes.values())

    def _stuck_in(self, group: FleetGroup) -> list[dict[str, Any]]:
        """The launch queue records (as the SQS path receives them) of the group's stuck instances."""
        hooks = autoscaling.launch_hook_names(
            group.name, self.settings.lifecycle_hook_names, client=self.autoscaling_client
        )
        if not hooks:
            for instance in group.waiting:
                self._skip(instance.instance_id, group.name, "waits for another launch hook than ours")
            return []
        hook = hooks[0]
        launched = self.inventory.launch_times(i.instance_id for i in group.waiting)
        records = []
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
            records.append(self._launch_record(group, hook, instance_id, since))
        return records

    def _command_in_flight(self, instance_id: str) -> str | None:
        recent = self.now - timedelta(seconds=STUCK_AFTER_SECONDS)
        for invocation in self.inventory.our_invocations(instance_id, self.settings.document_name):
            if invocation.in_flight:
                return f"command {invocation.command_id} of our document is {invocation.status}"
            if invocation.requested is not None and invocation.requested > recent:
                # Finished a moment ago: its status event may still be on its way to CheckOutcome.
                return f"command {invocation.command_id} ended recently ({invocation.status})"
        return None

    def _launch_record(
        self, group: FleetGroup, hook: str, instance_id: str, since: datetime
    ) -> dict[str, Any]:
        """The ``EC2 Instance-launch Lifecycle Action`` Auto Scaling sent (or should have) for the
        instance, as the launch queue delivers it. ``time`` is the launch time: ConfigureInstance
        then records a heartbeat before it sends, giving the command a full HeartbeatTimeout."""
        event = {
            "version": "0",
            "id": f"reconcile-{instance_id}-{int(self.now.timestamp())}",
            "detail-type": LAUNCH_DETAIL_TYPE,
            "source": "aws.autoscaling",
            "account": group.account,
            "time": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": group.region,
            "resources": [group.arn] if group.arn else [],
            "detail": {
                "LifecycleActionToken": SWEEP_TOKEN,
                "AutoScalingGroupName": group.name,
                "LifecycleHookName": hook,
                "EC2InstanceId": instance_id,
                "LifecycleTransition": LAUNCH_TRANSITION,
                "Origin": "EC2",
                "Destination": "AutoScalingGroup",
            },
        }
        logger.info(
            f"reconcile: {instance_id} is stuck in Pending:Wait with no command of our document: re-driven",
            extra={"instance_id": instance_id, "group": group.name, "hook": hook},
        )
        return {"messageId": f"reconcile-{instance_id}", "body": json.dumps(event), "attributes": {}}

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
    settings: Settings,
    *,
    inventory: Inventory | None = None,
    classic: ClassicElb | None = None,
    nlb: NetworkLoadBalancers | None = None,
    ssm_client: SSMClient | None = None,
    autoscaling_client: AutoScalingClient | None = None,
    now: datetime | None = None,
) -> ReconcileSummary:
    """The one domain call of the Reconcile handler: sweep, never stop early, summarise."""
    summary = Reconcile(
        settings,
        inventory=inventory,
        classic=classic,
        nlb=nlb,
        ssm_client=ssm_client,
        autoscaling_client=autoscaling_client,
        now=now,
    ).run()
    log = logger.error if summary.failures else logger.info
    log(f"reconcile: {summary.describe()}", extra={"summary": summary.as_dict()})
    return summary
