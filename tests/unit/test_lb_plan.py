"""The pure plan: which Classic ports and NLB target groups must change, and what is out of scope."""

from __future__ import annotations

from proxymx.config import Settings, load_settings
from proxymx.loadbalancer.plan import (
    PROXY_POLICY_NAME,
    ClassicListener,
    ClassicPolicy,
    ClassicState,
    TargetGroupState,
    plan_classic,
    plan_target_groups,
    target_group_candidates,
)
from proxymx.scope import load_balancer_out_of_scope

DEFAULT = load_settings({})
SMTP = ClassicListener(25, "TCP", 25, "TCP")
SSH = ClassicListener(22, "TCP", 22, "TCP")
WEB = ClassicListener(80, "HTTP", 8080, "HTTP")
PROXY = ClassicPolicy(PROXY_POLICY_NAME, "ProxyProtocolPolicyType", {"ProxyProtocol": "true"})


def classic(
    listeners: tuple[ClassicListener, ...] = (SMTP, SSH, WEB),
    backend: dict[int, tuple[str, ...]] | None = None,
    policies: tuple[ClassicPolicy, ...] = (),
    tags: dict[str, str] | None = None,
) -> ClassicState:
    return ClassicState("mx", listeners, backend or {}, policies, tags or {})


def settings(**env: str) -> Settings:
    return load_settings(env)


# ----- scope -------------------------------------------------------------------------------------


def test_everything_is_in_scope_by_default() -> None:
    assert load_balancer_out_of_scope([{}], DEFAULT) is None


def test_the_opt_out_tag_excludes_with_any_value_but_false() -> None:
    assert (
        load_balancer_out_of_scope([{"proxymx:opt-out": "yes"}], DEFAULT)
        == "opted out by tag proxymx:opt-out=yes"
    )
    assert load_balancer_out_of_scope([{"proxymx:opt-out": ""}], DEFAULT) is not None
    assert load_balancer_out_of_scope([{"proxymx:opt-out": "False"}], DEFAULT) is None


def test_the_required_tag_narrows_scope_by_key_or_key_and_value() -> None:
    by_key = settings(REQUIRED_TAG="mail")
    by_pair = settings(REQUIRED_TAG="role=mx")
    assert load_balancer_out_of_scope([{"mail": "anything"}], by_key) is None
    assert load_balancer_out_of_scope([{}], by_key) == "lacks the required tag mail"
    assert load_balancer_out_of_scope([{"role": "mx"}], by_pair) is None
    assert load_balancer_out_of_scope([{"role": "web"}], by_pair) == "lacks the required tag role=mx"
    # any of the tag sets (a target group or one of its load balancers) may carry it
    assert load_balancer_out_of_scope([{}, {"role": "mx"}], by_pair) is None


# ----- Classic ELB -------------------------------------------------------------------------------


def test_a_new_classic_lb_gets_the_policy_on_its_smtp_port_only() -> None:
    # Given SMTP, SSH and HTTP listeners and no policy / When planned
    plan = plan_classic(classic(), DEFAULT)
    # Then the policy is created and attached to instance port 25 only (never 22 or 8080)
    assert plan.create_policy
    assert [(b.instance_port, b.policy_names) for b in plan.attach] == [(25, (PROXY_POLICY_NAME,))]
    assert plan.has_changes


def test_existing_backend_policies_are_merged_not_replaced() -> None:
    plan = plan_classic(classic(backend={25: ("mx-backend-auth",)}, policies=(PROXY,)), DEFAULT)
    assert not plan.create_policy
    assert [b.policy_names for b in plan.attach] == [("mx-backend-auth", PROXY_POLICY_NAME)]


def test_a_compliant_classic_lb_needs_nothing() -> None:
    plan = plan_classic(classic(backend={25: (PROXY_POLICY_NAME,)}, policies=(PROXY,)), DEFAULT)
    assert not plan.has_changes
    assert plan.eligible_ports == (25,)


def test_someone_elses_proxy_protocol_policy_is_reused() -> None:
    # Given a hand-made ProxyProtocolPolicyType policy already on the port
    theirs = ClassicPolicy("EnableProxyProtocol", "ProxyProtocolPolicyType", {"ProxyProtocol": "true"})
    plan = plan_classic(classic(backend={25: ("EnableProxyProtocol",)}, policies=(theirs,)), DEFAULT)
    # Then nothing changes; on another port it is that policy that gets attached
    assert not plan.has_changes
    two_ports = plan_classic(
        classic(listeners=(SMTP, ClassicListener(587, "TCP", 587, "TCP")), policies=(theirs,)),
        settings(SMTP_PORTS="25,587"),
    )
    assert two_ports.policy_name == "EnableProxyProtocol"
    assert not two_ports.create_policy
    assert [b.instance_port for b in two_ports.attach] == [25, 587]


