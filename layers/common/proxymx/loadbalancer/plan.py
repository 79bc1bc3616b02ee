"""What must change on a load balancer: pure decisions, no AWS.

The adapters describe a load balancer into the state classes below; :func:`plan_classic` and
:func:`plan_target_groups` decide what to change; the adapters apply the plan. A dry run is
the same plan, logged and not applied.

Decisions (see docs/loadbalancers.md):

- Classic ELB: a backend (instance) port is eligible when it carries SMTP (it is an SMTP port,
  or a listener on an SMTP port forwards to it: 25 -> 2525, like an NLB listener in front of a
  target group) and EVERY listener forwarding to it speaks TCP or SSL to the instance. A PROXY
  header in front of an HTTP backend breaks it, and the policy applies per instance port, not
  per listener.
- An existing ``ProxyProtocolPolicyType`` policy with ``ProxyProtocol=true`` is reused (ours by
  name first), so a load balancer someone configured by hand is compliant as it is.
- NLB: a target group is eligible when its protocol is TCP or TLS (the only NLB protocols that
  accept ``proxy_protocol_v2.enabled``; SMTP is never UDP) and its port or the port of a
  listener forwarding to it is an SMTP port.
- NLB header placement and preserved client address: :mod:`proxymx.loadbalancer.nlbheader`
  decides (``on_first_ack`` with ``enabled=true`` in one call; header on with another placement
  is broken; instance TCP targets with preservation on need no header).
- Scope by tags (:func:`proxymx.scope.load_balancer_out_of_scope`): the opt-out tag on the load
  balancer, or on a target group or any load balancer it serves, excludes it; the required tag,
  when set, must be on the load balancer (Classic) or on the target group or one of its load
  balancers (NLB).
- The interlock (issue 7.2, docs/agreement.md): a plan that turns the header ON is allowed only
  when every target of the unit covers the unit's requirement, or it has no target; otherwise
  it is :class:`Blocked`. Header on + Postfix not configured answers every command ``500 5.5.2``
  (senders may bounce mail); the opposite mismatch is only a retried ``421``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import field
from datetime import UTC, datetime

from proxymx.config import Settings
from proxymx.frozen import frozen
from proxymx.loadbalancer.nlbheader import HeaderAttributes, decide_header
from proxymx.loadbalancer.readiness import Requirement
from proxymx.loadbalancer.targets import TargetReadiness, Unready, unready_targets
from proxymx.scope import Tags, load_balancer_out_of_scope

PROXY_POLICY_TYPE = "ProxyProtocolPolicyType"
PROXY_POLICY_NAME = "proxymx-ProxyProtocol"
PROXY_PROTOCOL_V2 = "proxy_protocol_v2.enabled"
CLASSIC_BACKEND_PROTOCOLS = frozenset({"TCP", "SSL"})
NLB_PROXY_PROTOCOLS = frozenset({"TCP", "TLS"})


# An operator's brake on one unit (issue 7.5): no write to it until this RFC 3339 UTC time.
PAUSE_TAG_KEY = "proxymx:pause-until"


def pause_reason(tag_sets: Sequence[Tags], now: datetime) -> str | None:
    """Why these tags pause writes now, or None. An unreadable value pauses (the operator meant
    to stop us; guessing an expiry would be worse) and says so."""
    for tags in tag_sets:
        value = tags.get(PAUSE_TAG_KEY)
        if value is None:
            continue
        try:
            until = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return (
                f"paused by tag {PAUSE_TAG_KEY}={value!r} (unreadable: expected RFC 3339 UTC, paused anyway)"
            )
        if until.tzinfo is None:
            until = until.replace(tzinfo=UTC)
        if now < until:
            return f"paused by tag {PAUSE_TAG_KEY} until {until.astimezone(UTC).isoformat()}"
    return None


# ----- Classic ELB ---------------------------------------------------------------------------


@frozen
class ClassicListener:
    load_balancer_port: int
    protocol: str
    instance_port: int
    instance_protocol: str

    @property
    def forwards_tcp(self) -> bool:
        return self.instance_protocol.upper() in CLASSIC_BACKEND_PROTOCOLS


@frozen
class ClassicPolicy:
    name: str
    type_name: str
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def enables_proxy_protocol(self) -> bool:
        return (
            self.type_name == PROXY_POLICY_TYPE
            and self.attributes.get("ProxyProtocol", "").strip().lower() == "true"
        )


@frozen
class ClassicState:
    name: str
    listeners: tuple[ClassicListener, ...]
    backend_policies: Mapping[int, tuple[str, ...]]
    policies: tuple[ClassicPolicy, ...]
    tags: Tags
    # Registered instances (DescribeLoadBalancers ``Instances``): the targets of the interlock.
    instances: tuple[str, ...] = ()


@frozen
class BackendPolicies:
    instance_port: int
    policy_names: tuple[str, ...]


@frozen
class ClassicPlan:
    load_balancer: str
    policy_name: str
    create_policy: bool = False
    attach: tuple[BackendPolicies, ...] = ()
    eligible_ports: tuple[int, ...] = ()
    skipped: tuple[str, ...] = ()
    out_of_scope: str | None = None

    @property
    def has_changes(self) -> bool:
        return self.create_policy or bool(self.attach)

    def describe(self) -> list[str]:
        steps = []
        if self.create_policy:
            steps.append(
                f"create policy {self.policy_name} ({PROXY_POLICY_TYPE}, ProxyProtocol=true) "
                f"on {self.load_balancer}"
            )
        steps.extend(
            f"set backend policies of {self.load_balancer} instance port {b.instance_port} "
            f"to {list(b.policy_names)}"
            for b in self.attach
        )
        return steps


def smtp_instance_ports(listeners: Sequence[ClassicListener], smtp_ports: Sequence[int]) -> list[int]:
    """Instance ports that carry SMTP: an SMTP port itself, or behind a listener on one."""
    return sorted(
        {
            listener.instance_port
            for listener in listeners
            if listener.instance_port in smtp_ports or listener.load_balancer_port in smtp_ports
        }
    )


def eligible_classic_ports(listeners: Sequence[ClassicListener], smtp_ports: Sequence[int]) -> list[int]:
    ports = smtp_instance_ports(listeners, smtp_ports)
    return [
        port
        for port in ports
        if all(listener.forwards_tcp for listener in listeners if listener.instance_port == port)
    ]


def plan_classic(state: ClassicState, settings: Settings) -> ClassicPlan:
    reason = load_balancer_out_of_scope([state.tags], settings)
    if reason:
        return ClassicPlan(state.name, PROXY_POLICY_NAME, out_of_scope=reason)
    ports = eligible_classic_ports(state.listeners, settings.smtp_ports)
    skipped = tuple(
        f"instance port {port}: a non-TCP/SSL listener forwards to it"
        for port in smtp_instance_ports(state.listeners, settings.smtp_ports)
        if port not in ports
    )
    if not ports:
        return ClassicPlan(state.name, PROXY_POLICY_NAME, skipped=skipped)
    proxy_policies = [p.name for p in state.policies if p.enables_proxy_protocol]
    policy_name = (
        PROXY_POLICY_NAME if PROXY_POLICY_NAME in proxy_policies or not proxy_policies else proxy_policies[0]
    )
    attach = []
    for port in ports:
        current = state.backend_policies.get(port, ())
        if any(name in proxy_policies for name in current):
            continue  # some PROXY protocol policy is already on this port
        # SetLoadBalancerPoliciesForBackendServer REPLACES the port's list: keep what is there.
        attach.append(BackendPolicies(port, (*current, policy_name)))
    return ClassicPlan(
        state.name,
        policy_name,
        create_policy=not proxy_policies,
        attach=tuple(attach),
        eligible_ports=tuple(ports),
        skipped=skipped,
    )


# ----- NLB target groups -----------------------------------------------------------------------


@frozen
class TargetGroupState:
    arn: str
    name: str
    protocol: str | None
    port: int | None
    load_balancer_arns: tuple[str, ...] = ()
    # Ports of the listeners that forward to this target group.
    listener_ports: tuple[int, ...] = ()
    tags: Tags = field(default_factory=dict)
    load_balancer_tags: tuple[Tags, ...] = ()
    # None until read (only eligible, in-scope target groups are read).
    proxy_protocol_v2: bool | None = None
    target_type: str | None = None
    # Protocols of the listeners that forward to this target group (TLS hides the client).
    listener_protocols: tuple[str, ...] = ()
    # The header attributes, read with proxy_protocol_v2 (None: not read).
    header: HeaderAttributes | None = None
    # IpAddressType of its load balancers, read only where the address may be preserved.
    load_balancer_ip_address_types: tuple[str, ...] = ()

    @property
    def supports_proxy_protocol(self) -> bool:
        return (self.protocol or "").upper() in NLB_PROXY_PROTOCOLS

    def carries_smtp(self, smtp_ports: Sequence[int]) -> bool:
        return self.port in smtp_ports or any(port in smtp_ports for port in self.listener_ports)


@frozen
class TargetGroupPlan:
    enable: tuple[str, ...] = ()
    compliant: tuple[str, ...] = ()
    # Not eligible (protocol, port) or out of scope (tags), with the reason.
    skipped: tuple[str, ...] = ()
    out_of_scope: tuple[str, ...] = ()
    # ARN -> the attributes of its ONE ModifyTargetGroupAttributes call (enable and repair).
    writes: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    # Header on with a placement that deadlocks SMTP: repaired by ``writes`` when AWS allows it.
    broken: tuple[str, ...] = ()
    # Compliant without a header: the client address is preserved (nlbheader rule 3).
    preserved: tuple[str, ...] = ()

    @property
    def has_changes(self) -> bool:
        return bool(self.enable or self.broken)

    def attributes_for(self, arn: str) -> tuple[tuple[str, str], ...]:
        return self.writes.get(arn, ((PROXY_PROTOCOL_V2, "true"),))

    def describe(self) -> list[str]:
        return [
            f"set {', '.join(f'{k}={v}' for k, v in self.attributes_for(arn))} on target group {arn}"
            for arn in (*self.enable, *self.broken)
        ]


def target_group_candidates(groups: Sequence[TargetGroupState], settings: Settings) -> list[TargetGroupState]:
    """The target groups that need their attribute read (eligible and in scope)."""
    return [tg for tg in groups if _ineligible(tg, settings) is None and _out_of_scope(tg, settings) is None]


def _ineligible(tg: TargetGroupState, settings: Settings) -> str | None:
    if not tg.supports_proxy_protocol:
        return f"target group {tg.name}: protocol {tg.protocol} does not carry the PROXY protocol"
    if not tg.carries_smtp(settings.smtp_ports):
        return f"target group {tg.name}: no SMTP port (port {tg.port}, listeners {list(tg.listener_ports)})"
    return None


def _out_of_scope(tg: TargetGroupState, settings: Settings) -> str | None:
    reason = load_balancer_out_of_scope([tg.tags, *tg.load_balancer_tags], settings)
    return f"target group {tg.name}: {reason}" if reason else None


def plan_target_groups(groups: Sequence[TargetGroupState], settings: Settings) -> TargetGroupPlan:
    enable: list[str] = []
    compliant: list[str] = []
    skipped: list[str] = []
    out_of_scope: list[str] = []
    broken: list[str] = []
    preserved: list[str] = []
    writes: dict[str, tuple[tuple[str, str], ...]] = {}
    for tg in groups:
        ineligible = _ineligible(tg, settings)
        excluded = None if ineligible else _out_of_scope(tg, settings)
        if ineligible:
            skipped.append(ineligible)
        elif excluded:
            skipped.append(excluded)
            out_of_scope.append(excluded)
        elif tg.header is not None:
            decision = decide_header(
                tg.header,
                tg.protocol,
                tg.listener_protocols,
                tg.load_balancer_ip_address_types,
                when_client_ip_preserved=settings.proxy_protocol_when_client_ip_preserved,
            )
            if decision.write:
                writes[tg.arn] = decision.write
            {"compliant": compliant, "preserved": preserved, "enable": enable, "broken": broken}[
                decision.action
            ].append(tg.arn)
        elif tg.proxy_protocol_v2:
            compliant.append(tg.arn)
        else:
            enable.append(tg.arn)
    return TargetGroupPlan(
        tuple(enable),
        tuple(compliant),
        tuple(skipped),
        tuple(out_of_scope),
        writes,
        tuple(broken),
        tuple(preserved),
    )


# ----- the interlock (issue 7.2) -----------------------------------------------------------------


@frozen
class Blocked:
    """A unit whose header may not be switched on: the targets that are not ready for it."""

    unit: str
    requirement: Requirement
    unready: tuple[Unready, ...]

    @property
    def outside_fleet(self) -> tuple[Unready, ...]:
        return tuple(u for u in self.unready if not u.in_fleet)

    def describe(self) -> str:
        shown = ", ".join(u.describe() for u in self.unready[:5])
        more = f" (+{len(self.unready) - 5} more)" if len(self.unready) > 5 else ""
        return (
            f"{self.unit}: {len(self.unready)} target(s) not ready for {self.requirement.describe()}: "
            f"{shown}{more}"
        )


def interlock(unit: str, requirement: Requirement, targets: Sequence[TargetReadiness]) -> Blocked | None:
    """None when the header may go on (every target covers the requirement, or no target)."""
    unready = unready_targets(requirement, targets)
    return Blocked(unit, requirement, unready) if unready else None
