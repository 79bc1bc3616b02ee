"""EnableProxyProtocol on the embedded AWS (moto): every behaviour of issue 2.

The world each event presumes is seeded with proxymx_tools.seed (the same seeding
``proxymx invoke`` uses); every AWS call the function makes is recorded, in order. Settings and
clients are injected into the domain call and the handler.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from proxymx.aws import Clients
from proxymx.config import Settings, load_settings
from proxymx.errors import MalformedEvent, NotReadyYet, PermanentAwsError, VerificationFailed
from proxymx.loadbalancer.plan import PROXY_POLICY_NAME
from proxymx.loadbalancer.service import ProxyProtocolResult, enable_proxy_protocol
from proxymx.models.cloudtrail import parse_elb_event
from proxymx_tools.recorder import CallRecorder
from proxymx_tools.runner import reset_powertools_logger
from proxymx_tools.seed import seed_world
from support import (
    EVENTS_DIR,
    emf_metrics,
    lambda_context,
    load_app,
    load_event,
    only_granted_by,
    role_actions,
    role_statements,
    statement_actions,
)

SELF_ROLE = "arn:aws:iam::123456789012:role/proxymx-EnableProxyProtocolFunctionRole"
DEFAULT = load_settings({"SELF_ROLE_ARNS": SELF_ROLE})


class World:
    """The seeded embedded AWS, read back with plain boto3 (not recorded)."""

    def __init__(self) -> None:
        import boto3

        self.elb = boto3.client("elb", region_name="us-east-1")
        self.elbv2 = boto3.client("elbv2", region_name="us-east-1")

    def backend_policies(self, name: str) -> dict[int, list[str]]:
        lb = self.elb.describe_load_balancers(LoadBalancerNames=[name])["LoadBalancerDescriptions"][0]
        return {b["InstancePort"]: b["PolicyNames"] for b in lb.get("BackendServerDescriptions", [])}

    def policy_names(self, name: str) -> list[str]:
        policies = self.elb.describe_load_balancer_policies(LoadBalancerName=name)["PolicyDescriptions"]
        return [p["PolicyName"] for p in policies]

    def proxy_v2(self, tg_arn: str) -> str:
        attributes = self.elbv2.describe_target_group_attributes(TargetGroupArn=tg_arn)["Attributes"]
        return {a["Key"]: a["Value"] for a in attributes}.get("proxy_protocol_v2.enabled", "false")

    def target_group_arn(self, name: str) -> str:
        return str(self.elbv2.describe_target_groups(Names=[name])["TargetGroups"][0]["TargetGroupArn"])

    def tag_classic(self, name: str, **tags: str) -> None:
        self.elb.add_tags(LoadBalancerNames=[name], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])

    def tag_v2(self, arn: str, **tags: str) -> None:
        self.elbv2.add_tags(ResourceArns=[arn], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


def seeded(name: str) -> tuple[dict[str, Any], World]:
    """Given the world ``events/<name>.json`` presumes; the event with the seeded ARNs."""
    event = seed_world(load_event(name))
    return event, World()


def handle(
    event: dict[str, Any],
    config: Settings = DEFAULT,
    sleep: Callable[[float], Any] | None = None,
    clients: Clients | None = None,
) -> ProxyProtocolResult:
    """The domain call, on fresh clients of the embedded AWS unless the test brings its own."""
    return enable_proxy_protocol(
        parse_elb_event(event), config, clients or Clients(), sleep=sleep or (lambda _s: None)
    )


def ops(recorder: CallRecorder) -> list[str]:
    return [f"{c.service}.{c.operation}" for c in recorder.calls]


CLASSIC_READS = ["elb.describe_load_balancers", "elb.describe_tags"]
CLASSIC_VERIFY = ["elb.describe_load_balancers", "elb.describe_load_balancer_policies"]
# The interlock (issue 7.2) before a write turns the header on: the launches held by groups
# attached to the unit (no registered instance: no DescribeInstances).
CLASSIC_INTERLOCK = ["autoscaling.describe_auto_scaling_groups"]
TG_INTERLOCK = ["elbv2.describe_target_health", "autoscaling.describe_auto_scaling_groups"]


# ----- Classic ELB -----------------------------------------------------------------------------


def test_classic_create_enables_the_policy_on_the_smtp_port_only(calls: CallRecorder) -> None:
    # Given a new Classic ELB with SMTP (25) and HTTP (80 -> 8080) listeners
    event, world = seeded("elb-create-smtp")
    # When the creation event arrives
    result = handle(event)
    # Then the PROXY protocol policy exists and only instance port 25 has it
    assert result.outcome == "changed"
    assert PROXY_POLICY_NAME in world.policy_names("mx-inbound")
    assert world.backend_policies("mx-inbound") == {25: [PROXY_POLICY_NAME]}
    # And the calls are: read, create the policy, re-read the ports right before the write (issue 9:
    # the write replaces the port's list), attach it, read it back
    assert ops(calls) == [
        *CLASSIC_READS,
        *CLASSIC_INTERLOCK,
        "elb.create_load_balancer_policy",
        "elb.describe_load_balancers",
        "elb.set_load_balancer_policies_for_backend_server",
        *CLASSIC_VERIFY,
    ]
    (create,) = calls.of("create_load_balancer_policy")
    assert create["PolicyTypeName"] == "ProxyProtocolPolicyType"
    assert create["PolicyAttributes"] == [{"AttributeName": "ProxyProtocol", "AttributeValue": "true"}]
    assert calls.of("set_load_balancer_policies_for_backend_server") == [
        {
            "LoadBalancerName": "mx-inbound",
            "InstancePort": 25,
            "PolicyNames": [PROXY_POLICY_NAME],
        }
    ]


def test_classic_compliant_load_balancer_gets_reads_only(calls: CallRecorder) -> None:
    # Given a load balancer already configured by a first event
    event, _world = seeded("elb-create-smtp")
    handle(event)
    calls.calls.clear()
    # When the same event is delivered again (EventBridge delivers at least once)
    result = handle(event)
    # Then nothing is written
    assert result.outcome == "compliant"
    assert calls.writes == []
    assert ops(calls) == [*CLASSIC_READS, "elb.describe_load_balancer_policies"]


def test_detached_policy_is_put_back_merged_with_the_ports_other_policies(calls: CallRecorder) -> None:
    # Given someone set port 25's policies to [mx-backend-auth], dropping ours
    event, world = seeded("elb-drift-backend-detached")
    assert world.backend_policies("mx-inbound") == {25: ["mx-backend-auth"]}
    # When the drift event arrives
    result = handle(event)
    # Then ours is back AND theirs is kept (SetLoadBalancerPoliciesForBackendServer replaces the list)
    assert result.outcome == "changed"
    assert result.drift_repaired
    assert result.actor is not None and result.actor.endswith("/bob@example.com")
    assert world.backend_policies("mx-inbound") == {25: ["mx-backend-auth", PROXY_POLICY_NAME]}
    # And the existing policy was reused: no create call
    assert [c.operation for c in calls.writes] == ["set_load_balancer_policies_for_backend_server"]


def test_deleted_policy_is_recreated_and_reattached(calls: CallRecorder) -> None:
    event, world = seeded("elb-drift-policy-deleted")
    result = handle(event)
    assert result.outcome == "changed"
    assert result.drift_repaired
    assert PROXY_POLICY_NAME in world.policy_names("mx-inbound")
    assert world.backend_policies("mx-inbound")[25] == [PROXY_POLICY_NAME]
    assert [c.operation for c in calls.writes] == [
        "create_load_balancer_policy",
        "set_load_balancer_policies_for_backend_server",
    ]


def test_a_listener_on_25_in_front_of_another_instance_port(calls: CallRecorder) -> None:
    # Given a new Classic ELB whose TCP listener on 25 forwards to instance port 2525
    event = load_event("elb-create-smtp")
    event["detail"]["requestParameters"]["listeners"][0]["instancePort"] = 2525
    event = seed_world(event)
    world = World()
    # When the creation event arrives (SMTP_PORTS=25, the default)
    result = handle(event)
    # Then instance port 2525 speaks the PROXY protocol, and the HTTP backend 8080 is untouched
    assert result.outcome == "changed"
    assert world.backend_policies("mx-inbound") == {2525: [PROXY_POLICY_NAME]}


def test_new_smtp_listener_on_an_existing_load_balancer(calls: CallRecorder) -> None:
    event, world = seeded("elb-create-listeners")
    assert handle(event).outcome == "changed"
    assert world.backend_policies("mx-legacy") == {25: [PROXY_POLICY_NAME]}


def test_duplicate_policy_name_means_the_policy_is_already_there(calls: CallRecorder) -> None:
    # Given create_load_balancer_policy answers DuplicatePolicyName (a concurrent run made it)
    from botocore.exceptions import ClientError

    event, world = seeded("elb-create-smtp")
    clients = Clients()
    client = clients.elb
    world.elb.create_load_balancer_policy(
        LoadBalancerName="mx-inbound",
        PolicyName=PROXY_POLICY_NAME,
        PolicyTypeName="ProxyProtocolPolicyType",
        PolicyAttributes=[{"AttributeName": "ProxyProtocol", "AttributeValue": "true"}],
    )
    real_describe = client.describe_load_balancers

    def stale_describe(**kwargs: Any) -> Any:
        # the first read does not see the policy yet
        response = real_describe(**kwargs)
        if len(calls.calls) <= 2:
            response["LoadBalancerDescriptions"][0]["Policies"]["OtherPolicies"] = []
        return response

    def duplicate(**_kwargs: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "DuplicatePolicyName", "Message": "exists"}}, "CreateLoadBalancerPolicy"
        )

    client.describe_load_balancers = stale_describe
    client.create_load_balancer_policy = duplicate
    # When handled / Then it goes on and attaches the policy
    assert handle(event, clients=clients).outcome == "changed"
    assert world.backend_policies("mx-inbound") == {25: [PROXY_POLICY_NAME]}


# ----- scope ------------------------------------------------------------------------------------


def test_opt_out_tag_means_no_write(calls: CallRecorder) -> None:
    event, world = seeded("elb-create-smtp")
    world.tag_classic("mx-inbound", **{"proxymx:opt-out": "true"})
    result = handle(event)
    assert result.outcome == "ignored"
    assert result.reason == "opted out by tag proxymx:opt-out=true"
    assert calls.writes == []
    assert world.backend_policies("mx-inbound") == {}


def test_required_tag_narrows_scope(calls: CallRecorder) -> None:
    event, world = seeded("elb-create-smtp")
    required = load_settings({"REQUIRED_TAG": "proxymx:scope=mx"})
    # Without the tag: out of scope, no write
    assert handle(event, required).outcome == "ignored"
    assert calls.writes == []
    # With it: in scope
    world.tag_classic("mx-inbound", **{"proxymx:scope": "mx"})
    assert handle(event, required).outcome == "changed"
    assert world.backend_policies("mx-inbound") == {25: [PROXY_POLICY_NAME]}


def test_opt_out_on_an_nlb_target_group(calls: CallRecorder) -> None:
    event, world = seeded("nlb-create-target-group")
    arn = world.target_group_arn("mx-smtp-25")
    world.tag_v2(arn, **{"proxymx:opt-out": "yes"})
    result = handle(event)
    assert result.outcome == "ignored"
    assert calls.writes == []
    assert world.proxy_v2(arn) == "false"


def test_smtp_ports_are_a_parameter(calls: CallRecorder) -> None:
    # Given SMTP_PORTS=587 only / When the port-25 load balancer is created / Then it is not touched
    event, _world = seeded("elb-create-smtp")
    result = handle(event, load_settings({"SMTP_PORTS": "587"}))
    assert result.outcome == "compliant"
    assert calls.writes == []


# ----- dry run, verification, eventual consistency ------------------------------------------


@pytest.mark.parametrize("name", ["elb-create-smtp", "nlb-create-target-group", "nlb-drift-proxy-disabled"])
def test_dry_run_plans_and_writes_nothing(calls: CallRecorder, name: str) -> None:
    event, _world = seeded(name)
    result = handle(event, load_settings({"DRY_RUN": "true"}))
    assert result.outcome == "changed"
    assert result.dry_run
    assert result.changes  # the plan, for the log
    assert calls.writes == []


def test_verification_failure_when_the_change_does_not_take(calls: CallRecorder) -> None:
    # Given SetLoadBalancerPoliciesForBackendServer "succeeds" without effect
    event, _world = seeded("elb-create-smtp")
    clients = Clients()
    client = clients.elb

    def swallow(model: Any, **_: Any) -> Any:
        if model.name == "SetLoadBalancerPoliciesForBackendServer":
            return SimpleNamespace(status_code=200, headers={}), {}
        return None

    client.meta.events.register("before-call", swallow)
    # When handled / Then reading it back fails loudly
    with pytest.raises(VerificationFailed, match="instance port 25"):
        handle(event, clients=clients)


def test_not_found_right_after_creation_is_retried_with_bounded_backoff_then_fails(
    calls: CallRecorder,
) -> None:
    # Given a creation event for a load balancer that is not readable (yet)
    event = load_event("elb-create-smtp")
    naps: list[float] = []
    # When handled / Then it retries along the backoff and gives up with NotReadyYet (-> async retry, DLQ)
    with pytest.raises(NotReadyYet, match="LoadBalancerNotFound after 5 attempts"):
        handle(event, sleep=naps.append)
    assert naps == [1.0, 2.0, 4.0, 8.0]
    assert ops(calls) == ["elb.describe_load_balancers"] * 5
    assert calls.writes == []


def test_not_found_then_readable_goes_on(calls: CallRecorder) -> None:
    event = load_event("elb-create-smtp")
    naps: list[float] = []

    def appear(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            seed_world(event)

    result = handle(event, sleep=appear)
    assert result.outcome == "changed"
    assert naps == [1.0, 2.0]


def test_a_target_group_not_readable_yet_is_retried_too(calls: CallRecorder) -> None:
    event = load_event("nlb-create-target-group")
    naps: list[float] = []
    with pytest.raises(NotReadyYet, match="TargetGroupNotFound"):
        handle(event, sleep=naps.append)
    assert len(naps) == 4


# ----- NLB --------------------------------------------------------------------------------------


def test_new_nlb_without_target_groups_is_a_clean_no_op(calls: CallRecorder) -> None:
    event, _world = seeded("nlb-create")
    result = handle(event)
    assert result.outcome == "compliant"
    assert ops(calls) == ["elbv2.describe_load_balancers", "elbv2.describe_target_groups"]


def test_tcp_target_group_on_port_25_gets_proxy_protocol_v2(calls: CallRecorder) -> None:
    # Given an ip target group (the address is hidden) with the default header placement
    event, world = seeded("nlb-create-target-group")
    arn = world.target_group_arn("mx-smtp-25")
    result = handle(event)
    assert result.outcome == "changed"
    assert world.proxy_v2(arn) == "true"
    assert ops(calls) == [
        "elbv2.describe_target_groups",
        "elbv2.describe_tags",
        "elbv2.describe_target_group_attributes",
        *TG_INTERLOCK,
        "elbv2.modify_target_group_attributes",
        "elbv2.describe_target_group_attributes",
    ]
    # Then ONE call sets the header AND the placement SMTP needs (issue 8: never the deadlock)
    assert calls.writes[0].params == {
        "TargetGroupArn": arn,
        "Attributes": [
            {"Key": "proxy_protocol_v2.enabled", "Value": "true"},
            {"Key": "proxy_protocol_v2.client_to_server.header_placement", "Value": "on_first_ack"},
        ],
    }


def test_create_listener_enables_the_target_group_it_forwards_to(calls: CallRecorder) -> None:
    event, world = seeded("nlb-create-listener")
    result = handle(event)
    assert result.outcome == "changed"
    assert world.proxy_v2(world.target_group_arn("mx-smtp-25")) == "true"


def test_listener_port_25_in_front_of_a_target_group_on_another_port(calls: CallRecorder) -> None:
    # Given an NLB whose listener 25 forwards to a target group on port 2525
    event, world = seeded("nlb-create")
    lb_arn = event["detail"]["responseElements"]["loadBalancers"][0]["loadBalancerArn"]
    vpc = world.elbv2.describe_load_balancers(LoadBalancerArns=[lb_arn])["LoadBalancers"][0]["VpcId"]
    tg = world.elbv2.create_target_group(Name="alt", Protocol="TCP", Port=2525, VpcId=vpc, TargetType="ip")[
        "TargetGroups"
    ][0]
    world.elbv2.create_listener(
        LoadBalancerArn=lb_arn,
        Protocol="TCP",
        Port=25,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
    )
    # When the load balancer is reconciled / Then that target group is enabled
    assert handle(event).outcome == "changed"
    assert world.proxy_v2(tg["TargetGroupArn"]) == "true"


def test_tags_of_many_target_groups_are_read_20_arns_per_call(calls: CallRecorder) -> None:
    # Given an NLB with 25 TCP target groups on port 25, each behind its own listener
    event, world = seeded("nlb-create")
    lb_arn = event["detail"]["responseElements"]["loadBalancers"][0]["loadBalancerArn"]
    vpc = world.elbv2.describe_load_balancers(LoadBalancerArns=[lb_arn])["LoadBalancers"][0]["VpcId"]
    groups = []
    for number in range(25):
        tg = world.elbv2.create_target_group(
            Name=f"smtp-{number}", Protocol="TCP", Port=25, VpcId=vpc, TargetType="ip"
        )
        groups.append(tg["TargetGroups"][0]["TargetGroupArn"])
        world.elbv2.create_listener(
            LoadBalancerArn=lb_arn,
            Protocol="TCP",
            Port=10000 + number,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": groups[-1]}],
        )
    # When the load balancer is reconciled
    result = handle(event)
    # Then DescribeTags got at most 20 ARNs per call (the API's limit), all 26 in all
    tag_calls = [c.params["ResourceArns"] for c in calls.calls if c.operation == "describe_tags"]
    assert [len(arns) for arns in tag_calls] == [20, 6]
    assert {arn for arns in tag_calls for arn in arns} == {*groups, lb_arn}
    # And every target group was enabled
    assert result.outcome == "changed"
    assert result.enabled_count == 25
    assert {world.proxy_v2(arn) for arn in groups} == {"true"}


def test_nlb_verification_failure_when_the_change_does_not_take(calls: CallRecorder) -> None:
    # Given ModifyTargetGroupAttributes "succeeds" without effect
    event, world = seeded("nlb-create-target-group")
    clients = Clients()
    client = clients.elbv2

    def swallow(model: Any, **_: Any) -> Any:
        if model.name == "ModifyTargetGroupAttributes":
            return SimpleNamespace(status_code=200, headers={}), {}
        return None

    client.meta.events.register("before-call", swallow)
    # When handled / Then reading it back fails loudly, naming the target group
    with pytest.raises(VerificationFailed, match=r"proxy_protocol_v2\.enabled is not true"):
        handle(event, clients=clients)
    assert world.proxy_v2(world.target_group_arn("mx-smtp-25")) == "false"


def test_access_denied_fails_at_once_without_retry(calls: CallRecorder) -> None:
    # Given the role may not read the load balancer (a permanent error, unlike not-found)
    event, _world = seeded("elb-create-smtp")
    clients = Clients()
    client = clients.elb

    def deny(model: Any, **_: Any) -> Any:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, model.name)

    client.meta.events.register("before-call", deny)
    naps: list[float] = []
    # When handled / Then PermanentAwsError after one call: no backoff, no write
    with pytest.raises(PermanentAwsError, match="AccessDenied"):
        handle(event, sleep=naps.append, clients=clients)
    assert naps == []
    assert ops(calls) == ["elb.describe_load_balancers"]


def test_disabled_proxy_protocol_v2_is_put_back(calls: CallRecorder) -> None:
    event, world = seeded("nlb-drift-proxy-disabled")
    arn = world.target_group_arn("mx-smtp-25")
    assert world.proxy_v2(arn) == "false"
    result = handle(event)
    assert result.outcome == "changed"
    assert result.drift_repaired
    assert world.proxy_v2(arn) == "true"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("nlb-create-application-lb", "application load balancers do not support the PROXY protocol"),
        ("nlb-create-target-group-http", "target group protocol HTTP does not carry the PROXY protocol"),
        ("elb-own-change", "our own change (no remediation loop)"),
        ("elb-failed-call", "the API call failed (DuplicateLoadBalancerName): nothing changed"),
    ],
)
def test_ignored_events_make_no_aws_call(calls: CallRecorder, name: str, reason: str) -> None:
    event, _world = seeded(name)
    result = handle(event)
    assert (result.outcome, result.reason) == ("ignored", reason)
    assert calls.calls == []


def test_our_own_change_is_recognised_only_for_our_role(calls: CallRecorder) -> None:
    # Given our own event but a function whose SELF_ROLE_ARNS is another role
    event, _world = seeded("elb-own-change")
    result = handle(event, load_settings({"SELF_ROLE_ARNS": "arn:aws:iam::123456789012:role/other"}))
    # Then it is checked like anyone's change (and found compliant: our policy is on port 25)
    assert result.outcome == "compliant"
    assert calls.writes == []


# ----- the handler ------------------------------------------------------------------------------


@pytest.fixture
def app(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, Any]]:
    """The handler, run as Lambda does (decorators included), with settings and clients injected.
    Only Powertools' own variables are in the environment."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "proxymx")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Proxymx")

    def run(
        event: dict[str, Any], config: Settings = DEFAULT, clients: Clients | None = None
    ) -> dict[str, Any]:
        # Imported in the test's body, as the runner does per invocation: Powertools binds the
        # "proxymx" logger to the stdout of that moment (capsys's), once unbound from another's.
        reset_powertools_logger("proxymx")
        module = load_app("enable_proxy_protocol")
        context = lambda_context("EnableProxyProtocolFunction")
        result: dict[str, Any] = module.lambda_handler(
            event, context, settings=config, clients=clients or Clients()
        )
        return result

    return run