def test_a_policy_with_proxy_protocol_false_does_not_count() -> None:
    off = ClassicPolicy(PROXY_POLICY_NAME, "ProxyProtocolPolicyType", {"ProxyProtocol": "false"})
    plan = plan_classic(classic(backend={25: (PROXY_POLICY_NAME,)}, policies=(off,)), DEFAULT)
    assert plan.has_changes
    assert plan.create_policy


def test_an_smtp_port_behind_an_http_listener_is_skipped() -> None:
    # Given port 25 reached by a TCP listener AND an HTTP listener (a header would break HTTP)
    mixed = classic(listeners=(SMTP, ClassicListener(8025, "HTTP", 25, "HTTP")))
    plan = plan_classic(mixed, DEFAULT)
    assert not plan.has_changes
    assert plan.skipped == ("instance port 25: a non-TCP/SSL listener forwards to it",)


def test_ssl_listeners_count_and_instance_protocol_decides() -> None:
    ssl = classic(listeners=(ClassicListener(465, "SSL", 25, "TCP"),))
    assert [b.instance_port for b in plan_classic(ssl, DEFAULT).attach] == [25]


def test_a_listener_on_an_smtp_port_makes_its_instance_port_smtp() -> None:
    # Given a TCP listener on 25 forwarding to instance port 2525 (Postfix listens there)
    relay = classic(listeners=(ClassicListener(25, "TCP", 2525, "TCP"), SSH, WEB))
    # When planned with the default SMTP ports (25)
    plan = plan_classic(relay, DEFAULT)
    # Then the policy goes on instance port 2525, as an NLB listener on 25 makes its target group SMTP
    assert plan.eligible_ports == (2525,)
    assert [(b.instance_port, b.policy_names) for b in plan.attach] == [(2525, (PROXY_POLICY_NAME,))]
    # And an HTTP listener on 25 in front of it still keeps the header away
    mixed = classic(listeners=(ClassicListener(25, "HTTP", 8025, "HTTP"),))
    skipped = plan_classic(mixed, DEFAULT)
    assert not skipped.has_changes
    assert skipped.skipped == ("instance port 8025: a non-TCP/SSL listener forwards to it",)


def test_a_classic_lb_without_smtp_port_is_left_alone() -> None:
    plan = plan_classic(classic(listeners=(SSH, WEB)), DEFAULT)
    assert not plan.has_changes
    assert plan.eligible_ports == ()


def test_an_opted_out_classic_lb_is_out_of_scope() -> None:
    plan = plan_classic(classic(tags={"proxymx:opt-out": "true"}), DEFAULT)
    assert plan.out_of_scope == "opted out by tag proxymx:opt-out=true"
    assert not plan.has_changes


def test_the_plan_describes_itself_for_a_dry_run() -> None:
    steps = plan_classic(classic(backend={25: ("auth",)}), DEFAULT).describe()
    assert steps == [
        f"create policy {PROXY_POLICY_NAME} (ProxyProtocolPolicyType, ProxyProtocol=true) on mx",
        f"set backend policies of mx instance port 25 to ['auth', '{PROXY_POLICY_NAME}']",
    ]


# ----- NLB target groups -------------------------------------------------------------------------


def tg(name: str, protocol: str | None = "TCP", port: int | None = 25, **kw: object) -> TargetGroupState:
    return TargetGroupState(arn=f"arn:tg/{name}", name=name, protocol=protocol, port=port, **kw)  # type: ignore[arg-type]


def test_tcp_and_tls_target_groups_on_smtp_ports_are_enabled() -> None:
    groups = [tg("tcp", proxy_protocol_v2=False), tg("tls", "TLS", proxy_protocol_v2=False)]
    assert plan_target_groups(groups, DEFAULT).enable == ("arn:tg/tcp", "arn:tg/tls")


def test_a_listener_port_makes_a_target_group_smtp() -> None:
    # Given a target group on 2525 behind a listener on 25
    group = tg("alt", port=2525, listener_ports=(25,), proxy_protocol_v2=False)
    assert plan_target_groups([group], DEFAULT).enable == ("arn:tg/alt",)
    assert plan_target_groups([tg("other", port=2525)], DEFAULT).enable == ()


