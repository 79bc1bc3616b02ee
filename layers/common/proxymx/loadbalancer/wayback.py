"""The way back (issue 7.3): the operator asks for the header OFF, proxymx takes both ends back.

The ask is the tag ``proxymx:proxy-protocol=off`` on the Classic ELB, the target group or its NLB
(``proxymx off <name-or-arn>`` sets it). The order is the cutover's reversed, for the same reason:
the only safe mismatch is header off + Postfix configured (``421``, retried), never header on +
Postfix plain (``500``, bounced). So:

1. the unit is turned OFF first -- Classic: the PROXY policy taken out of the SMTP ports' backend
   lists, every other policy kept; NLB: ``proxy_protocol_v2.enabled=false`` -- and read back;
2. only then the fleet targets that no OTHER unit still sends the header to get the document with
   ``Mode=revert`` (<= 50 a command; comment ``proxymx:off:<digest>``); CheckOutcome tags each
   proven run ``plain``. Targets outside the fleet are never written (the operator's to revert).

Opting out (``proxymx:opt-out``) alone is different: proxymx stops touching the unit, in either
direction. A unit both opted out and tagged off is left alone (opted out wins: IAM denies the write).

**At once, on ``AddTags``.** The CloudTrail ``AddTags`` call that puts the tag on (Classic:
``LoadBalancerNames``; ELBv2: ``ResourceArns``, NLB or target group ARNs) is routed to
EnableProxyProtocol (:func:`tags_added`): each tagged unit goes through the sweep's own entry
(``ensure_unit``, an NLB's ``ensure_load_balancer_v2``), which sees the tag and takes the way back
-- or does nothing more than the sweep would. Tags of other keys are ``ignored`` without a call.

Idempotent: a unit found off with its fleet targets already ``plain`` (or never configured) is
``compliant``; a target whose revert failed keeps its ``ready`` tag and is sent the revert again by
the next event or sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from proxymx.batching import chunked
from proxymx.errors import ProxymxError, VerificationFailed
from proxymx.frozen import frozen
from proxymx.loadbalancer.cutover import comment_for
from proxymx.loadbalancer.plan import PROXY_PROTOCOL_V2, BackendPolicies, ClassicState
from proxymx.loadbalancer.readiness import READINESS_TAG_KEY
from proxymx.loadbalancer.targets import TargetReadiness

if TYPE_CHECKING:
    from proxymx.loadbalancer.service import EnableProxyProtocol, Outcome, ProxyProtocolResult
    from proxymx.models.cloudtrail import ClassicAddTags, V2AddTags

log = logging.getLogger(__name__)

OFF_VALUE = "off"
INSTANCES_PER_COMMAND = 50


# ----- pure decisions ---------------------------------------------------------------------------


def wants_off(*tag_sets: Mapping[str, str]) -> bool:
    """The operator asked for the header off on this unit (or its load balancer)."""
    return any(tags.get(READINESS_TAG_KEY, "").strip().lower() == OFF_VALUE for tags in tag_sets)


def classic_off_plan(state: ClassicState) -> tuple[BackendPolicies, ...]:
    """Each instance port whose backend list holds a PROXY policy, with that list minus the PROXY
    policies (SetLoadBalancerPoliciesForBackendServer replaces the list: the rest is kept)."""
    proxy = {p.name for p in state.policies if p.enables_proxy_protocol}
    return tuple(
        BackendPolicies(port, tuple(n for n in names if n not in proxy))
        for port, names in sorted(state.backend_policies.items())
        if proxy & set(names)
    )


def revert_candidates(targets: Sequence[TargetReadiness], still_sent: Iterable[str]) -> list[str]:
    """Fleet targets to put back to plain: not behind another unit that still sends, not already
    proven plain or never configured by anyone (no tag: nothing to revert)."""
    kept = set(still_sent)
    return sorted(
        t.target_id
        for t in targets
        if t.in_fleet
        and t.target_id not in kept
        and t.readiness.state == "ready"
        and t.target_id.startswith("i-")
    )


@frozen
class WayBackResult:
    turned_off: tuple[str, ...]
    reverted: tuple[str, ...]
    kept: tuple[str, ...]
    commands: tuple[str, ...]

    def describe(self, unit: str) -> str:
        parts = [
            f"way back on {unit} (tag {READINESS_TAG_KEY}=off): "
            + (
                f"header turned off ({', '.join(self.turned_off)})"
                if self.turned_off
                else "header already off"
            )
        ]
        if self.reverted:
            commands = ", ".join(self.commands) or "none yet"
            parts.append(
                f"{len(self.reverted)} fleet target(s) being reverted to plain (commands {commands})"
            )
        if self.kept:
            parts.append(
                f"{len(self.kept)} target(s) kept configured: another unit still sends them the header"
            )
        return "; ".join(parts)


# ----- the moves --------------------------------------------------------------------------------


class WayBack:
    """Applies the way back through the service's own adapters (ELB, NLB, target discovery)."""

    def __init__(self, service: EnableProxyProtocol) -> None:
        self.service = service
        self.settings = service.settings

    def classic(self, state: ClassicState) -> WayBackResult:
        unit = f"classic/{state.name}"
        plan = classic_off_plan(state)
        if plan and not self.settings.dry_run:
            for backend in plan:
                self.service.classic.set_backend_policies(
                    state.name, backend.instance_port, backend.policy_names
                )
            after = self.service.classic.describe(state.name, with_tags=False)
            if classic_off_plan(after):
                raise VerificationFailed(
                    f"{state.name}: a PROXY policy is still on {list(after.backend_policies)}"
                )
        turned_off = tuple(f"instance port {b.instance_port}" for b in plan)
        targets = self.service.targets.readiness(
            self.service.targets.classic_targets(state.name, state.instances)
        )
        return self._revert(unit, targets, turned_off)

    def target_group(self, arn: str, port: int | None) -> WayBackResult:
        unit = f"tg/{arn}"
        turned_off: tuple[str, ...] = ()
        if self.service.nlb.proxy_protocol_v2(arn):
            turned_off = (f"{PROXY_PROTOCOL_V2}=false",)
            if not self.settings.dry_run:
                self.service.nlb.set_attributes(arn, ((PROXY_PROTOCOL_V2, "false"),))
                if self.service.nlb.proxy_protocol_v2(arn):
                    raise VerificationFailed(f"{arn}: {PROXY_PROTOCOL_V2} is still true after the change")
        targets = self.service.targets.readiness(self.service.targets.target_group_targets(arn, port))
        return self._revert(unit, targets, turned_off)

    def _revert(
        self, unit: str, targets: list[TargetReadiness], turned_off: tuple[str, ...]
    ) -> WayBackResult:
        """Step 2, only after step 1 was verified: the fleet back to plain."""
        candidates = [t for t in targets if t.in_fleet and t.readiness.state == "ready"]
        still_sent = self.still_sent([t.target_id for t in candidates], unit) if candidates else set()
        revert = revert_candidates(targets, still_sent)
        kept = tuple(sorted(still_sent))
        if self.settings.dry_run or not revert:
            return WayBackResult(turned_off, tuple(revert), kept, ())
        return WayBackResult(turned_off, tuple(revert), kept, tuple(self._send(unit, revert)))

    def _send(self, unit: str, instance_ids: list[str]) -> list[str]:
        from proxymx.launch.plan import document_parameters
        from proxymx.launch.runcommand import RunCommand

        runcommand = RunCommand(self.service.clients.ssm)
        # Revert every SMTP port proxymx may have configured: the setting's and the unit's.
        parameters = {**document_parameters(self.settings), "Mode": "revert"}
        commands = []
        for chunk in chunked(instance_ids, INSTANCES_PER_COMMAND):
            try:
                commands.append(
                    runcommand.send_command(
                        chunk,
                        document_name=self.settings.document_name,
                        parameters=parameters,
                        comment=comment_for("off", unit),
                        timeout_seconds=self.settings.command_timeout_seconds,
                        log_group=self.settings.command_log_group,
                    )
                )
            except ProxymxError as exc:
                # The unit is off already (the safe side); the next sweep sends the revert again.
                log.error("way back %s: revert not sent to %s: %s", unit, chunk, exc)
        return commands

    def still_sent(self, instance_ids: Sequence[str], except_unit: str) -> set[str]:
        """Which of these instances another unit still sends the header to (read, never cached:
        the way back is rare, a wrong answer would make 500s)."""
        wanted = set(instance_ids)
        found: set[str] = set()
        elb = self.service.clients.elb
        for page in elb.get_paginator("describe_load_balancers").paginate():
            for description in page.get("LoadBalancerDescriptions", []):
                name = description["LoadBalancerName"]
                registered = {i["InstanceId"] for i in description.get("Instances", []) if "InstanceId" in i}
                if f"classic/{name}" == except_unit or not registered & wanted:
                    continue
                if classic_off_plan(self.service.classic.describe(name, with_tags=False)):
                    found |= registered & wanted
        for groups in self.service.clients.elbv2.get_paginator("describe_target_groups").paginate():
            for group in groups.get("TargetGroups", []):
                arn = group["TargetGroupArn"]
                if f"tg/{arn}" == except_unit or (group.get("Protocol") or "").upper() not in ("TCP", "TLS"):
                    continue
                if not self.service.nlb.proxy_protocol_v2(arn):
                    continue
                behind = {
                    t.target_id for t in self.service.targets.target_group_targets(arn, group.get("Port"))
                }
                found |= behind & wanted
        return found