def test_handler_returns_the_outcome_logs_with_the_event_id_and_emits_metrics(
    calls: CallRecorder, app: Callable[..., dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    event, _world = seeded("elb-drift-backend-detached")
    result = app(event)
    output = capsys.readouterr().out
    assert result["outcome"] == "changed"
    assert result["drift_repaired"] is True
    json.dumps(result)  # JSON-able for the async destination
    logs = [json.loads(line) for line in output.splitlines() if line.startswith('{"level"')]
    assert {log["correlation_id"] for log in logs} == {event["id"]}
    drift_log = next(log for log in logs if log["message"].startswith("drift repaired"))
    assert drift_log["actor"].endswith("/bob@example.com")
    assert emf_metrics(output) == {"ProxyProtocolEnabled": [1.0], "DriftRepaired": [1.0]}


def test_handler_rejects_a_malformed_event_before_any_aws_call(
    calls: CallRecorder, app: Callable[..., dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(MalformedEvent, match=r"detail\.requestParameters\.loadBalancerName: field required"):
        app(load_event("malformed-elb-missing-load-balancer-name"))
    assert calls.calls == []
    # Counted like a rejected event of any proxymx function (unexpected failures count Failures)
    assert emf_metrics(capsys.readouterr().out) == {"EventsRejected": [1.0]}


def test_handler_counts_an_unexpected_failure_and_raises_it(
    calls: CallRecorder, app: Callable[..., dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a load balancer the role may not read (a permanent error, translated by the adapter)
    event, _world = seeded("elb-create-smtp")
    clients = Clients()

    def deny(model: Any, **_: Any) -> Any:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, model.name)

    clients.elb.meta.events.register("before-call", deny)
    # When handled / Then it raises (Lambda retries, then the DLQ) and counts Failures only
    with pytest.raises(PermanentAwsError, match="AccessDenied"):
        app(event, clients=clients)
    assert emf_metrics(capsys.readouterr().out) == {"Failures": [1.0]}


def test_handler_counts_ignored_events(
    calls: CallRecorder, app: Callable[..., dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert app(load_event("nlb-create-application-lb"))["outcome"] == "ignored"
    assert emf_metrics(capsys.readouterr().out) == {"EventsIgnored": [1.0]}


def test_handler_dry_run_from_the_injected_settings(
    calls: CallRecorder, app: Callable[..., dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    event, world = seeded("elb-create-smtp")
    result = app(event, load_settings({"SELF_ROLE_ARNS": SELF_ROLE, "DRY_RUN": "true"}))
    assert (result["outcome"], result["dry_run"]) == ("changed", True)
    assert calls.writes == []
    assert world.backend_policies("mx-inbound") == {}
    assert emf_metrics(capsys.readouterr().out) == {"DryRunChangesPlanned": [2.0]}


# ----- IAM: what the function calls is what its role allows ------------------------------------


def _function_statements() -> list[dict[str, Any]]:
    return list(role_statements("EnableProxyProtocolFunction").values())


def test_every_call_the_function_makes_is_allowed_by_its_role_and_nothing_more() -> None:
    # Given every sample ELB event run through `proxymx invoke` (all code paths that call AWS)
    from proxymx_tools.runner import invoke_event

    called: set[str] = set()
    for path in sorted(EVENTS_DIR.glob("*.json")):
        event = json.loads(path.read_text())
        if event.get("source") != "aws.elasticloadbalancing":
            continue
        called.update(call.iam_action for call in invoke_event(event).aws_calls)
    # Then each is allowed by a statement with a Sid, and the role allows no action never called
    # (sns:Publish of a blocked notice needs a topic, which the samples do not set: the test of
    # the notice checks that one)
    assert all(s["Sid"] for s in _function_statements())
    # (the notices' NOTICE# items likewise: only with a topic)
    notices = only_granted_by("EnableProxyProtocolFunction", "PublishBlocked", "NoticesInStateTable")
    assert called == role_actions("EnableProxyProtocolFunction") - notices


def test_mutating_actions_are_scoped_to_arns_not_star() -> None:
    for statement in _function_statements():
        if statement["Effect"] != "Allow":
            continue
        mutating = [
            a for a in statement_actions(statement) if not a.split(":", 1)[1].startswith(("Describe", "Get"))
        ]
        if statement["Sid"] == "ReadKillSwitch":
            # The one read with a resource: the kill switch parameter, nothing else of SSM.
            assert statement_actions(statement) == {"ssm:GetParameter"}
            assert "${EnabledParameter}" in json.dumps(statement["Resource"])
        elif mutating:
            assert statement["Resource"] != "*", statement["Sid"]
            # The load balancer writes on load balancer ARNs; the blocked notice on our topic only;
            # the cutover (issue 7.3): its records in the StateTable, our document, fleet instances.
            wanted = {
                "PublishBlocked": "NotificationTopicArn",
                "CutoverState": "StateTable",
                "FlapGuardInStateTable": "StateTable",
                "NoticesInStateTable": "StateTable",
                # The refresh: its claims, our document, fleet instances (by tag condition).
                "RefreshClaimsInStateTable": "StateTable",
                "SendOurDocumentOnly": "document/${PostfixProxyProtocolDocument}",
                "SendToFleetInstancesOnly": "instance/*",
            }.get(statement["Sid"], "elasticloadbalancing")
            assert wanted in json.dumps(statement["Resource"])
            if statement["Sid"] == "SendToFleetInstancesOnly":
                assert statement["Condition"] == {
                    "StringEquals": {"ssm:resourceTag/proxymx:fleet": {"Ref": "FleetTagValue"}}
                }
        else:
            assert statement["Sid"] == "ReadLoadBalancers"


def test_classic_an_operators_policy_set_between_read_and_write_is_kept(calls: CallRecorder) -> None:
    # Given a new Classic ELB, and an operator who sets their own policy on port 25 while
    # EnableProxyProtocol runs: after its read, before its write (issue 9, finding 7)
    event, world = seeded("elb-create-smtp")
    world.elb.create_load_balancer_policy(
        LoadBalancerName="mx-inbound",
        PolicyName="mx-operator",
        PolicyTypeName="BackendServerAuthenticationPolicyType",
        PolicyAttributes=[{"AttributeName": "PublicKeyPolicyName", "AttributeValue": "k"}],
    )

    def operator_meanwhile(client: Any) -> None:
        def before_call(model: Any, **_: Any) -> None:
            if model.name == "CreateLoadBalancerPolicy":
                world.elb.set_load_balancer_policies_for_backend_server(
                    LoadBalancerName="mx-inbound", InstancePort=25, PolicyNames=["mx-operator"]
                )

        if client.meta.service_model.service_name == "elb":
            client.meta.events.register("before-call", before_call)

    # When the creation event is handled
    result = handle(event, clients=Clients(observers=[operator_meanwhile]))
    # Then both the operator's policy and ours are on the port
    assert result.outcome == "changed"
    assert world.backend_policies("mx-inbound") == {25: ["mx-operator", PROXY_POLICY_NAME]}