def test_http_udp_and_non_smtp_target_groups_are_skipped_and_not_read() -> None:
    groups = [tg("web", "HTTP", 80), tg("dns", "UDP", 25), tg("ssh", "TCP", 22)]
    assert target_group_candidates(groups, DEFAULT) == []
    plan = plan_target_groups(groups, DEFAULT)
    assert not plan.has_changes
    assert len(plan.skipped) == 3
    assert plan.out_of_scope == ()


def test_an_enabled_target_group_is_compliant() -> None:
    plan = plan_target_groups([tg("tcp", proxy_protocol_v2=True)], DEFAULT)
    assert plan.compliant == ("arn:tg/tcp",)
    assert not plan.has_changes


def test_opt_out_on_the_target_group_or_its_load_balancer_excludes_it() -> None:
    on_group = tg("a", tags={"proxymx:opt-out": "1"}, proxy_protocol_v2=False)
    on_lb = tg("b", load_balancer_tags=({"proxymx:opt-out": "1"},), proxy_protocol_v2=False)
    plan = plan_target_groups([on_group, on_lb], DEFAULT)
    assert plan.enable == ()
    assert plan.out_of_scope == (
        "target group a: opted out by tag proxymx:opt-out=1",
        "target group b: opted out by tag proxymx:opt-out=1",
    )


def test_the_required_tag_may_sit_on_the_target_group_or_its_load_balancer() -> None:
    required = settings(REQUIRED_TAG="role=mx")
    groups = [
        tg("own", tags={"role": "mx"}, proxy_protocol_v2=False),
        tg("lb", load_balancer_tags=({"role": "mx"},), proxy_protocol_v2=False),
        tg("none", proxy_protocol_v2=False),
    ]
    plan = plan_target_groups(groups, required)
    assert plan.enable == ("arn:tg/own", "arn:tg/lb")
    assert plan.skipped == ("target group none: lacks the required tag role=mx",)


# ----- the pause tag (issue 7.5) -----------------------------------------------------------------


def test_pause_tag_in_the_future_pauses_and_in_the_past_does_not() -> None:
    from datetime import UTC, datetime

    from proxymx.loadbalancer.plan import PAUSE_TAG_KEY, pause_reason

    now = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)
    paused = pause_reason([{}, {PAUSE_TAG_KEY: "2026-11-30T22:00:00Z"}], now)
    assert paused == f"paused by tag {PAUSE_TAG_KEY} until 2026-11-30T22:00:00+00:00"
    assert pause_reason([{PAUSE_TAG_KEY: "2026-11-30T20:59:59Z"}], now) is None
    assert pause_reason([{}], now) is None


def test_an_unreadable_pause_tag_pauses_and_says_so() -> None:
    from datetime import UTC, datetime

    from proxymx.loadbalancer.plan import PAUSE_TAG_KEY, pause_reason

    reason = pause_reason([{PAUSE_TAG_KEY: "tomorrow"}], datetime(2026, 11, 30, tzinfo=UTC))
    assert reason is not None and "unreadable" in reason and "'tomorrow'" in reason


# ----- what mutation testing found unpinned (make mutation) --------------------------------------


def test_the_names_aws_and_existing_load_balancers_know_are_pinned() -> None:
    # Given the constants other systems read: the policy name already on deployed Classic ELBs,
    # the NLB attribute AWS defines, the operator's pause tag (docs) / Then they are these literals
    from proxymx.loadbalancer.plan import PAUSE_TAG_KEY, PROXY_POLICY_TYPE, PROXY_PROTOCOL_V2

    assert PROXY_POLICY_NAME == "proxymx-ProxyProtocol"
    assert PROXY_POLICY_TYPE == "ProxyProtocolPolicyType"
    assert PROXY_PROTOCOL_V2 == "proxy_protocol_v2.enabled"
    assert PAUSE_TAG_KEY == "proxymx:pause-until"


def test_an_ssl_backend_gets_the_policy_like_a_tcp_one() -> None:
    # Given an SMTPS listener whose instance protocol is SSL (TLS to the instance)
    ssl = classic(listeners=(ClassicListener(465, "SSL", 465, "SSL"),))
    # When planned with port 465 as an SMTP port / Then the instance port gets the policy
    plan = plan_classic(ssl, settings(SMTP_PORTS="25,465"))
    assert [b.instance_port for b in plan.attach] == [465]