# ----- AddTags: the way back at once --------------------------------------------------------------

# The tag keys whose addition asks for work now: only ``proxymx:proxy-protocol`` (``off`` = the way
# back). ``proxymx:pause-until`` and the opt-out tag only stop writes (nothing to do at once), the
# scope tags are the sweep's to act on, and every other key (Name, cost centre, ...) is none of
# proxymx's business: such an AddTags is ``ignored`` before any AWS call.
WAY_BACK_TAG_KEYS = frozenset({READINESS_TAG_KEY})
_SEVERITY = ("broken", "blocked", "suspended", "paused", "changed", "compliant", "ignored")


def tags_added(service: EnableProxyProtocol, detail: ClassicAddTags | V2AddTags) -> ProxyProtocolResult:
    """Each tagged unit through the sweep's own entry, when a tag that matters was added."""
    from dataclasses import replace

    from proxymx.loadbalancer.service import ProxyProtocolResult
    from proxymx.models.cloudtrail import ClassicAddTags

    def result(outcome: Outcome, reason: str, subject: str | None = None) -> ProxyProtocolResult:
        return ProxyProtocolResult(
            outcome=outcome,
            reason=reason,
            event_name=detail.event_name,
            load_balancer=subject,
            dry_run=service.settings.dry_run,
            actor=detail.user_identity.who,
        )

    if not detail.tag_keys & WAY_BACK_TAG_KEYS:
        keys = ", ".join(sorted(detail.tag_keys))
        why = f"AddTags of {keys}: no tag that asks proxymx for work ({READINESS_TAG_KEY})"
        return result("ignored", why)
    results: list[ProxyProtocolResult] = []
    if isinstance(detail, ClassicAddTags):
        results = [service.ensure_unit(f"classic/{n}") for n in detail.request_parameters.load_balancer_names]
    else:
        for arn in detail.request_parameters.resource_arns:
            if ":targetgroup/" in arn:
                results.append(service.ensure_unit(f"tg/{arn}"))
            elif ":loadbalancer/net/" in arn:
                results.append(service.ensure_load_balancer_v2(arn))
            else:
                # An ALB, a listener, a rule: nothing that carries the PROXY protocol.
                results.append(result("ignored", f"{arn}: not a network load balancer or target group", arn))
    worst = min(results, key=lambda r: _SEVERITY.index(r.outcome))
    subjects = [r.load_balancer for r in results if r.load_balancer]
    return replace(
        worst,
        reason=" | ".join(r.reason for r in results),
        event_name=detail.event_name,
        actor=detail.user_identity.who,
        load_balancer=", ".join(s for s in subjects if s) or worst.load_balancer,
        changes=[c for r in results for c in r.changes],
        blocked=[b for r in results for b in r.blocked],
        way_back=[w for r in results for w in r.way_back],
        enabled_count=sum(r.enabled_count for r in results),
        cutovers_started=sum(r.cutovers_started for r in results),
    )
