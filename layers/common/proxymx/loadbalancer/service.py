"""EnableProxyProtocol: from one CloudTrail ELB event to a load balancer that speaks PROXY.

Every handled event reconciles the whole load balancer (Classic) or the affected target
groups (NLB) rather than replaying the event: the same code then serves creation, drift and
a later sweep, and a duplicate or out-of-order delivery is harmless.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from proxymx.config import Settings
from proxymx.loadbalancer.classic import ClassicElb
from proxymx.loadbalancer.nlb import NetworkLoadBalancers
from proxymx.loadbalancer.plan import (
    NLB_PROXY_PROTOCOLS,
    Blocked,
    ClassicPlan,
    ClassicState,
    TargetGroupPlan,
    TargetGroupState,
    eligible_classic_ports,
    interlock,
    pause_reason,
    plan_classic,
    plan_target_groups,
    target_group_candidates,
)
from proxymx.loadbalancer.readiness import Requirement
from proxymx.loadbalancer.targets import Target, TargetDiscovery, unready_targets
from proxymx.models.cloudtrail import (
    ClassicCreateLoadBalancer,
    ClassicCreateLoadBalancerListeners,
    ClassicDeletePolicy,
    ClassicRegisterInstances,
    ClassicSetBackendPolicies,
    ElbApiCallEvent,
    ElbCallDetail,
    FailedElbCall,
    V2CreateListener,
    V2CreateLoadBalancer,
    V2CreateTargetGroup,
    V2ModifyTargetGroupAttributes,
    V2RegisterTargets,
)

log = logging.getLogger(__name__)

# blocked: the header would go on in front of targets not ready for it (issue 7.2).
# paused: the unit carries proxymx:pause-until in the future (an operator's brake, issue 7.5).
Outcome = Literal["changed", "compliant", "ignored", "blocked", "paused"]


@dataclass(frozen=True)
class ProxyProtocolResult:
    outcome: Outcome
    reason: str
    event_name: str
    load_balancer: str | None = None
    # Applied changes, or in a dry run the changes that would be applied.
    changes: list[str] = field(default_factory=list)
    enabled_count: int = 0
    dry_run: bool = False
    drift_repaired: bool = False
    actor: str | None = None
    # Blocked units: "unit: N target(s) not ready for ...: i-... (why; fleet)".
    blocked: list[str] = field(default_factory=list)
    # Targets just registered behind a unit that already sends the header, not ready for it.
    unready_behind_header: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MetricsSink(Protocol):
    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


def emit_metrics(result: ProxyProtocolResult, metrics: MetricsSink) -> None:
    """EMF: ProxyProtocolEnabled (ports/target groups switched on), DriftRepaired, EventsIgnored,
    EventsCompliant, DryRunChangesPlanned; Failures comes from :func:`emit_failure_metric`."""
    from aws_lambda_powertools.metrics import MetricUnit

    if result.blocked:
        # Units whose header stays off because a target is not ready (alarm: LoadBalancersBlocked).
        metrics.add_metric(name="LoadBalancersBlocked", unit=MetricUnit.Count, value=len(result.blocked))
    if result.unready_behind_header:
        # A registered target that answers 500 to the header: the alarm UnreadyTargetsBehindHeader.
        metrics.add_metric(
            name="UnreadyTargetsBehindHeader", unit=MetricUnit.Count, value=len(result.unready_behind_header)
        )
    if result.outcome == "ignored":
        metrics.add_metric(name="EventsIgnored", unit=MetricUnit.Count, value=1)
    elif result.outcome == "compliant":
        metrics.add_metric(name="EventsCompliant", unit=MetricUnit.Count, value=1)
    elif result.dry_run:
        # What a dry run would have changed: the number to watch before switching DRY_RUN off.
        metrics.add_metric(name="DryRunChangesPlanned", unit=MetricUnit.Count, value=len(result.changes))
    if result.enabled_count and not result.dry_run:
        metrics.add_metric(name="ProxyProtocolEnabled", unit=MetricUnit.Count, value=result.enabled_count)
    if result.drift_repaired:
        metrics.add_metric(name="DriftRepaired", unit=MetricUnit.Count, value=1)


def emit_failure_metric(metrics: MetricsSink) -> None:
    from aws_lambda_powertools.metrics import MetricUnit

    metrics.add_metric(name="Failures", unit=MetricUnit.Count, value=1)


class BlockedNotifier(Protocol):
    def blocked(self, blocked: list[Blocked], *, sweep: bool) -> None: ...


class EnableProxyProtocol:
    """The domain service; adapters are injectable (tests, the embedded AWS)."""

    def __init__(
        self,
        settings: Settings,
        classic: ClassicElb | None = None,
        nlb: NetworkLoadBalancers | None = None,
        targets: TargetDiscovery | None = None,
        notifier: BlockedNotifier | None = None,
    ) -> None:
        self.settings = settings
        self.classic = classic or ClassicElb()
        self.nlb = nlb or NetworkLoadBalancers()
        self.targets = targets or TargetDiscovery(settings.fleet_tag_value)
        self.notifier = notifier

    def handle(self, event: ElbApiCallEvent) -> ProxyProtocolResult:
        detail = event.detail
        ignored = self._ignore_reason(detail)
        if ignored:
            log.info("ignored: %s", ignored, extra={"event_name": detail.event_name, "actor": _actor(detail)})
            return self._result(detail, "ignored", ignored)
        if isinstance(detail, ClassicCreateLoadBalancer | ClassicCreateLoadBalancerListeners):
            return self.ensure_classic(detail.request_parameters.load_balancer_name, detail)
        if isinstance(detail, ClassicSetBackendPolicies | ClassicDeletePolicy):
            return self.ensure_classic(detail.request_parameters.load_balancer_name, detail)
        if isinstance(detail, ClassicRegisterInstances):
            ids = [i.instance_id for i in detail.request_parameters.instances]
            return self.registered_classic(detail.request_parameters.load_balancer_name, ids, detail)
        if isinstance(detail, V2RegisterTargets):
            return self.registered_targets(detail)
        if isinstance(detail, V2CreateLoadBalancer):
            arn = (
                detail.response_elements.load_balancers[0].load_balancer_arn
                if detail.response_elements
                else None
            )
            if arn is None:
                return self._result(detail, "ignored", "CreateLoadBalancer response carries no ARN")
            return self.ensure_load_balancer_v2(arn, detail)
        if isinstance(detail, V2CreateListener):
            return self.ensure_load_balancer_v2(detail.request_parameters.load_balancer_arn, detail)
        if isinstance(detail, V2CreateTargetGroup):
            return self._target_group(detail, detail.response_elements.target_groups[0].target_group_arn)
        if isinstance(detail, V2ModifyTargetGroupAttributes):
            return self._target_group(detail, detail.request_parameters.target_group_arn)
        return self._result(detail, "ignored", f"{detail.event_name} is not an event this function acts on")

    # ----- what is ignored without reading anything ----------------------------------------

    def _ignore_reason(self, detail: ElbCallDetail) -> str | None:
        if isinstance(detail, FailedElbCall):
            return f"the API call failed ({detail.error_code}): nothing changed"
        issuer = detail.user_identity.issuer_arn
        if issuer and issuer in self.settings.self_role_arns:
            return "our own change (no remediation loop)"
        if isinstance(detail, V2CreateLoadBalancer) and detail.request_parameters.type != "network":
            return f"{detail.request_parameters.type} load balancers do not support the PROXY protocol"
        if isinstance(detail, V2CreateTargetGroup):
            protocol = detail.request_parameters.protocol
            if (protocol or "").upper() not in NLB_PROXY_PROTOCOLS:
                return f"target group protocol {protocol} does not carry the PROXY protocol"
        if isinstance(detail, V2CreateListener):
            protocol = (detail.request_parameters.protocol or "").upper()
            if protocol in ("HTTP", "HTTPS"):
                return f"{protocol} listener: application load balancers do not support the PROXY protocol"
        return None

    # ----- Classic ELB ------------------------------------------------------------------

    def ensure_classic(self, name: str, detail: ElbCallDetail | None = None) -> ProxyProtocolResult:
        """Bring one Classic ELB into compliance (``detail``: the event that asked; None: the sweep)."""
        state = self.classic.describe(name)
        plan = plan_classic(state, self.settings)
        if plan.out_of_scope:
            return self._result(detail, "ignored", plan.out_of_scope, load_balancer=name)
        for reason in plan.skipped:
            log.info("skipped %s", reason, extra={"load_balancer": name})
        if not plan.eligible_ports:
            return self._result(detail, "compliant", "no SMTP instance port with a TCP/SSL listener", name)
        if not plan.has_changes:
            ports = list(plan.eligible_ports)
            return self._result(
                detail, "compliant", f"PROXY protocol already on instance ports {ports}", name
            )
        paused = pause_reason([state.tags], datetime.now(UTC))
        if paused:
            log.warning("%s: %s", name, paused, extra={"load_balancer": name})
            return self._result(
                detail, "paused", f"{paused}; would: {plan.describe()}", name, plan.describe()
            )
        if plan.attach:
            # Ports agree: the requirement is the instance ports the ELB forwards to (25 -> 2525).
            requirement = Requirement(plan.eligible_ports, "v1")
            targets = self.targets.readiness(self.targets.classic_targets(name, state.instances))
            blocked = interlock(f"classic/{name}", requirement, targets)
            if blocked is not None:
                return self._blocked(detail, name, [blocked], [])
        return self._apply_classic(detail, plan)

    def _apply_classic(self, detail: ElbCallDetail | None, plan: ClassicPlan) -> ProxyProtocolResult:
        changes = plan.describe()
        if self.settings.dry_run:
            log.info("dry run: would apply %s", changes, extra={"plan": changes})
            return self._result(detail, "changed", "dry run: nothing written", plan.load_balancer, changes)
        self.classic.apply(plan)
        self.classic.verify(plan)
        return self._changed(detail, plan.load_balancer, changes, len(plan.attach))

    # ----- registration is a write too (issue 7.2) ---------------------------------------

    def registered_classic(
        self, name: str, instance_ids: list[str], detail: ElbCallDetail
    ) -> ProxyProtocolResult:
        """New instances behind a Classic ELB: if it sends the header, they must be ready for it;
        if it does not, the normal plan decides (the interlock included)."""
        state = self.classic.describe(name)
        ports = [p for p in self._eligible(state) if self._sends_on(state, p)]
        if not ports:
            return self.ensure_classic(name, detail)
        targets = [Target(i, None, "registered") for i in instance_ids]
        return self._registered(detail, f"classic/{name}", Requirement(tuple(ports), "v1"), targets)

    def registered_targets(self, detail: V2RegisterTargets) -> ProxyProtocolResult:
        arn = detail.request_parameters.target_group_arn
        group = self.nlb.target_group(arn)
        (state,) = self.nlb.target_group_states([group])
        sends = state.supports_proxy_protocol and self.nlb.proxy_protocol_v2(arn)
        if not sends:
            return self._target_group(detail, arn)
        targets = [
            Target(t.id, t.port or state.port, "registered")
            for t in detail.request_parameters.targets
            if t.id.startswith("i-")
        ]
        ips = {
            t.id: t.port or state.port for t in detail.request_parameters.targets if not t.id.startswith("i-")
        }
        mapped = self.targets.instances_by_private_ip(ips)
        targets += [Target(mapped.get(ip, f"unknown:{ip}"), port, "ip") for ip, port in ips.items()]
        ports = tuple(sorted({t.port for t in targets if t.port is not None}))
        requirement = Requirement(ports, "v2", ipv6=self.nlb.dualstack(state.load_balancer_arns))
        return self._registered(detail, f"tg/{arn}", requirement, targets)

    def _registered(
        self, detail: ElbCallDetail, unit: str, requirement: Requirement, targets: list[Target]
    ) -> ProxyProtocolResult:
        unready = unready_targets(requirement, self.targets.readiness(targets))
        if not unready:
            return self._result(
                detail, "compliant", f"registered targets are ready for {requirement.describe()}", unit
            )
        described = [u.describe() for u in unready]
        # The header already reaches them: each session gets 500 5.5.2 until Postfix is configured.
        # Fleet targets: run the document (Mode=configure) on them -- the automatic refresh is not
        # built yet (docs/agreement.md); outside the fleet: the operator's to fix.
        log.error(
            "registered behind a unit that sends the PROXY header, not ready: %s",
            "; ".join(described),
            extra={"load_balancer": unit, "unready": described},
        )
        result = self._result(
            detail,
            "blocked",
            f"{unit} sends {requirement.describe()}; registered target(s) not ready: " + ", ".join(described),
            unit,
        )
        return ProxyProtocolResult(**{**result.to_dict(), "unready_behind_header": described})

    def _eligible(self, state: ClassicState) -> list[int]:
        return eligible_classic_ports(state.listeners, self.settings.smtp_ports)

    @staticmethod
    def _sends_on(state: ClassicState, port: int) -> bool:
        proxy = {p.name for p in state.policies if p.enables_proxy_protocol}
        return bool(proxy & set(state.backend_policies.get(port, ())))

    # ----- NLB --------------------------------------------------------------------------

    def ensure_load_balancer_v2(self, arn: str, detail: ElbCallDetail | None = None) -> ProxyProtocolResult:
        """Bring the target groups of one v2 load balancer into compliance (ALBs: ignored)."""
        lb = self.nlb.load_balancer(arn)
        if lb.type != "network":
            return self._result(
                detail, "ignored", f"{lb.type} load balancers do not support the PROXY protocol", arn
            )
        groups = self.nlb.target_groups_of(arn)
        if not groups:
            return self._result(
                detail, "compliant", "no target groups yet (CreateTargetGroup/CreateListener bring them)", arn
            )
        states = self.nlb.target_group_states(groups, self.nlb.listener_ports(arn))
        return self._reconcile_target_groups(detail, states, lb.name)

    def _target_group(self, detail: ElbCallDetail | None, arn: str) -> ProxyProtocolResult:
        group = self.nlb.target_group(arn)
        if (group.get("Protocol") or "").upper() not in NLB_PROXY_PROTOCOLS:
            return self._result(
                detail,
                "ignored",
                f"target group protocol {group.get('Protocol')} does not carry the PROXY protocol",
                arn,
            )
        states = self.nlb.target_group_states([group])
        return self._reconcile_target_groups(detail, states, arn)

    def _reconcile_target_groups(
        self, detail: ElbCallDetail | None, states: list[TargetGroupState], subject: str
    ) -> ProxyProtocolResult:
        candidates = {tg.arn for tg in target_group_candidates(states, self.settings)}
        read = [self.nlb.with_proxy_protocol_state(tg) if tg.arn in candidates else tg for tg in states]
        plan = plan_target_groups(read, self.settings)
        for reason in plan.skipped:
            log.info("skipped %s", reason, extra={"load_balancer": subject})
        if not plan.enable and not plan.compliant:
            reasons = "; ".join(plan.skipped) or "no target group"
            # Out of scope (tags) is "ignored", like a Classic ELB; nothing eligible is "compliant".
            outcome: Outcome = "ignored" if plan.out_of_scope else "compliant"
            return self._result(detail, outcome, reasons, subject)
        if not plan.has_changes:
            return self._result(
                detail, "compliant", f"proxy_protocol_v2 already on {list(plan.compliant)}", subject
            )
        by_arn = {tg.arn: tg for tg in read}
        now = datetime.now(UTC)
        paused: dict[str, str] = {}
        for arn in plan.enable:
            why = pause_reason([by_arn[arn].tags, *by_arn[arn].load_balancer_tags], now)
            if why:
                paused[arn] = why
                log.warning("%s: %s", arn, why, extra={"load_balancer": subject})
        if paused:
            if len(paused) == len(plan.enable):
                whys = "; ".join(f"{arn}: {why}" for arn, why in paused.items())
                return self._result(detail, "paused", whys, subject, plan.describe())
            plan = TargetGroupPlan(
                tuple(a for a in plan.enable if a not in paused),
                plan.compliant,
                plan.skipped,
                plan.out_of_scope,
            )
        blocked = [b for b in (self._interlock_target_group(by_arn[arn]) for arn in plan.enable) if b]
        if blocked:
            allowed = tuple(
                arn for arn in plan.enable if arn not in {b.unit.removeprefix("tg/") for b in blocked}
            )
            changes: list[str] = []
            if allowed:
                partial = TargetGroupPlan(allowed, plan.compliant, plan.skipped, plan.out_of_scope)
                changes = self._apply_target_groups(detail, partial, subject).changes
            return self._blocked(detail, subject, blocked, changes, enabled=len(allowed))
        return self._apply_target_groups(detail, plan, subject)

    def _interlock_target_group(self, tg: TargetGroupState) -> Blocked | None:
        targets = self.targets.target_group_targets(tg.arn, tg.port)
        # Ports agree: each target is checked for the port the group sends it to (per-target
        # overrides); the requirement lists them all for the document.
        ports = tuple(
            sorted({t.port for t in targets if t.port is not None} or ({tg.port} if tg.port else set()))
        )
        requirement = Requirement(
            ports or (tg.port or 0,), "v2", ipv6=self.nlb.dualstack(tg.load_balancer_arns)
        )
        return interlock(f"tg/{tg.arn}", requirement, self.targets.readiness(targets))

    def _apply_target_groups(
        self, detail: ElbCallDetail | None, plan: TargetGroupPlan, subject: str
    ) -> ProxyProtocolResult:
        changes = plan.describe()
        if self.settings.dry_run:
            log.info("dry run: would apply %s", changes, extra={"plan": changes})
            return self._result(detail, "changed", "dry run: nothing written", subject, changes)
        for arn in plan.enable:
            self.nlb.enable_proxy_protocol_v2(arn)
        self.nlb.verify(plan.enable)
        return self._changed(detail, subject, changes, len(plan.enable))

    # ----- results ----------------------------------------------------------------------

    def _blocked(
        self,
        detail: ElbCallDetail | None,
        subject: str,
        blocked: list[Blocked],
        changes: list[str],
        enabled: int = 0,
    ) -> ProxyProtocolResult:
        """The header stays off: the same outcome on the event path, in Reconcile and in a dry run."""
        described = [b.describe() for b in blocked]
        log.warning(
            "blocked: %s", "; ".join(described), extra={"load_balancer": subject, "blocked": described}
        )
        if self.notifier is not None and not self.settings.dry_run:
            self.notifier.blocked(blocked, sweep=detail is None)
        result = self._result(
            detail,
            "blocked",
            "PROXY protocol not switched on: " + "; ".join(described),
            subject,
            changes,
        )
        applied = enabled if not self.settings.dry_run else 0
        return ProxyProtocolResult(**{**result.to_dict(), "blocked": described, "enabled_count": applied})

    def _changed(
        self, detail: ElbCallDetail | None, subject: str, changes: list[str], enabled: int
    ) -> ProxyProtocolResult:
        if detail is None:
            # Found by the sweep: an event was missed (EventBridge delivery is best effort) or
            # the change left no CloudTrail event. Who did it is unknown; the sweep's own log
            # line says which load balancer.
            log.warning(
                "reconcile: the PROXY protocol was off on %s: repaired", subject, extra={"changes": changes}
            )
            drift = True
        elif detail.is_drift:
            drift = True
            # Who took it away: the operator reading the log wants a name, not an event id.
            log.warning(
                "drift repaired: %s by %s undid the PROXY protocol on %s",
                detail.event_name,
                _actor(detail),
                subject,
                extra={"actor": _actor(detail), "source_ip": detail.source_ip_address, "changes": changes},
            )
        else:
            drift = False
            log.info("PROXY protocol enabled on %s", subject, extra={"changes": changes})
        result = self._result(
            detail, "changed", "drift repaired" if drift else "PROXY protocol enabled", subject, changes
        )
        return ProxyProtocolResult(
            **{**result.to_dict(), "enabled_count": enabled, "drift_repaired": drift},
        )

    def _result(
        self,
        detail: ElbCallDetail | None,
        outcome: Outcome,
        reason: str,
        load_balancer: str | None = None,
        changes: list[str] | None = None,
    ) -> ProxyProtocolResult:
        return ProxyProtocolResult(
            outcome=outcome,
            reason=reason,
            event_name=_event_name(detail),
            load_balancer=load_balancer,
            changes=list(changes or []),
            dry_run=self.settings.dry_run,
            actor=_actor(detail),
        )


# What a result of the scheduled sweep (no event) names as its event and its actor.
SWEEP_EVENT_NAME = "Reconcile"
SWEEP_ACTOR = "unknown (found by the reconcile sweep)"


def _event_name(detail: ElbCallDetail | None) -> str:
    return detail.event_name if detail is not None else SWEEP_EVENT_NAME


def _actor(detail: ElbCallDetail | None) -> str:
    return detail.user_identity.who if detail is not None else SWEEP_ACTOR


def enable_proxy_protocol(
    event: ElbApiCallEvent,
    settings: Settings,
    classic: ClassicElb | None = None,
    nlb: NetworkLoadBalancers | None = None,
) -> ProxyProtocolResult:
    """The one domain call of the EnableProxyProtocol handler."""
    from proxymx.loadbalancer.notify import SnsBlockedNotifier

    notifier = (
        SnsBlockedNotifier(settings.notification_topic_arn) if settings.notification_topic_arn else None
    )
    return EnableProxyProtocol(settings, classic, nlb, notifier=notifier).handle(event)


def ensure_classic(name: str, settings: Settings, classic: ClassicElb | None = None) -> ProxyProtocolResult:
    """One Classic ELB into compliance, without an event (the reconcile sweep); the event path
    runs the same :meth:`EnableProxyProtocol.ensure_classic`."""
    return EnableProxyProtocol(settings, classic=classic).ensure_classic(name)


def ensure_load_balancer_v2(
    arn: str, settings: Settings, nlb: NetworkLoadBalancers | None = None
) -> ProxyProtocolResult:
    """One v2 load balancer's target groups into compliance, without an event (the sweep)."""
    return EnableProxyProtocol(settings, nlb=nlb).ensure_load_balancer_v2(arn)
