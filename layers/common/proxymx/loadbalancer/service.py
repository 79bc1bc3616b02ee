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
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

from proxymx.aws import Clients
from proxymx.config import Settings
from proxymx.loadbalancer.backoff import DEFAULT_BACKOFF
from proxymx.loadbalancer.classic import ClassicElb
from proxymx.loadbalancer.nlb import NetworkLoadBalancers, PlacementRefused
from proxymx.loadbalancer.nlbheader import CLIENT_ADDRESS_PRESERVED, HEADER_PLACEMENT, support_request
from proxymx.loadbalancer.plan import (
    NLB_PROXY_PROTOCOLS,
    ClassicPlan,
    TargetGroupPlan,
    TargetGroupState,
    plan_classic,
    plan_target_groups,
    target_group_candidates,
)
from proxymx.models.cloudtrail import (
    ClassicCreateLoadBalancer,
    ClassicCreateLoadBalancerListeners,
    ClassicDeletePolicy,
    ClassicSetBackendPolicies,
    ElbApiCallEvent,
    ElbCallDetail,
    FailedElbCall,
    V2CreateListener,
    V2CreateLoadBalancer,
    V2CreateTargetGroup,
    V2ModifyListener,
    V2ModifyTargetGroupAttributes,
)
from proxymx.results import Metric, count

log = logging.getLogger(__name__)

# blocked: the header is needed but AWS refused the placement SMTP needs, so it stays off;
# broken: the header is on with a placement that hangs SMTP and proxymx could not repair it.
Outcome = Literal["changed", "compliant", "ignored", "blocked", "broken"]


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
    # NLB target groups left without the header (AWS refused on_first_ack) / with a header that
    # deadlocks SMTP (proxymx.loadbalancer.nlbheader).
    blocked: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metrics(self) -> list[Metric]:
        """EMF: ProxyProtocolEnabled (ports/target groups switched on), DriftRepaired, EventsIgnored,
        EventsCompliant, DryRunChangesPlanned, HeaderPlacementBlocked / HeaderPlacementBroken (target
        groups) (so that no invocation publishes an empty set)."""
        found: list[Metric] = []
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
        if self.blocked:
            found.append(count("HeaderPlacementBlocked", len(self.blocked)))
        if self.broken:
            found.append(count("HeaderPlacementBroken", len(self.broken)))
        return found


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
    ) -> None:
        self.settings = settings
        self.clients = clients
        self._backoff = backoff
        self._sleep = sleep

    @cached_property
    def classic(self) -> ClassicElb:
        return ClassicElb(self.clients.elb, backoff=self._backoff, sleep=self._sleep)

    @cached_property
    def nlb(self) -> NetworkLoadBalancers:
        return NetworkLoadBalancers(self.clients.elbv2, backoff=self._backoff, sleep=self._sleep)

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
        return self._apply_classic(detail, plan)

    def _apply_classic(self, detail: ElbCallDetail | None, plan: ClassicPlan) -> ProxyProtocolResult:
        changes = plan.describe()
        if self.settings.dry_run:
            log.info("dry run: would apply %s", changes, extra={"plan": changes})
            return self._result(detail, "changed", "dry run: nothing written", plan.load_balancer, changes)
        self.classic.apply(plan)
        self.classic.verify(plan)
        return self._changed(detail, plan.load_balancer, changes, len(plan.attach))

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
        return self._apply_target_groups(detail, plan, subject)

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
        return ProxyProtocolResult(**{**fields, "blocked": blocked, "broken": broken})

    # ----- results ----------------------------------------------------------------------

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
    service = EnableProxyProtocol(settings, clients, sleep=sleep or time.sleep)
    result = service.handle(event)
    log.info("outcome %s: %s", result.outcome, result.reason, extra={"result": result.to_dict()})
    return result
