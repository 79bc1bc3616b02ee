"""Reconcile on the embedded AWS: the scheduled sweep repairs what the events missed.

Load balancers are built with the seeders ``proxymx invoke`` uses; stuck instances with the
embedded AWS's launch extension (``launch_into_wait``), aged by moving their EC2 launch time
back (an instance is stuck only after ``STUCK_AFTER_SECONDS``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from proxymx import aws as aws_clients
from proxymx.aws import Clients
from proxymx.config import Settings, load_settings
from proxymx.errors import MalformedEvent
from proxymx.loadbalancer.plan import PROXY_POLICY_NAME
from proxymx.models.schedule import parse_scheduled_event
from proxymx.reconcile import STUCK_AFTER_SECONDS, ReconcileFailed, ReconcileSummary, reconcile
from proxymx_tools.embedded import CommandOutcome, EmbeddedAws
from proxymx_tools.recorder import CallRecorder
from proxymx_tools.seed import (
    SMTP_LISTENER,
    STATUS_LISTENER,
    _create_classic,
    _V2World,
    register_fleet_instances,
)
from proxymx_tools.seed_launch import ensure_group
from support import (
    DOCUMENT,
    GROUP,
    HOOK,
    emf_metrics,
    lambda_context,
    load_app,
    load_event,
    role_actions,
    role_statements,
    start_cutover,
)

ELB_WRITES = {
    "create_load_balancer_policy",
    "set_load_balancer_policies_for_backend_server",
    "modify_target_group_attributes",
}


Sweep = Callable[..., ReconcileSummary]
Handler = Callable[..., dict[str, Any]]


@pytest.fixture
def app(powertools: None, settings: Settings, clients: Clients) -> Handler:
    """The Reconcile handler, run as Lambda does, with the test's settings and clients injected."""
    module = load_app("reconcile")

    def run(event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = module.lambda_handler(
            event, lambda_context("ReconcileFunction"), settings=settings, clients=clients
        )
        return result

    return run


@pytest.fixture
def sweep(world: EmbeddedAws, settings: Settings, clients: Clients) -> Sweep:
    """The sweep's domain call on the sample Scheduled Event (``config=`` other settings)."""

    def run(config: Settings | None = None) -> ReconcileSummary:
        event = parse_scheduled_event(load_event("scheduled-reconcile"))
        return reconcile(event, config or settings, clients)

    return run


class Elb:
    """Builds and reads load balancers with plain boto3 (not recorded)."""

    def __init__(self) -> None:
        import boto3

        self.elb = boto3.client("elb", region_name="us-east-1")
        self.v2 = _V2World()

    def classic(self, name: str, *, compliant: bool = False, **tags: str) -> str:
        _create_classic(
            name, [SMTP_LISTENER, STATUS_LISTENER], [{"Key": k, "Value": v} for k, v in tags.items()]
        )
        if compliant:
            self.elb.create_load_balancer_policy(
                LoadBalancerName=name,
                PolicyName=PROXY_POLICY_NAME,
                PolicyTypeName="ProxyProtocolPolicyType",
                PolicyAttributes=[{"AttributeName": "ProxyProtocol", "AttributeValue": "true"}],
            )
            self.elb.set_load_balancer_policies_for_backend_server(
                LoadBalancerName=name, InstancePort=25, PolicyNames=[PROXY_POLICY_NAME]
            )
        return name

    def nlb(self, name: str, *, compliant: bool = False, **tags: str) -> tuple[str, str]:
        lb = self.v2.load_balancer(name)
        tg = self.v2.target_group(f"{name}-smtp", "TCP", 25)
        self.v2.listener(lb, "TCP", 25, tg)
        if compliant:
            # Compliant is the header on AND sent on the first ACK (issue 8: the default
            # placement with the header on is broken, and repaired).
            self.v2.elbv2.modify_target_group_attributes(
                TargetGroupArn=tg,
                Attributes=[
                    {"Key": "proxy_protocol_v2.enabled", "Value": "true"},
                    {"Key": "proxy_protocol_v2.client_to_server.header_placement", "Value": "on_first_ack"},
                ],
            )
        if tags:
            self.v2.elbv2.add_tags(ResourceArns=[lb], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        return lb, tg

    def backend_policies(self, name: str) -> dict[int, list[str]]:
        lb = self.elb.describe_load_balancers(LoadBalancerNames=[name])["LoadBalancerDescriptions"][0]
        return {b["InstancePort"]: b["PolicyNames"] for b in lb.get("BackendServerDescriptions", [])}

    def proxy_v2(self, tg_arn: str) -> str:
        attributes = self.v2.elbv2.describe_target_group_attributes(TargetGroupArn=tg_arn)["Attributes"]
        return {a["Key"]: a["Value"] for a in attributes}.get("proxy_protocol_v2.enabled", "false")


def writes_on(calls: CallRecorder, name: str) -> list[str]:
    return [c.operation for c in calls.writes if c.operation in ELB_WRITES and name in json.dumps(c.params)]


def stuck(world: EmbeddedAws, count: int = 1, group: str = GROUP, hook: str = HOOK) -> list[str]:
    """Instances held in Pending:Wait for longer than the sweep's threshold (their events lost)."""
    events = world.launch.launch_into_wait(group, hook, count)
    ids = [e["detail"]["EC2InstanceId"] for e in events]
    for instance_id in ids:
        instance = world.launch._ec2_backend().get_instance(instance_id)
        instance.launch_time -= timedelta(seconds=STUCK_AFTER_SECONDS + 60)
    return ids


# ----- load balancers ------------------------------------------------------------------------


def test_drifted_load_balancers_are_repaired_and_compliant_ones_only_read(
    calls: CallRecorder, sweep: Sweep
) -> None:
    # Given a drifted Classic ELB and NLB, and a compliant one of each
    elb = Elb()
    elb.classic("mx-drifted")
    elb.classic("mx-fine", compliant=True)
    _, drifted_tg = elb.nlb("nlb-drifted")
    _, fine_tg = elb.nlb("nlb-fine", compliant=True)
    # When the sweep runs
    summary = sweep()
    # Then the drifted ones speak the PROXY protocol again
    assert elb.backend_policies("mx-drifted") == {25: [PROXY_POLICY_NAME]}
    assert elb.proxy_v2(drifted_tg) == "true"
    # And the compliant ones got reads only
    assert writes_on(calls, "mx-fine") == []
    assert writes_on(calls, fine_tg) == []
    # And the summary says so
    assert (summary.checked, len(summary.changed), len(summary.failed)) == (4, 2, 0)
    assert [(c.kind, c.outcome) for c in summary.changed] == [("classic", "changed"), ("network", "changed")]
    assert summary.changed[0].load_balancer == "mx-drifted"
    assert "nlb-drifted" in summary.changed[1].load_balancer
    assert summary.outcome == "changed"
    assert all(c.reason == "drift repaired" for c in summary.changed)


def test_header_placement_refused_is_loud_in_the_sweep(
    world: EmbeddedAws, calls: CallRecorder, sweep: Sweep
) -> None:
    # Given, in an account AWS Support has not allowed on_first_ack, an NLB switched on by hand
    # (header on, default placement: SMTP hangs) and a new one that needs the header
    world.launch.refuse_header_placement()
    elb = Elb()
    _, hand_tg = elb.nlb("nlb-by-hand")
    elb.v2.elbv2.modify_target_group_attributes(
        TargetGroupArn=hand_tg, Attributes=[{"Key": "proxy_protocol_v2.enabled", "Value": "true"}]
    )
    _, new_tg = elb.nlb("nlb-new")
    # When the sweep runs
    summary = sweep()
    # Then the new one stays off (blocked), the hand-made one is reported broken
    assert elb.proxy_v2(new_tg) == "false"
    answer = summary.to_dict()
    assert answer["header_placement_blocked"] == [new_tg]
    assert answer["header_placement_broken"] == [hand_tg]
    assert "1 target group(s) blocked, 1 broken" in summary.describe()
    metrics = {m.name: m.value for m in summary.metrics()}
    assert (metrics["HeaderPlacementBlocked"], metrics["HeaderPlacementBroken"]) == (1, 1)


def test_scope_opt_out_and_required_tag_and_non_smtp_are_left_alone(
    calls: CallRecorder, sweep: Sweep
) -> None:
    # Given an opted-out Classic and NLB, an untagged one when a tag is required, and an HTTP-only ELB
    elb = Elb()
    elb.classic("mx-opted-out", **{"proxymx:opt-out": "true"})
    _, opted_tg = elb.nlb("nlb-opted-out", **{"proxymx:opt-out": "yes"})
    elb.classic("mx-tagged", team="mx")
    elb.classic("mx-untagged")
    _create_classic("web-only", [STATUS_LISTENER], [{"Key": "team", "Value": "mx"}])
    # When the sweep runs with RequiredTag=team=mx
    summary = sweep(load_settings({"DOCUMENT_NAME": DOCUMENT, "REQUIRED_TAG": "team=mx"}))
    # Then only the tagged SMTP load balancer changed
    assert [c.load_balancer for c in summary.changed] == ["mx-tagged"]
    for untouched in ("mx-opted-out", "mx-untagged", "web-only", opted_tg):
        assert writes_on(calls, untouched) == []
    outcomes = {c.load_balancer: c.outcome for c in summary.load_balancers}
    assert outcomes["mx-opted-out"] == "ignored"
    assert outcomes["mx-untagged"] == "ignored"
    assert outcomes["web-only"] == "compliant"


def test_dry_run_writes_nothing_and_reports_the_plan(calls: CallRecorder, sweep: Sweep) -> None:
    # Given drifted load balancers
    elb = Elb()
    elb.classic("mx-drifted")
    _, tg = elb.nlb("nlb-drifted")
    # When the sweep runs in dry run
    summary = sweep(load_settings({"DOCUMENT_NAME": DOCUMENT, "DRY_RUN": "true"}))
    # Then nothing was written, and the plan is reported as changes
    assert [c.operation for c in calls.writes] == []
    assert elb.backend_policies("mx-drifted") == {}
    assert elb.proxy_v2(tg) == "false"
    assert len(summary.changed) == 2
    assert summary.to_dict()["dry_run"] is True
    metrics = {m.name: m.value for m in summary.metrics()}
    assert metrics["DryRunChangesPlanned"] == 3  # policy + attach + target group
    assert "ProxyProtocolEnabled" not in metrics


def _fail_describe_tags_of(name: str) -> Any:
    """An AccessDenied on DescribeTags for one load balancer (a broken one among good ones)."""

    def observe(client: Any) -> None:
        if client.meta.service_model.service_name != "elb":
            return

        def before_call(model: Any, params: dict[str, Any], **_: Any) -> Any:
            body = params.get("body") or {}
            if model.name == "DescribeTags" and name in json.dumps(body):
                from botocore.awsrequest import AWSResponse

                error = {"Error": {"Code": "AccessDenied", "Message": f"not allowed on {name}"}}
                return AWSResponse("https://elb", 403, {}, None), {
                    **error,
                    "ResponseMetadata": {"HTTPStatusCode": 403},
                }
            return None

        client.meta.events.register("before-call.elastic-load-balancing.DescribeTags", before_call)

    return observe


def test_a_failing_load_balancer_does_not_stop_the_sweep_which_fails_at_the_end(
    world: EmbeddedAws,
    app: Handler,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a broken Classic ELB listed between two drifted ones (alphabetical order) and a stuck instance
    elb = Elb()
    for name in ("mx-a", "mx-b-broken", "mx-c"):
        elb.classic(name)
    _, tg = elb.nlb("nlb-drifted")
    (instance,) = stuck(world)
    observer = _fail_describe_tags_of("mx-b-broken")
    aws_clients.add_client_observer(observer)
    try:
        # When the scheduled sweep runs
        with pytest.raises(ReconcileFailed) as failed:
            app(load_event("scheduled-reconcile"))
    finally:
        aws_clients.remove_client_observer(observer)
    # Then every other load balancer was repaired and the stuck instance re-driven
    assert elb.backend_policies("mx-a") == {25: [PROXY_POLICY_NAME]}
    assert elb.backend_policies("mx-c") == {25: [PROXY_POLICY_NAME]}
    assert elb.proxy_v2(tg) == "true"
    assert failed.value.summary.redriven == [instance]
    # And the invocation failed at the end, naming the broken one
    assert "mx-b-broken" in str(failed.value)
    assert "AccessDenied" in str(failed.value)
    # And the summary was logged and the metrics emitted before the failure
    (logged,) = [r for r in caplog.records if hasattr(r, "summary")]
    assert logged.levelname == "ERROR"
    assert logged.summary["load_balancers_failed"] == 1
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics["ReconcileLoadBalancersChanged"] == [3.0]
    assert metrics["ReconcileLoadBalancersFailed"] == [1.0]
    assert metrics["ReconcileInstancesRedriven"] == [1.0]


def test_handler_sample_event_returns_the_summary(world: EmbeddedAws, app: Handler) -> None:
    # Given one drifted Classic ELB
    Elb().classic("mx-drifted")
    # When the sample Scheduled Event reaches the handler
    result = app(load_event("scheduled-reconcile"))
    # Then it answers the summary
    assert result["outcome"] == "changed"
    assert (result["load_balancers_checked"], result["load_balancers_changed"]) == (1, 1)
    assert result["failures"] == []
    # And a second sweep finds nothing to do
    again = app(load_event("scheduled-reconcile"))
    assert (again["outcome"], again["load_balancers_changed"]) == ("compliant", 0)


def test_handler_rejects_an_event_that_is_not_a_schedule(
    world: EmbeddedAws, app: Handler, calls: CallRecorder, capsys: pytest.CaptureFixture[str]
) -> None:
    event = load_event("scheduled-reconcile")
    event["detail-type"] = "AWS API Call via CloudTrail"
    with pytest.raises(MalformedEvent, match="detail-type"):
        app(event)
    assert calls.calls == []
    # A rejected event counts as in every function (a sweep that failed counts ReconcileFailures)
    assert emf_metrics(capsys.readouterr().out) == {"EventsRejected": [1.0]}


# ----- instances stuck in Pending:Wait ---------------------------------------------------------


def test_a_stuck_instance_with_no_command_is_redriven_and_one_with_a_command_in_flight_is_not(
    world: EmbeddedAws, calls: CallRecorder, sweep: Sweep, clients: Clients
) -> None:
    # Given two instances stuck in Pending:Wait; one has a command of our document in progress
    lost, busy = stuck(world, 2)
    world.launch.script_outcome(CommandOutcome("InProgress", "", "", -1), busy)
    in_flight = clients.ssm.send_command(InstanceIds=[busy], DocumentName=DOCUMENT)
    world.launch.drain_status_events()
    calls.calls.clear()
    # When the sweep runs
    summary = sweep()
    # Then only the one with no command is re-driven, with our document, after a heartbeat
    assert summary.redriven == [lost]
    (sent,) = [c.params for c in calls.calls if c.operation == "send_command"]
    assert sent["InstanceIds"] == [lost]
    assert sent["DocumentName"] == DOCUMENT
    assert sent["Comment"] == f'proxymx:["{GROUP}","{HOOK}"]'
    assert world.launch.actions[lost].heartbeats == 1
    # And the busy one is reported as skipped with its command
    (skipped,) = summary.skipped_instances
    assert skipped.instance_id == busy
    assert in_flight["Command"]["CommandId"] in skipped.reason
    # And CheckOutcome gets the status event of the new command as usual
    (status_event,) = world.launch.drain_status_events()
    assert status_event["detail"]["instance-id"] == lost


def test_recent_launches_other_hooks_and_untagged_groups_are_not_redriven(
    world: EmbeddedAws, calls: CallRecorder, sweep: Sweep
) -> None:
    # Given a fresh launch in our group (its event is on its way), a stuck instance of a group
    # waiting for another team's hook, and one of a group without the fleet tag
    (fresh,) = [e["detail"]["EC2InstanceId"] for e in world.launch.launch_into_wait(GROUP, HOOK, 1)]
    ensure_group("other-hooked", "someone-elses-hook")
    (foreign,) = stuck(world, group="other-hooked", hook="someone-elses-hook")
    ensure_group("not-the-fleet", HOOK)
    untag("not-the-fleet")
    (outsider,) = stuck(world, group="not-the-fleet")
    # When the sweep runs
    summary = sweep()
    # Then nothing is sent
    assert [c for c in calls.calls if c.operation == "send_command"] == []
    reasons = {s.instance_id: s.reason for s in summary.skipped_instances}
    assert reasons == {
        fresh: "launched recently: the event path has it",
        foreign: "waits for another launch hook than ours",
    }
    # And the untagged group is not even listed (IAM would refuse it the document anyway)
    assert outsider not in reasons
    assert summary.outcome == "compliant"


def test_launch_group_names_narrow_the_sweep(world: EmbeddedAws, calls: CallRecorder, sweep: Sweep) -> None:
    # Given stuck instances in two fleet groups, and LaunchGroupNames naming only the second
    ensure_group("mx-fleet-b", HOOK)
    stuck(world)
    (in_scope,) = stuck(world, group="mx-fleet-b")
    # When the sweep runs
    summary = sweep(load_settings({"DOCUMENT_NAME": DOCUMENT, "LAUNCH_GROUP_NAMES": "mx-fleet-b"}))
    # Then only the named group's instance is re-driven
    assert summary.redriven == [in_scope]


def untag(group: str) -> None:
    import boto3

    boto3.client("autoscaling", region_name="us-east-1").delete_tags(
        Tags=[{"ResourceId": group, "ResourceType": "auto-scaling-group", "Key": "proxymx:fleet"}]
    )


# ----- IAM: what the function calls is what its role allows ------------------------------------


def test_every_call_the_sweep_makes_is_allowed_by_its_role_and_nothing_more(
    world: EmbeddedAws, powertools: None, settings: Settings, clients: Clients, calls: CallRecorder
) -> None:
    # Given the widest sweep: a drifted Classic ELB (with another policy, so its policies are
    # read), a drifted NLB, and a stuck instance (heartbeat, registration, send)
    elb = Elb()
    elb.classic("mx-drifted")
    elb.elb.create_load_balancer_policy(
        LoadBalancerName="mx-drifted",
        PolicyName="mx-stickiness",
        PolicyTypeName="BackendServerAuthenticationPolicyType",
        PolicyAttributes=[{"AttributeName": "PublicKeyPolicyName", "AttributeValue": "k"}],
    )
    # The NLB's group listens on 2525 behind a listener on 25: its listeners decide whether it
    # carries SMTP, so the sweep reads them (a group on 25 with IP targets needs no listener read).
    lb = elb.v2.load_balancer("nlb-drifted")
    elb.v2.listener(lb, "TCP", 25, elb.v2.target_group("nlb-drifted-smtp", "TCP", 2525))
    stuck(world)
    logging_trail()
    # And the cutovers (issue 7.3): one to start (an unready fleet, an operator topic), one whose
    # status events were lost an hour ago (the safety net replays its invocations and switches)
    topic = Clients().sns.create_topic(Name="mx-ops")["TopicArn"]
    config = replace(
        settings,
        notification_topic_arn=topic,
        max_cutovers_in_flight=2,
    )
    start_cutover(world, config, "mx-lost", 1, started_seconds_ago=3600)
    world.launch.drain_status_events()
    _create_classic("mx-unready", [SMTP_LISTENER])
    unready = register_fleet_instances("mx-unready", 1)
    world.launch.register_instance(unready[0])
    calls.calls.clear()
    # When the scheduled sweep runs
    module = load_app("reconcile")
    result = module.lambda_handler(
        load_event("scheduled-reconcile"),
        lambda_context("ReconcileFunction"),
        settings=config,
        clients=clients,
    )
    assert (result["load_balancers_changed"], result["instances_redriven"]) == (2, 1)
    assert (result["cutovers_started"], len(result["cutover_repairs"])) == (1, 1)
    # Then the role allows exactly those actions, and denies writes on opted-out resources
    assert all(statement["Sid"] for statement in role_statements("ReconcileFunction").values())
    # (the cutover's notices publish and clear NOTICE# items; creating one is the notices' tests')
    # (the kill switch's read, ssm:GetParameter, is test_controls.py's to check: no switch here)
    assert calls.iam_actions == role_actions("ReconcileFunction") - {"ssm:GetParameter"}
    assert role_actions("ReconcileFunction", "Deny") == {
        "elasticloadbalancing:CreateLoadBalancerPolicy",
        "elasticloadbalancing:SetLoadBalancerPoliciesForBackendServer",
        "elasticloadbalancing:ModifyTargetGroupAttributes",
    }


def test_the_sweeps_writes_are_scoped_like_the_other_functions() -> None:
    # Given the statements of the three functions / Then each write of Reconcile is the very
    # statement (Sid, resource, condition) that EnableProxyProtocol or ConfigureInstance has
    ours = role_statements("ReconcileFunction")
    # (and CheckOutcome's: the cutover safety net replays what a lost status event would have done)
    theirs = {
        **role_statements("CheckOutcomeFunction"),
        **role_statements("EnableProxyProtocolFunction"),
        **role_statements("ConfigureInstanceFunction"),
    }
    for sid, statement in ours.items():
        if sid == "ReadForTheSweep":
            assert statement["Resource"] == "*"
            assert all(a.split(":")[1].startswith(("Describe", "List")) for a in statement["Action"])
        elif sid == "ReadFlapGuardInStateTable":
            # The sweep only asks whether a unit's repairs are suspended; events record undos.
            assert statement["Action"] == "dynamodb:GetItem"
        elif sid == "ReadTrailStatus":
            assert statement["Action"] == ["cloudtrail:DescribeTrails", "cloudtrail:GetTrailStatus"]
        elif sid == "ReadCutoverInvocations":
            assert (statement["Action"], statement["Resource"]) == ("ssm:GetCommandInvocation", "*")
        else:
            assert statement == theirs[sid], sid


def logging_trail(name: str = "org-management-events") -> str:
    """A trail with logging on in the region (and its bucket); its ARN."""
    s3 = Clients().client("s3")
    s3.create_bucket(Bucket=f"{name}-logs")
    cloudtrail = Clients().client("cloudtrail")
    arn = cloudtrail.create_trail(Name=name, S3BucketName=f"{name}-logs")["TrailARN"]
    cloudtrail.start_logging(Name=arn)
    return arn


def test_no_logging_trail_makes_the_sweep_say_the_event_path_is_blind(
    world: EmbeddedAws, app: Handler, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a region with no CloudTrail trail at all
    # When the sweep runs
    result = app(load_event("scheduled-reconcile"))
    # Then it says the load-balancer events cannot arrive, as a metric for the alarm
    assert result["cloudtrail_blind"] is True
    assert emf_metrics(capsys.readouterr().out)["CloudTrailBlind"] == [1.0]
    # And it is not a sweep failure: nothing else went wrong
    assert result["outcome"] == "compliant"


def test_a_stopped_trail_is_blind_and_a_logging_one_is_not(world: EmbeddedAws, sweep: Sweep) -> None:
    # Given a trail whose logging was stopped
    arn = logging_trail()
    cloudtrail = Clients().client("cloudtrail")
    cloudtrail.stop_logging(Name=arn)
    # When the sweep runs / Then the event path is blind
    assert sweep().cloudtrail_blind is True
    # And once logging is back, it is not
    cloudtrail.start_logging(Name=arn)
    summary = sweep()
    assert summary.cloudtrail_blind is False
    assert {m.name: m.value for m in summary.metrics()}["CloudTrailBlind"] == 0