def test_a_pause_without_offset_is_utc_and_ends_exactly_at_its_time() -> None:
    from datetime import UTC, datetime

    from proxymx.loadbalancer.plan import PAUSE_TAG_KEY, pause_reason

    now = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)
    # Given a pause tag without offset (read as UTC), one minute ahead / Then it pauses
    assert pause_reason([{PAUSE_TAG_KEY: "2026-11-30T21:01:00"}], now) is not None
    # And a pause that ends exactly now no longer pauses
    assert pause_reason([{PAUSE_TAG_KEY: "2026-11-30T21:00:00Z"}], now) is None


def test_a_plan_has_changes_with_either_part_alone() -> None:
    from proxymx.loadbalancer.plan import BackendPolicies, ClassicPlan, TargetGroupPlan

    # A Classic plan that only creates the policy, or only attaches it, has changes
    assert ClassicPlan("mx", PROXY_POLICY_NAME, create_policy=True).has_changes
    assert ClassicPlan("mx", PROXY_POLICY_NAME, attach=(BackendPolicies(25, ()),)).has_changes
    assert not ClassicPlan("mx", PROXY_POLICY_NAME).has_changes
    # A target group plan that only enables, or only repairs a broken placement, has changes
    assert TargetGroupPlan(enable=("arn:tg",)).has_changes
    assert TargetGroupPlan(broken=("arn:tg",)).has_changes
    assert not TargetGroupPlan().has_changes
    # And a target group with no planned attributes gets the header switched on, nothing else
    assert TargetGroupPlan().attributes_for("arn:tg") == (("proxy_protocol_v2.enabled", "true"),)


def test_each_header_decision_lands_in_its_own_part_of_the_plan() -> None:
    from dataclasses import replace

    from proxymx.loadbalancer.nlbheader import HeaderAttributes

    def tg(name: str, header: HeaderAttributes) -> TargetGroupState:
        state = TargetGroupState(f"arn:{name}", name, "TCP", 25, listener_protocols=("TCP",))
        return replace(state, header=header, proxy_protocol_v2=header.enabled)

    # Given four NLB target groups on port 25 whose header attributes were read
    groups = [
        tg("on", HeaderAttributes(True, "on_first_ack", False, "ip")),
        tg("off", HeaderAttributes(False, "on_first_ack_with_payload", False, "ip")),
        tg("deadlock", HeaderAttributes(True, "on_first_ack_with_payload", False, "ip")),
        tg("preserved", HeaderAttributes(False, "on_first_ack_with_payload", True, "instance")),
    ]
    # When planned
    plan = plan_target_groups(groups, DEFAULT)
    # Then each is in the part its decision names, and only the writes it needs are planned
    assert plan.compliant == ("arn:on",)
    assert plan.enable == ("arn:off",)
    assert plan.broken == ("arn:deadlock",)
    assert plan.preserved == ("arn:preserved",)
    assert set(plan.writes) == {"arn:off", "arn:deadlock"}


def test_an_opted_out_or_ineligible_target_group_is_no_candidate_for_reading() -> None:
    good = TargetGroupState("arn:good", "good", "TCP", 25)
    http = TargetGroupState("arn:http", "http", "HTTP", 25)
    opted_out = TargetGroupState("arn:out", "out", "TCP", 25, tags={"proxymx:opt-out": "true"})
    assert target_group_candidates([good, http, opted_out], DEFAULT) == [good]


def test_a_blocked_unit_names_five_targets_and_counts_the_rest() -> None:
    from proxymx.loadbalancer.plan import Blocked
    from proxymx.loadbalancer.readiness import Requirement
    from proxymx.loadbalancer.targets import Unready

    unready = tuple(Unready(f"i-{n}", "no tag", in_fleet=n % 2 == 0) for n in range(7))
    blocked = Blocked("classic/mx", Requirement((25,), "v1"), unready)
    # Then the description shows the first five, then "+2 more"
    text = blocked.describe()
    assert text.startswith(
        "classic/mx: 7 target(s) not ready for PROXY v1 on ports 25: i-0 (no tag; fleet), "
    )
    assert "i-4 (no tag; fleet) (+2 more)" in text
    assert "i-5" not in text
    # And six shows five and "+1 more"; exactly five is shown whole, without a count
    assert (
        Blocked("classic/mx", Requirement((25,), "v1"), unready[:6])
        .describe()
        .endswith("i-4 (no tag; fleet) (+1 more)")
    )
    assert (
        Blocked("classic/mx", Requirement((25,), "v1"), unready[:5])
        .describe()
        .endswith("i-4 (no tag; fleet)")
    )
    # And the targets outside the fleet are the odd ones
    assert [u.target_id for u in blocked.outside_fleet] == ["i-1", "i-3", "i-5"]
