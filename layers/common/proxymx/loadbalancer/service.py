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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, Protocol

from proxymx.aws import Clients
from proxymx.config import Settings
from proxymx.controls import FlapGuard, Flapping, flap_guard, halted
from proxymx.frozen import frozen
from proxymx.loadbalancer.backoff import DEFAULT_BACKOFF
from proxymx.loadbalancer.classic import ClassicElb
from proxymx.loadbalancer.cutover_flow import StartOutcome
from proxymx.loadbalancer.nlb import NetworkLoadBalancers, PlacementRefused
from proxymx.loadbalancer.nlbheader import CLIENT_ADDRESS_PRESERVED, HEADER_PLACEMENT, support_request
from proxymx.loadbalancer.plan import (
    NLB_PROXY_PROTOCOLS,
    Blocked,
    ClassicPlan,
    ClassicState,
    TargetGroupPlan,
    TargetGroupState,
    _out_of_scope,
    eligible_classic_ports,
    interlock,
    pause_reason,
    plan_classic,
    plan_target_groups,
    target_group_candidates,
)
from proxymx.loadbalancer.readiness import Requirement
from proxymx.loadbalancer.targets import SweepReadiness, Target, TargetDiscovery, Unready, unready_targets
from proxymx.loadbalancer.wayback import WayBack, WayBackResult, tags_added, wants_off
from proxymx.results import Metric, count
from proxymx.scope import load_balancer_out_of_scope

if TYPE_CHECKING:
    from proxymx.loadbalancer.refresh import Refresher

    # The event models: only the event paths below need them at run time (imported there), so a
    # Reconcile sweep, which parses no CloudTrail event, does not pay for them at cold start.
    from proxymx.models.attach import AttachCall, LoadBalancerEvent
    from proxymx.models.cloudtrail import (
        ElbCallDetail,
        V2RegisterTargets,
    )

log = logging.getLogger(__name__)

