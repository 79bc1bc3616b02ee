"""EnableProxyProtocol: from one CloudTrail ELB event to a load balancer that speaks PROXY.

Every handled event reconciles the whole load balancer (Classic) or the affected target
groups (NLB) rather than replaying the event: the same code then serves creation, drift and
a later sweep, and a duplicate or out-of-order delivery is harmless. The decisions are
:mod:`proxymx.loadbalancer.plan`'s; :mod:`~proxymx.loadbalancer.classic` and
:mod:`~proxymx.loadbalancer.nlb` apply them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal, Protocol

from proxymx.aws import Clients
from proxymx.config import Settings
from proxymx.frozen import frozen
from proxymx.loadbalancer.backoff import DEFAULT_BACKOFF
from proxymx.loadbalancer.classic import ClassicElb
from proxymx.loadbalancer.nlb import NetworkLoadBalancers, PlacementRefused
from proxymx.loadbalancer.nlbheader import CLIENT_ADDRESS_PRESERVED, HEADER_PLACEMENT, support_request
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
    V2ModifyListener,
    V2ModifyTargetGroupAttributes,
    V2RegisterTargets,
)
from proxymx.results import Metric, count

log = logging.getLogger(__name__)

# blocked: the header stays off -- in front of targets not ready for it (issue 7.2, the interlock;
# field ``blocked``, metric LoadBalancersBlocked), or because AWS refused the placement SMTP needs
# (issue 8; field ``placement_blocked``, metric HeaderPlacementBlocked).
# broken: the header is on with a placement that hangs SMTP and proxymx could not repair it.
# paused: the unit carries proxymx:pause-until in the future (an operator's brake, issue 7.5).
Outcome = Literal["changed", "compliant", "ignored", "blocked", "broken", "paused"]


@frozen
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
    # Blocked units (the interlock): "unit: N target(s) not ready for ...: i-... (why; fleet)".
    blocked: list[str] = field(default_factory=list)
    # Targets just registered behind a unit that already sends the header, not ready for it.
    unready_behind_header: list[str] = field(default_factory=list)
    # NLB target groups left without the header (AWS refused on_first_ack) / with a header that
    # deadlocks SMTP (proxymx.loadbalancer.nlbheader).
    placement_blocked: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metrics(self) -> list[Metric]:
        """EMF: ProxyProtocolEnabled (ports/target groups switched on), DriftRepaired, EventsIgnored,
        EventsCompliant, DryRunChangesPlanned, LoadBalancersBlocked (units kept off by the
        interlock), UnreadyTargetsBehindHeader, HeaderPlacementBlocked / HeaderPlacementBroken
        (target groups) (so that no invocation publishes an empty set)."""
        found: list[Metric] = []
        if self.blocked:
            # Units whose header stays off because a target is not ready (alarm: LoadBalancersBlocked).
            found.append(count("LoadBalancersBlocked", len(self.blocked)))
        if self.unready_behind_header:
            # A registered target that answers 500 to the header: the alarm UnreadyTargetsBehindHeader.
            found.append(count("UnreadyTargetsBehindHeader", len(self.unready_behind_header)))
        if self.outcome == "ignored":
            found.append(count("EventsIgnored"))
        elif self.outcome == "compliant":
            found.append(count("EventsCompliant"))
        elif self.dry_run:
            # What a dry run would have changed: the number to watch before switching DRY_RUN off.
            found.append(count("DryRunChangesPlanned", len(self.changes)))
        if self.enabled_count and not self.dry_run:
            found.append(count("ProxyProtocolEnabled", self.enabled_count))
        if self.drift_repaired:
            found.append(count("DriftRepaired"))
        if self.placement_blocked:
            found.append(count("HeaderPlacementBlocked", len(self.placement_blocked)))
        if self.broken:
            found.append(count("HeaderPlacementBroken", len(self.broken)))
        return found


class BlockedNotifier(Protocol):
    def blocked(self, blocked: list[Blocked], *, sweep: bool) -> None: ...


class EnableProxyProtocol:
    """The domain service. Its adapters are built at first use from ``clients`` (an event needs
    only one of the two ELB APIs); ``backoff``/``sleep`` pace the reads right after creation."""

    def __init__(
        self,
        settings: Settings,
        clients: Clients,
        *,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        sleep: Callable[[float], Any] = time.sleep,
        notifier: BlockedNotifier | None = None,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self._backoff = backoff
        self._sleep = sleep
        self.notifier = notifier

    @cached_property
    def classic(self) -> ClassicElb:
        return ClassicElb(self.clients.elb, backoff=self._backoff, sleep=self._sleep)

    @cached_property
    def nlb(self) -> NetworkLoadBalancers:
        return NetworkLoadBalancers(self.clients.elbv2, backoff=self._backoff, sleep=self._sleep)

    @cached_property
    def targets(self) -> TargetDiscovery:
        return TargetDiscovery(self.settings.fleet_tag_value, self.clients)

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
        if isinstance(detail, V2ModifyListener):
            # A listener pointed at an existing target group (or moved to an SMTP port):
            # reconcile its load balancer, as for a new listener.
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
        if isinstance(detail, V2CreateListener | V2ModifyListener):
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
                return self._blocked(detail, name, [blocked])
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
        if not plan.enable and not plan.compliant and not plan.broken and not plan.preserved:
            reasons = "; ".join(plan.skipped) or "no target group"
            # Out of scope (tags) is "ignored", like a Classic ELB; nothing eligible is "compliant".
            outcome: Outcome = "ignored" if plan.out_of_scope else "compliant"
            return self._result(detail, outcome, reasons, subject)
        if not plan.has_changes:
            return self._result(detail, "compliant", _compliant_reason(plan), subject)
        by_arn = {tg.arn: tg for tg in read}
        now = datetime.now(UTC)
        paused: dict[str, str] = {}
        for arn in (*plan.enable, *plan.broken):
            why = pause_reason([by_arn[arn].tags, *by_arn[arn].load_balancer_tags], now)
            if why:
                paused[arn] = why
                log.warning("%s: %s", arn, why, extra={"load_balancer": subject})
        if paused:
            if len(paused) == len(plan.enable) + len(plan.broken):
                whys = "; ".join(f"{arn}: {why}" for arn, why in paused.items())
                return self._result(detail, "paused", whys, subject, plan.describe())
            plan = replace(
                plan,
                enable=tuple(a for a in plan.enable if a not in paused),
                broken=tuple(a for a in plan.broken if a not in paused),
            )
        # The interlock guards turning the header ON; a placement repair keeps an existing header.
        blocked = [b for b in (self._interlock_target_group(by_arn[arn]) for arn in plan.enable) if b]
        if blocked:
            held = {b.unit.removeprefix("tg/") for b in blocked}
            partial = replace(plan, enable=tuple(arn for arn in plan.enable if arn not in held))
            applied: ProxyProtocolResult | None = None
            if partial.has_changes:
                applied = self._apply_target_groups(detail, partial, subject)
            return self._blocked(detail, subject, blocked, applied)
        return self._apply_target_groups(detail, plan, subject)

    def _interlock_target_group(self, tg: TargetGroupState) -> Blocked | None:
        targets = self.targets.target_group_targets(tg.arn, tg.port)
        # Ports agree: each target is checked for the port the group sends it to (per-target
        # overrides); the requirement lists them all for the document.
        ports = tuple(
            sorted({t.port for t in targets if t.port is not None} or ({tg.port} if tg.port else set()))
        )
        # The IpAddressType already read for the header decision is reused (one read per NLB).
        ip_types = tg.load_balancer_ip_address_types or (
            self.nlb.ip_address_types(tg.load_balancer_arns) if tg.load_balancer_arns else ()
        )
        requirement = Requirement(
            ports or (tg.port or 0,), "v2", ipv6=any(t.startswith("dualstack") for t in ip_types)
        )
        return interlock(f"tg/{tg.arn}", requirement, self.targets.readiness(targets))

    def _apply_target_groups(
        self, detail: ElbCallDetail | None, plan: TargetGroupPlan, subject: str
    ) -> ProxyProtocolResult:
        changes = plan.describe()
        if self.settings.dry_run:
            log.info("dry run: would apply %s", changes, extra={"plan": changes})
            return self._result(detail, "changed", "dry run: nothing written", subject, changes)
        applied: list[str] = []
        blocked: list[str] = []
        broken: list[str] = []
        for arn in (*plan.enable, *plan.broken):
            try:
                # enabled=true and the placement in ONE call: refused -> neither is set.
                self.nlb.set_attributes(arn, plan.attributes_for(arn))
            except PlacementRefused as exc:
                (broken if arn in plan.broken else blocked).append(arn)
                log.info("AWS refused %s", exc, extra={"target_group": arn, "error_code": exc.code})
                continue
            applied.append(arn)
        self.nlb.verify(applied)
        done = [c for c, arn in zip(changes, (*plan.enable, *plan.broken), strict=True) if arn in applied]
        enabled = sum(1 for arn in applied if arn in plan.enable)
        result = (
            self._changed(detail, subject, done, enabled, repaired=any(a in plan.broken for a in applied))
            if applied
            else self._result(detail, "compliant", "nothing applied", subject)
        )
        if not blocked and not broken:
            return result
        return self._placement_refused(result, blocked, broken)

    def _placement_refused(
        self, result: ProxyProtocolResult, blocked: list[str], broken: list[str]
    ) -> ProxyProtocolResult:
        """Blocked / broken outcome: loud, with the AWS Support request and how to check it took."""
        reasons = [
            *(
                f"header ON with a placement that hangs SMTP on {arn}; {support_request(arn)}"
                for arn in broken
            ),
            *(f"header left OFF on {arn}; {support_request(arn)}" for arn in blocked),
        ]
        outcome: Outcome = "broken" if broken else "blocked"
        for reason in reasons:
            log.error("%s: %s", outcome, reason, extra={"load_balancer": result.load_balancer})
        fields = {**result.to_dict(), "outcome": outcome, "reason": " | ".join(reasons)}
        return ProxyProtocolResult(**{**fields, "placement_blocked": blocked, "broken": broken})

    # ----- results ----------------------------------------------------------------------

    def _blocked(
        self,
        detail: ElbCallDetail | None,
        subject: str,
        blocked: list[Blocked],
        applied: ProxyProtocolResult | None = None,
    ) -> ProxyProtocolResult:
        """The header stays off: the same outcome on the event path, in Reconcile and in a dry run.
        ``applied``: what was done meanwhile to the other target groups of the same subject."""
        described = [b.describe() for b in blocked]
        log.warning(
            "blocked: %s", "; ".join(described), extra={"load_balancer": subject, "blocked": described}
        )
        if self.notifier is not None and not self.settings.dry_run:
            self.notifier.blocked(blocked, sweep=detail is None)
        reasons = ["PROXY protocol not switched on: " + "; ".join(described)]
        if applied is not None and applied.outcome in ("blocked", "broken"):
            reasons.append(applied.reason)
        result = self._result(
            detail,
            # A placement that hangs SMTP elsewhere is the louder of the two.
            "broken" if applied is not None and applied.broken else "blocked",
            " | ".join(reasons),
            subject,
            applied.changes if applied is not None else [],
        )
        extra: dict[str, Any] = {"blocked": described}
        if applied is not None:
            extra.update(
                enabled_count=applied.enabled_count,
                drift_repaired=applied.drift_repaired,
                placement_blocked=applied.placement_blocked,
                broken=applied.broken,
            )
        return ProxyProtocolResult(**{**result.to_dict(), **extra})

    def _changed(
        self,
        detail: ElbCallDetail | None,
        subject: str,
        changes: list[str],
        enabled: int,
        *,
        repaired: bool = False,
    ) -> ProxyProtocolResult:
        if repaired:
            # A header on without on_first_ack (by hand, or set back) is drift, whichever path
            # found it: loud, with who did it when an event says.
            drift = True
            log.warning(
                "drift repaired: %s on %s by %s",
                HEADER_PLACEMENT,
                subject,
                _actor(detail),
                extra={"actor": _actor(detail), "changes": changes},
            )
        elif detail is None:
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


def _compliant_reason(plan: TargetGroupPlan) -> str:
    parts = []
    if plan.preserved:
        parts.append(f"{CLIENT_ADDRESS_PRESERVED}: no header needed on {list(plan.preserved)}")
    if plan.compliant:
        parts.append(f"proxy_protocol_v2 already on {list(plan.compliant)}")
    return "; ".join(parts)


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
    clients: Clients,
    *,
    now: datetime | None = None,
    sleep: Callable[[float], Any] | None = None,
) -> ProxyProtocolResult:
    """The one domain call of the EnableProxyProtocol handler (``now`` is not needed here: every
    flow's entry point takes the same arguments)."""
    service = EnableProxyProtocol(
        settings, clients, sleep=sleep or time.sleep, notifier=blocked_notifier(settings, clients)
    )
    result = service.handle(event)
    log.info("outcome %s: %s", result.outcome, result.reason, extra={"result": result.to_dict()})
    return result


def blocked_notifier(settings: Settings, clients: Clients) -> BlockedNotifier | None:
    """The SNS notice of a blocked unit, when NotificationTopicArn is set."""
    if not settings.notification_topic_arn:
        return None
    from proxymx.launch.sns import Notifications
    from proxymx.loadbalancer.notify import SnsBlockedNotifier

    return SnsBlockedNotifier(settings.notification_topic_arn, Notifications(clients.sns))