# blocked: the header stays off -- in front of targets not ready for it (issue 7.2, the interlock;
# field ``blocked``, metric LoadBalancersBlocked), or because AWS refused the placement SMTP needs
# (issue 8; field ``placement_blocked``, metric HeaderPlacementBlocked).
# broken: the header is on with a placement that hangs SMTP and proxymx could not repair it.
# paused: the kill switch is off (proxymx.controls) or the unit carries proxymx:pause-until in the
# future (an operator's brakes, issue 7.5).
# suspended: the same actor keeps undoing the unit's PROXY setting (flapping): repairs stop for a day.
Outcome = Literal["changed", "compliant", "ignored", "blocked", "broken", "paused", "suspended"]


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
    # The way back (tag proxymx:proxy-protocol=off, proxymx.loadbalancer.wayback): per unit, what
    # was turned off and which fleet targets are being reverted.
    way_back: list[str] = field(default_factory=list)
    # Cutovers this call started (issue 7.3): blocked units whose fleet is being configured first;
    # and ended as failed at once (SSM refused every target).
    cutovers_started: int = 0
    cutovers_failed: int = 0
    # Units whose repairs are suspended (flapping, proxymx.controls): "unit: why".
    suspended: list[str] = field(default_factory=list)
    # Fleet instances sent the document by the refresh (proxymx.loadbalancer.refresh).
    refreshed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metrics(self) -> list[Metric]:
        """EMF: ProxyProtocolEnabled (ports/target groups switched on), DriftRepaired, EventsIgnored,
        TargetsRefreshed (fleet instances sent the document), ProxymxPaused, DriftFlapping,
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
        if self.refreshed and not self.dry_run:
            found.append(count("TargetsRefreshed", self.refreshed))
        if self.suspended:
            # One per unit left as an actor keeps setting it (alarm: DriftFlapping).
            found.append(count("DriftFlapping", len(self.suspended)))
        if self.outcome == "paused":
            # Writes held back by an operator's brake (kill switch or pause tag).
            found.append(count("ProxymxPaused"))
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
        if self.cutovers_started:
            found.append(count("CutoversStarted", self.cutovers_started))
        if self.cutovers_failed:
            found.append(count("CutoversFailed", self.cutovers_failed))
        return found


class BlockedNotifier(Protocol):
    def blocked(self, blocked: list[Blocked], *, sweep: bool) -> None: ...

    def flapping(self, flapping: list[Flapping]) -> None: ...

    def unready(self, unit: str, described: list[str], *, sweep: bool) -> None: ...

    def settled(self, unit: str) -> None: ...

    def broken(self, arns: list[str], request: Callable[[str], str], *, sweep: bool) -> None: ...


class CutoverStarter(Protocol):
    """The cutover hook (proxymx.loadbalancer.cutover_flow.Cutovers): a blocked unit whose unready
    targets are all in the fleet is cut over; the answer's reason joins the blocked outcome."""

    measured: list[Metric]

    def start(self, blocked: Blocked) -> StartOutcome: ...


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
        cutovers: CutoverStarter | None = None,
        sweep: bool = False,
    ) -> None:
        self.settings = settings
        # The Reconcile sweep's service (one per sweep): units that already send get their stale
        # fleet targets refreshed, readiness read in account-wide pages (:attr:`sweep_readiness`).
        self.sweep = sweep
        self.clients = clients
        self._backoff = backoff
        self._sleep = sleep
        self.notifier = notifier
        self.cutovers = cutovers
        # Sees every Blocked verdict, dry run included (proxymx audit names the unready targets);
        # the notifier, by contrast, is an SNS notice and never fires in a dry run.
        self.on_blocked: Callable[[list[Blocked]], None] | None = None

    @cached_property
    def classic(self) -> ClassicElb:
        return ClassicElb(self.clients.elb, backoff=self._backoff, sleep=self._sleep)

    @cached_property
    def nlb(self) -> NetworkLoadBalancers:
        return NetworkLoadBalancers(self.clients.elbv2, backoff=self._backoff, sleep=self._sleep)

    @cached_property
    def targets(self) -> TargetDiscovery:
        return TargetDiscovery(self.settings.fleet_tag_value, self.clients)

    @cached_property
    def sweep_readiness(self) -> SweepReadiness | None:
        """This sweep's readiness pages (None outside the sweep: events, audit, the cutover)."""
        return SweepReadiness(self.targets) if self.sweep else None

    @cached_property
    def flaps(self) -> FlapGuard | None:
        return flap_guard(self.settings, self.clients)

    def _flapping(self, detail: ElbCallDetail | None, unit: str) -> Flapping | None:
        """The unit's repairs are suspended, or this drift event makes it so (proxymx.controls).
        Asked only where a repair is planned: an undo that took nothing away is not counted."""
        if self.flaps is None:
            return None
        now = int(time.time())
        if detail is not None and detail.is_drift and not self.settings.dry_run:
            actor = detail.user_identity.issuer_arn or detail.user_identity.who
            at = int(detail.event_time.timestamp())
            return self.flaps.record(unit, actor, detail.event_id, at, now)
        return self.flaps.suspension(unit, now)

    def _suspended(
        self, detail: ElbCallDetail | None, subject: str, flapping: list[Flapping], changes: list[str]
    ) -> ProxyProtocolResult:
        described = [f.describe() for f in flapping]
        for text in described:
            log.error("suspended: %s", text, extra={"load_balancer": subject, "actor": _actor(detail)})
        if self.notifier is not None and not self.settings.dry_run:
            self.notifier.flapping(flapping)
        result = self._result(
            detail, "suspended", " | ".join(described) + f"; would: {changes}", subject, changes
        )
        return replace(result, suspended=described)

    def _halted(self) -> str | None:
        """The kill switch (proxymx.controls), asked only where a write is planned."""
        return halted(self.settings, self.clients)

    def handle(self, event: LoadBalancerEvent) -> ProxyProtocolResult:
        from proxymx.models.attach import AttachApiCallEvent
        from proxymx.models.cloudtrail import (
            ClassicAddTags,
            ClassicCreateLoadBalancer,
            ClassicCreateLoadBalancerListeners,
            ClassicDeletePolicy,
            ClassicRegisterInstances,
            ClassicSetBackendPolicies,
            V2AddTags,
            V2CreateListener,
            V2CreateLoadBalancer,
            V2CreateTargetGroup,
            V2ModifyListener,
            V2ModifyTargetGroupAttributes,
            V2RegisterTargets,
        )

        if isinstance(event, AttachApiCallEvent):
            return self.attached(event.detail)
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
        if isinstance(detail, ClassicAddTags | V2AddTags):
            # The way back at once (proxymx.loadbalancer.wayback.tags_added).
            return tags_added(self, detail)
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

    def ensure_unit(self, unit: str) -> ProxyProtocolResult:
        """One unit by its key (``classic/<name>``, ``tg/<arn>``), as the sweep would see it."""
        kind, _, name = unit.partition("/")
        if kind == "classic":
            return self.ensure_classic(name)
        if kind == "tg":
            return self._target_group(None, name)
        raise ValueError(f"not a unit key: {unit!r}")

    # ----- what is ignored without reading anything ----------------------------------------

    def _ignore_reason(self, detail: ElbCallDetail) -> str | None:
        from proxymx.models.cloudtrail import (
            FailedElbCall,
            V2CreateListener,
            V2CreateLoadBalancer,
            V2CreateTargetGroup,
            V2ModifyListener,
        )

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

    def ensure_classic(
        self, name: str, detail: ElbCallDetail | None = None, *, state: ClassicState | None = None
    ) -> ProxyProtocolResult:
        """Bring one Classic ELB into compliance (``detail``: the event that asked; None: the sweep).
        ``state``: already read (the sweep's pages, :mod:`proxymx.inventory`), else described here."""
        state = state if state is not None else self.classic.describe(name)
        plan = plan_classic(state, self.settings)
        if plan.out_of_scope:
            return self._result(detail, "ignored", plan.out_of_scope, load_balancer=name)
        if wants_off(state.tags):
            # The operator asked for the header off: the way back, never the plan to turn it on.
            # The kill switch holds it too: paused means no load balancer write at all.
            halt = self._halted()
            if halt:
                return self._result(detail, "paused", f"{halt}; would: the way back", name)
            return self._way_back(detail, name, [WayBack(self).classic(state)], [f"classic/{name}"])
        for reason in plan.skipped:
            log.info("skipped %s", reason, extra={"load_balancer": name})
        if not plan.eligible_ports:
            return self._result(detail, "compliant", "no SMTP instance port with a TCP/SSL listener", name)
        if not plan.has_changes:
            ports = list(plan.eligible_ports)
            sweep = self.sweep_readiness if detail is None else None
            if sweep is not None:
                # The sweep: fleet targets behind the header with a stale tag are refreshed. The
                # registered instances came with the ELB's page and their tags with the sweep's
                # instance pages: no per-unit read for an ELB whose targets are all fresh.
                requirement = Requirement(plan.eligible_ports, "v1")
                registered = [Target(i, None, "registered") for i in state.instances]
                stale = self._sweep_refresh(sweep, f"classic/{name}", requirement, registered)
                if stale is not None:
                    return stale
            return self._result(
                detail, "compliant", f"PROXY protocol already on instance ports {ports}", name
            )
        paused = self._halted() or pause_reason([state.tags], datetime.now(UTC))
        if paused:
            log.warning("%s: %s", name, paused, extra={"load_balancer": name})
            return self._result(
                detail, "paused", f"{paused}; would: {plan.describe()}", name, plan.describe()
            )
        flapping = self._flapping(detail, f"classic/{name}")
        if flapping is not None:
            return self._suspended(detail, name, [flapping], plan.describe())
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
        if self.notifier is not None and plan.attach:
            # Switched: a notice sent about this unit is over (the next problem is news).
            self.notifier.settled(f"classic/{plan.load_balancer}")
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
        self, detail: ElbCallDetail | None, unit: str, requirement: Requirement, targets: list[Target]
    ) -> ProxyProtocolResult:
        """Targets behind a unit that already sends the header: fleet targets not ready for it are
        configured at once (proxymx.loadbalancer.refresh); the others are reported and alarmed."""
        unready = unready_targets(requirement, self.targets.readiness(targets))
        if not unready:
            return self._result(
                detail, "compliant", f"registered targets are ready for {requirement.describe()}", unit
            )
        return self._refresh_unready(detail, unit, requirement, unready)

    def _refresh_unready(
        self, detail: ElbCallDetail | None, unit: str, requirement: Requirement, unready: Sequence[Unready]
    ) -> ProxyProtocolResult:
        """Unready targets behind a unit that sends: the fleet ones configured (the refresh), the
        others reported; the kill switch asked first (paused: no command)."""
        # Imported here: only an invocation with a stale target sends a refresh (it brings the
        # launch side's SSM and claim code, ~1.5 % of a cold start, issue 11).
        from proxymx.loadbalancer.refresh import plan_refresh

        plan = plan_refresh(unit, requirement, unready)
        halt = self._halted() if plan.fleet else None
        changes: list[str] = []
        offline: list[str] = []
        sent = 0
        if plan.fleet and self.settings.dry_run:
            changes, sent = plan.describe(), len(plan.fleet)
        elif plan.fleet and not halt:
            changes, offline, sent = self.refresher.refresh(plan)
        # The header already reaches them: each session gets 500 5.5.2 until Postfix is configured.
        # Outside the fleet (or while paused, or no agent): the operator's -- metric, alarm, notice.
        left = [u for u in unready if u.target_id not in plan.fleet or halt or u.target_id in offline]
        described = [u.describe() for u in left]
        if described:
            log.error(
                "behind a unit that sends the PROXY header, not ready: %s",
                "; ".join(described),
                extra={"load_balancer": unit, "unready": described},
            )
            if self.notifier is not None and not self.settings.dry_run:
                self.notifier.unready(unit, described, sweep=detail is None)
        reasons = [f"{unit} sends {requirement.describe()}"]
        if changes:
            reasons.append(f"{len(plan.fleet)} fleet target(s) refreshed: " + "; ".join(changes))
        if described:
            reasons.append("target(s) not ready: " + ", ".join(described))
        if halt:
            reasons.append(halt)
        # Nothing sent because every command is still in flight: nothing changed by this call.
        outcome: Outcome = (
            "paused" if halt else "blocked" if described else "changed" if sent else "compliant"
        )
        if outcome == "changed" and self.settings.dry_run:
            reasons.append("dry run: nothing sent")
        result = self._result(detail, outcome, "; ".join(reasons), unit, changes)
        return replace(result, unready_behind_header=described, refreshed=sent)

    def _sweep_refresh(
        self, sweep: SweepReadiness, unit: str, requirement: Requirement, targets: list[Target]
    ) -> ProxyProtocolResult | None:
        """A unit that sends: its stale fleet targets refreshed (None when there is nothing to do).
        Launches held in Pending:Wait are left out: the launch flow's own command is theirs."""
        if not targets:
            return None
        unready = unready_targets(requirement, sweep.readiness(targets))
        if unready:
            launching = sweep.launching()
            unready = tuple(u for u in unready if u.target_id not in launching)
        if not unready:
            return None
        result = self._refresh_unready(None, unit, requirement, unready)
        # Every command still in flight (the claims): nothing changed by this sweep.
        return None if result.outcome == "compliant" else result

    def _sweep_refresh_target_groups(
        self, sweep: SweepReadiness, sending: list[TargetGroupState]
    ) -> ProxyProtocolResult | None:
        """DescribeTargetHealth has no batch form: a sending group's targets are read (one call,
        plus one DescribeInstances for IP targets the pages do not know) only when some live fleet
        instance of the account, not launching, is stale for the group's requirement. Everything
        fresh: no per-group call. The price of a stale one: one read per sending group with that
        requirement (proxymx cannot tell which group holds it without reading), for as long as it
        stays stale; registrations and Attach* events refresh at once, so that is rare and short.
        The pre-check uses the group's port: a target registered on another port (a per-target
        override) is checked by its registration event and whenever the group is read."""
        results = []
        for tg in sending:
            ipv6 = self._ipv6(tg)
            if not sweep.stale_fleet(Requirement((tg.port,) if tg.port else (), "v2", ipv6=ipv6)):
                continue
            targets = self.targets.registered_targets(tg.arn, tg.port, sweep.by_private_ip)
            ports = tuple(sorted({t.port for t in targets if t.port is not None}))
            requirement = Requirement(ports or ((tg.port,) if tg.port else ()), "v2", ipv6=ipv6)
            result = self._sweep_refresh(sweep, f"tg/{tg.arn}", requirement, targets)
            if result is not None:
                results.append(result)
        if not results:
            return None
        if len(results) == 1:
            return results[0]
        worst = next(
            (r for outcome in ("blocked", "paused", "changed") for r in results if r.outcome == outcome),
            results[0],
        )
        return replace(
            worst,
            reason=" | ".join(r.reason for r in results),
            changes=[c for r in results for c in r.changes],
            unready_behind_header=[u for r in results for u in r.unready_behind_header],
            refreshed=sum(r.refreshed for r in results),
        )

    @cached_property
    def refresher(self) -> Refresher:
        from proxymx.loadbalancer.refresh import Refresher

        return Refresher(self.settings, self.clients)

    def attached(self, call: AttachCall) -> ProxyProtocolResult:
        """An Auto Scaling group attached to load balancers / target groups (registration is a
        write too): each unit that sends gets the group's instances checked and refreshed like a
        registration; a unit that does not send runs its normal plan, as the sweep would."""
        event_name, actor = call.event_name, call.user_identity.who
        if call.error_code:
            reason = f"the API call failed ({call.error_code}): nothing changed"
            return replace(self._result(None, "ignored", reason), event_name=event_name, actor=actor)
        instances = self.targets.group_instances(call.group_name)
        results: list[ProxyProtocolResult] = []
        for name in call.load_balancer_names:
            state = self.classic.describe(name)
            ports = tuple(p for p in self._eligible(state) if self._sends_on(state, p))
            if not ports:
                results.append(self.ensure_classic(name))
                continue
            targets = [Target(i, None, "registered") for i in instances]
            results.append(self._registered(None, f"classic/{name}", Requirement(ports, "v1"), targets))
        for arn in call.target_group_arns:
            group = self.nlb.target_group(arn)
            (tg,) = self.nlb.target_group_states([group])
            if not (tg.supports_proxy_protocol and self.nlb.proxy_protocol_v2(arn)) or tg.port is None:
                results.append(self._target_group(None, arn))
                continue
            requirement = Requirement((tg.port,), "v2", ipv6=self.nlb.dualstack(tg.load_balancer_arns))
            targets = [Target(i, tg.port, "registered") for i in instances]
            results.append(self._registered(None, f"tg/{arn}", requirement, targets))
        if not results:
            result = self._result(None, "ignored", "no load balancer or target group attached")
            return replace(result, event_name=event_name, actor=actor)
        severity = ["broken", "blocked", "suspended", "paused", "changed", "compliant", "ignored"]
        worst = min(results, key=lambda r: severity.index(r.outcome))
        return replace(
            worst,
            reason=f"{call.group_name} attached: " + " | ".join(r.reason for r in results),
            load_balancer=call.group_name,
            changes=[c for r in results for c in r.changes],
            blocked=[b for r in results for b in r.blocked],
            unready_behind_header=[u for r in results for u in r.unready_behind_header],
            enabled_count=sum(r.enabled_count for r in results),
            refreshed=sum(r.refreshed for r in results),
            event_name=event_name,
            actor=actor,
        )

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

    def ensure_listed_v2(
        self,
        arn: str,
        name: str,
        groups: Sequence[dict[str, Any]],
        tags: Mapping[str, Mapping[str, str]],
    ) -> ProxyProtocolResult:
        """The sweep's form of :meth:`ensure_load_balancer_v2`: the NLB, its target groups and the
        tags of both already read in pages (:mod:`proxymx.inventory`). What has no batch read is
        read here, and only where it decides something: the listeners (one call, see
        :meth:`_needs_listeners`), each candidate's attributes (one call each)."""
        if not groups:
            return self._result(
                None, "compliant", "no target groups yet (CreateTargetGroup/CreateListener bring them)", arn
            )
        return self.ensure_target_group_states(name, self.listed_v2_states(arn, groups, tags))

    def listed_v2_states(
        self, arn: str, groups: Sequence[dict[str, Any]], tags: Mapping[str, Mapping[str, str]]
    ) -> list[TargetGroupState]:
        """The states of an NLB's listed groups (attributes not read yet)."""
        lb_tags = tags.get(arn, {})
        in_scope = [
            tg
            for tg in groups
            if (tg.get("Protocol") or "").upper() in NLB_PROXY_PROTOCOLS
            and load_balancer_out_of_scope([tags.get(tg["TargetGroupArn"], {}), lb_tags], self.settings)
            is None
        ]
        ports = self.nlb.listener_ports(arn) if any(self._needs_listeners(tg) for tg in in_scope) else {}
        return self.nlb.target_group_states(groups, ports, tags=tags)

    def ensure_target_group_states(self, subject: str, states: list[TargetGroupState]) -> ProxyProtocolResult:
        """Target groups already described (the sweep's pages; audit's one group at a time)."""
        return self._reconcile_target_groups(None, states, subject)

    def _needs_listeners(self, group: Mapping[str, Any]) -> bool:
        """The listeners decide something only for a group whose own port is not an SMTP port
        (a listener on 25 may forward to 2525), or a TCP instance group (a TLS listener in front
        hides the client's address: nlbheader rule 3). Any other group needs the header or not
        whatever its listeners are."""
        if group.get("Port") not in self.settings.smtp_ports:
            return True
        return (group.get("TargetType") or "instance") == "instance" and (
            group.get("Protocol") or ""
        ).upper() == "TCP"

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
        off = [
            tg
            for tg in states
            if wants_off(tg.tags, *tg.load_balancer_tags) and not _out_of_scope(tg, self.settings)
        ]
        halt = self._halted() if off else None
        if halt:
            return self._result(detail, "paused", f"{halt}; would: the way back", subject)
        if off:
            # The way back for these groups (proxymx.loadbalancer.wayback); the others as usual.
            done = [WayBack(self).target_group(tg.arn, tg.port) for tg in off]
            units = [f"tg/{tg.arn}" for tg in off]
            rest = [tg for tg in states if tg not in off]
            if not rest:
                return self._way_back(detail, subject, done, units)
            result = self._reconcile_target_groups(detail, rest, subject)
            return replace(result, way_back=[w.describe(u) for w, u in zip(done, units, strict=True)])
        candidates = {tg.arn for tg in target_group_candidates(states, self.settings)}
        # A state whose header was read already (proxymx audit reads it to tell broken apart) is
        # not read twice.
        read = [
            self.nlb.with_proxy_protocol_state(tg) if tg.arn in candidates and tg.header is None else tg
            for tg in states
        ]
        plan = plan_target_groups(read, self.settings)
        for reason in plan.skipped:
            log.info("skipped %s", reason, extra={"load_balancer": subject})
        if not plan.enable and not plan.compliant and not plan.broken and not plan.preserved:
            reasons = "; ".join(plan.skipped) or "no target group"
            # Out of scope (tags) is "ignored", like a Classic ELB; nothing eligible is "compliant".
            outcome: Outcome = "ignored" if plan.out_of_scope else "compliant"
            return self._result(detail, outcome, reasons, subject)
        if not plan.has_changes:
            sweep = self.sweep_readiness if detail is None else None
            if sweep is not None:
                sending = [tg for tg in read if tg.arn in plan.compliant]
                stale = self._sweep_refresh_target_groups(sweep, sending)
                if stale is not None:
                    return stale
            return self._result(detail, "compliant", _compliant_reason(plan), subject)
        by_arn = {tg.arn: tg for tg in read}
        halt = self._halted()
        if halt:
            log.warning("%s: %s", subject, halt, extra={"load_balancer": subject})
            return self._result(
                detail, "paused", f"{halt}; would: {plan.describe()}", subject, plan.describe()
            )
        now = datetime.now(UTC)
        paused: dict[str, str] = {}
        suspended: dict[str, Flapping] = {}
        for arn in (*plan.enable, *plan.broken):
            why = pause_reason([by_arn[arn].tags, *by_arn[arn].load_balancer_tags], now)
            if why:
                paused[arn] = why
                log.warning("%s: %s", arn, why, extra={"load_balancer": subject})
                continue
            flapping = self._flapping(detail, f"tg/{arn}")
            if flapping is not None:
                suspended[arn] = flapping
        if paused or suspended:
            if len(paused) + len(suspended) == len(plan.enable) + len(plan.broken):
                if not paused:
                    return self._suspended(detail, subject, list(suspended.values()), plan.describe())
                whys = "; ".join(f"{arn}: {why}" for arn, why in paused.items())
                return self._result(detail, "paused", whys, subject, plan.describe())
            paused = {**paused, **{arn: f.describe() for arn, f in suspended.items()}}
            plan = replace(
                plan,
                enable=tuple(a for a in plan.enable if a not in paused),
                broken=tuple(a for a in plan.broken if a not in paused),
            )
        result = self._interlocked_apply(detail, plan, by_arn, subject)
        if not suspended:
            return result
        # Some target groups of this load balancer are suspended (flapping), the others went on.
        flaps = list(suspended.values())
        if self.notifier is not None and not self.settings.dry_run:
            self.notifier.flapping(flaps)
        described = [f.describe() for f in flaps]
        return replace(result, suspended=described, reason=" | ".join([result.reason, *described]))

    def _interlocked_apply(
        self,
        detail: ElbCallDetail | None,
        plan: TargetGroupPlan,
        by_arn: dict[str, TargetGroupState],
        subject: str,
    ) -> ProxyProtocolResult:
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
        requirement = Requirement(ports or (tg.port or 0,), "v2", ipv6=self._ipv6(tg))
        return interlock(f"tg/{tg.arn}", requirement, self.targets.readiness(targets))

    def _ipv6(self, tg: TargetGroupState) -> bool:
        """IPv6 senders reach the group: one of its NLBs is dual-stack."""
        # The IpAddressType already read for the header decision is reused (one read per NLB).
        ip_types = tg.load_balancer_ip_address_types or (
            self.nlb.ip_address_types(tg.load_balancer_arns) if tg.load_balancer_arns else ()
        )
        return any(t.startswith("dualstack") for t in ip_types)

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
        if self.notifier is not None:
            for arn in applied:
                self.notifier.settled(f"tg/{arn}")
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
        if self.notifier is not None and broken and not self.settings.dry_run:
            # Every SMTP session through it hangs: told once (per state), not every sweep.
            self.notifier.broken(broken, support_request, sweep=result.event_name == SWEEP_EVENT_NAME)
        fields = {**result.to_dict(), "outcome": outcome, "reason": " | ".join(reasons)}
        return ProxyProtocolResult(**{**fields, "placement_blocked": blocked, "broken": broken})

    # ----- results ----------------------------------------------------------------------

    def _way_back(
        self, detail: ElbCallDetail | None, subject: str, done: list[WayBackResult], units: list[str]
    ) -> ProxyProtocolResult:
        described = [w.describe(u) for w, u in zip(done, units, strict=True)]
        acted = any(w.turned_off or w.reverted for w in done)
        reason = "; ".join(described)
        if self.settings.dry_run and acted:
            reason = f"dry run: nothing written; would: {reason}"
        log.warning("%s", reason, extra={"load_balancer": subject, "way_back": described})
        result = self._result(detail, "changed" if acted else "compliant", reason, subject)
        return replace(result, way_back=described)

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
        if self.on_blocked is not None:
            self.on_blocked(blocked)
        log.warning(
            "blocked: %s", "; ".join(described), extra={"load_balancer": subject, "blocked": described}
        )
        if self.notifier is not None and not self.settings.dry_run:
            self.notifier.blocked(blocked, sweep=detail is None)
        reasons = ["PROXY protocol not switched on: " + "; ".join(described)]
        started = failed = 0
        if self.cutovers is not None:
            # The fleet-first cutover (issue 7.3): the outcome stays blocked until the switch.
            for unit in blocked:
                answer = self.cutovers.start(unit)
                started += answer.started
                reasons.append(f"{unit.unit}: {answer.reason}")
            failed = sum(1 for m in self.cutovers.measured if m.name == "CutoversFailed")
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
        extra: dict[str, Any] = {"blocked": described, "cutovers_started": started, "cutovers_failed": failed}
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
    event: LoadBalancerEvent,
    settings: Settings,
    clients: Clients,
    *,
    now: datetime | None = None,
    sleep: Callable[[float], Any] | None = None,
) -> ProxyProtocolResult:
    """The one domain call of the EnableProxyProtocol handler (``now`` is not needed here: every
    flow's entry point takes the same arguments)."""
    service = EnableProxyProtocol(
        settings,
        clients,
        sleep=sleep or time.sleep,
        notifier=blocked_notifier(settings, clients),
        cutovers=cutovers_for(settings, clients),
    )
    result = service.handle(event)
    log.info("outcome %s: %s", result.outcome, result.reason, extra={"result": result.to_dict()})
    return result


def cutovers_for(settings: Settings, clients: Clients) -> CutoverStarter | None:
    """The cutover engine, when the StateTable is configured (the template always sets it)."""
    from proxymx.loadbalancer.cutover_flow import cutovers_for as engine

    return engine(settings, clients)


def blocked_notifier(settings: Settings, clients: Clients) -> BlockedNotifier | None:
    """The SNS notice of a blocked unit, when NotificationTopicArn is set."""
    if not settings.notification_topic_arn:
        return None
    from proxymx.launch.sns import Notifications
    from proxymx.loadbalancer.notify import NoticeLedger, SnsBlockedNotifier
    from proxymx.state import StateTable

    # With the StateTable: at most one notice per unit per state change, from the sweep too.
    ledger = (
        NoticeLedger(StateTable(settings.state_table_name, clients.dynamodb))
        if settings.state_table_name
        else None
    )
    return SnsBlockedNotifier(settings.notification_topic_arn, Notifications(clients.sns), ledger)
