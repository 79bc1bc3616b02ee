"""Reconcile's decisions without AWS: the summary, failure isolation, what counts as stuck, the
Scheduled Event model, and its part of template.yaml."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from proxymx.aws import Clients
from proxymx.config import load_settings
from proxymx.errors import MalformedEvent, NotReadyYet, PermanentAwsError
from proxymx.inventory import FleetGroup, ListedClassic, ListedV2, OurInvocation, V2Listing, WaitingInstance
from proxymx.launch.configure import LaunchOutcome
from proxymx.launch.plan import Launch
from proxymx.loadbalancer.plan import ClassicState
from proxymx.loadbalancer.service import SWEEP_EVENT_NAME, ProxyProtocolResult
from proxymx.models.schedule import parse_scheduled_event
from proxymx.reconcile import (
    STUCK_AFTER_SECONDS,
    LoadBalancerCheck,
    Reconcile,
    ReconcileFailed,
    ReconcileSummary,
)
from proxymx_tools import template as tpl
from proxymx_tools.runner import route
from support import load_event

NOW = datetime(2026, 11, 28, 5, 0, tzinfo=UTC)
SETTINGS = load_settings({})
TEMPLATE = tpl.load_template()
RES = TEMPLATE["Resources"]


class FakeInventory:
    """Listings from memory; a listing can be made to fail."""

    def __init__(self, **lists: Any) -> None:
        self.lists = lists

    def _get(self, name: str) -> Any:
        value = self.lists.get(name, [])
        if isinstance(value, Exception):
            raise value
        return value

    def classic_load_balancers(self) -> list[ListedClassic]:
        return [ListedClassic(ClassicState(name, (), {}, (), {}), ()) for name in self._get("classic")]

    def classic_policies(self, listed: ListedClassic, _settings: Any) -> ClassicState:
        return listed.state

    def v2_load_balancers(self) -> V2Listing:
        arns = self._get("network")
        return V2Listing(tuple(ListedV2(arn, arn, "network", "ipv4", {}) for arn in arns), {})

    def fleet_groups(self, *_: Any) -> list[FleetGroup]:
        return list(self._get("groups"))

    def launch_times(self, ids: Any) -> dict[str, datetime]:
        times: dict[str, datetime] = self._get("launched") or {}
        return {i: times[i] for i in ids if i in times}

    def our_invocations(self, instance_id: str, _document: str) -> list[OurInvocation]:
        invocations: dict[str, list[OurInvocation]] = self._get("invocations") or {}
        return invocations.get(instance_id, [])


class FakeService:
    """Answers per load balancer: a ProxyProtocolResult, or an exception to raise."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[str] = []
        self.nlb = SimpleNamespace(known_ip_address_types={})

    def _answer(self, name: str) -> ProxyProtocolResult:
        self.asked.append(name)
        answer = self.answers[name]
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, ProxyProtocolResult)
        return answer

    def ensure_classic(self, name: str, *, state: Any = None) -> ProxyProtocolResult:
        return self._answer(name)

    def ensure_listed_v2(self, arn: str, *_: Any) -> ProxyProtocolResult:
        return self._answer(arn)


def result(outcome: str, changes: tuple[str, ...] = ()) -> ProxyProtocolResult:
    return ProxyProtocolResult(
        outcome=outcome,
        reason=outcome,
        event_name=SWEEP_EVENT_NAME,
        changes=list(changes),
        enabled_count=len(changes),
    )


def sweeper(inventory: FakeInventory, service: FakeService | None = None, hooks: Any = None) -> Reconcile:
    """The sweep with its reads and its load balancer service faked; ``hooks`` stands in for the
    Auto Scaling client (no other client is ever built here)."""
    clients = Clients()
    if hooks is not None:
        clients.autoscaling = hooks
    return Reconcile(SETTINGS, clients, inventory=inventory, service=service, now=NOW)  # type: ignore[arg-type]


# ----- load balancers: one failure never stops the sweep ----------------------------------


def test_a_failing_load_balancer_is_recorded_and_the_next_ones_are_still_checked() -> None:
    # Given three Classic ELBs and an NLB; the second raises something unexpected
    service = FakeService(
        {
            "a": result("changed", ("x",)),
            "b": KeyError("LoadBalancerDescriptions"),
            "c": result("compliant"),
            "arn:nlb": result("changed", ("y",)),
        }
    )
    sweep = sweeper(FakeInventory(classic=["a", "b", "c"], network=["arn:nlb"]), service)
    # When the load balancers are swept
    sweep.sweep_load_balancers()
    summary = sweep.summary
    # Then every one was asked, the failure is recorded, and the summary fails
    assert service.asked == ["a", "b", "c", "arn:nlb"]
    assert [c.outcome for c in summary.load_balancers] == ["changed", "failed", "compliant", "changed"]
    assert summary.failures == ["classic load balancer b: KeyError: 'LoadBalancerDescriptions'"]
    assert summary.outcome == "failed"
    with pytest.raises(ReconcileFailed, match="1 failure"):
        summary.raise_if_failed()


def test_a_load_balancer_deleted_during_the_sweep_is_vanished_not_failed() -> None:
    service = FakeService({"gone": NotReadyYet("LoadBalancerNotFound"), "here": result("compliant")})
    sweep = sweeper(FakeInventory(classic=["gone", "here"]), service)
    sweep.sweep_load_balancers()
    assert [c.outcome for c in sweep.summary.load_balancers] == ["vanished", "compliant"]
    assert sweep.summary.checked == 1
    assert sweep.summary.failures == []


def test_a_failed_listing_is_a_failure_and_the_other_listing_still_runs() -> None:
    # Given the Classic listing denied / When swept / Then the NLBs are still checked
    service = FakeService({"arn:nlb": result("compliant")})
    sweep = sweeper(FakeInventory(classic=PermanentAwsError("AccessDenied"), network=["arn:nlb"]), service)
    sweep.sweep_load_balancers()
    assert service.asked == ["arn:nlb"]
    assert sweep.summary.errors == ["listing Classic load balancers failed: AccessDenied"]
    assert sweep.summary.outcome == "failed"


# ----- the summary ---------------------------------------------------------------------------


def test_summary_counts_metrics_and_answer() -> None:
    summary = ReconcileSummary(dry_run=False)
    summary.load_balancers += [
        LoadBalancerCheck("classic", "a", "changed", "drift repaired", ("p", "q"), 1),
        LoadBalancerCheck("network", "arn:b", "compliant", "ok"),
        LoadBalancerCheck("classic", "c", "vanished", "deleted"),
    ]
    summary.instances += [
        LaunchOutcome("m1", "sent", "sent", "i-0123456789abcdef0", "c1"),
        LaunchOutcome("m2", "not-ready", "agent late", "i-0123456789abcdef1"),
    ]
    metrics = {m.name: m.value for m in summary.metrics()}
    assert metrics == {
        "ReconcileLoadBalancersChecked": 2,
        "ReconcileLoadBalancersChanged": 1,
        "ReconcileLoadBalancersFailed": 0,
        "ReconcileInstancesStuck": 2,
        "ReconcileInstancesRedriven": 1,
        "ReconcileFailures": 0,
        "LoadBalancersBlocked": 0,
        "ProxyProtocolEnabled": 1,
    }
    answer = summary.to_dict()
    assert answer["outcome"] == "changed"
    assert answer["reason"] == (
        "2 load balancer(s) checked, 1 changed, 0 failed; 1 stuck instance(s) re-driven"
    )
    assert answer["instances"] == {"stuck": 2, "skipped": 0, "not-ready": 1, "sent": 1}
    assert answer["redriven"] == ["i-0123456789abcdef0"]
    json.dumps(answer)  # the handler's answer is JSON


def test_a_late_agent_is_not_a_failure_but_a_failed_send_is() -> None:
    summary = ReconcileSummary(dry_run=False)
    summary.instances.append(LaunchOutcome("m", "not-ready", "agent late", "i-0123456789abcdef1"))
    assert summary.failures == []
    summary.instances.append(LaunchOutcome("n", "failed", "SendCommand: AccessDenied", "i-0123456789abcdef2"))
    assert summary.failures == ["instance i-0123456789abcdef2: SendCommand: AccessDenied"]


def test_the_failure_message_names_the_first_three_and_counts_the_rest() -> None:
    summary = ReconcileSummary(dry_run=False)
    summary.load_balancers += [LoadBalancerCheck("classic", f"lb{i}", "failed", "boom") for i in range(5)]
    message = str(ReconcileFailed(summary))
    assert message.startswith("reconcile: 5 failure(s): classic load balancer lb0: boom;")
    assert message.endswith("(+2 more)")


# ----- what counts as stuck -----------------------------------------------------------------


class Hooks:
    """A stub Auto Scaling client: the group's lifecycle hooks."""

    def __init__(self, hooks: dict[str, list[str]]) -> None:
        self.hooks = hooks

    def describe_lifecycle_hooks(self, AutoScalingGroupName: str) -> dict[str, Any]:
        return {
            "LifecycleHooks": [
                {"LifecycleHookName": name, "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING"}
                for name in self.hooks.get(AutoScalingGroupName, [])
            ]
        }


GROUP = FleetGroup(
    "mx-fleet",
    "arn:aws:autoscaling:eu-west-1:210987654321:autoScalingGroup:u-u-i-d:autoScalingGroupName/mx-fleet",
    tuple(WaitingInstance(f"i-00000000000000{n:03d}", "Pending:Wait") for n in range(5)),
)


def test_stuck_means_old_enough_known_to_ec2_and_no_command_in_flight() -> None:
    old = NOW - timedelta(seconds=STUCK_AFTER_SECONDS + 1)
    ids = [i.instance_id for i in GROUP.waiting]
    inventory = FakeInventory(
        launched={
            ids[0]: old,  # stuck, never had a command: re-driven
            ids[1]: NOW - timedelta(seconds=30),  # its event is on its way
            # ids[2]: EC2 no longer knows it
            ids[3]: old,  # a command in flight
            ids[4]: old,  # a command that ended long ago (its status event was lost): re-driven
        },
        invocations={
            ids[3]: [OurInvocation("c-busy", "InProgress", NOW - timedelta(seconds=20))],
            ids[4]: [OurInvocation("c-old", "Success", NOW - timedelta(hours=1))],
        },
    )
    sweep = sweeper(inventory, hooks=Hooks({"mx-fleet": ["proxymx-postfix-launch"]}))
    launches = sweep._stuck_in(GROUP)
    assert [launch.instance_id for launch in launches] == [ids[0], ids[4]]
    assert {s.instance_id: s.reason for s in sweep.summary.skipped_instances} == {
        ids[1]: "launched recently: the event path has it",
        ids[2]: "EC2 no longer knows the instance",
        ids[3]: "command c-busy of our document is InProgress",
    }


def test_a_command_that_ended_a_moment_ago_still_counts_as_in_flight() -> None:
    # Its status event may still be on its way to CheckOutcome: do not send the document twice.
    inventory = FakeInventory(
        invocations={"i-1": [OurInvocation("c-1", "Success", NOW - timedelta(seconds=60))]}
    )
    assert sweeper(inventory)._command_in_flight("i-1") == "command c-1 ended recently (Success)"
    assert sweeper(FakeInventory())._command_in_flight("i-1") is None


def test_a_stuck_instance_is_handed_on_as_a_typed_launch_dated_at_its_launch() -> None:
    # Given a stuck instance / When the sweep takes it up
    launched = NOW - timedelta(hours=2)
    inventory = FakeInventory(launched={GROUP.waiting[0].instance_id: launched})
    sweep = sweeper(inventory, hooks=Hooks({"mx-fleet": ["proxymx-postfix-launch"]}))
    one = FleetGroup(GROUP.name, GROUP.arn, GROUP.waiting[:1])
    (launch,) = sweep._stuck_in(one)
    # Then it is the launch ConfigureInstance acts on, with no SQS record and no token behind it,
    # dated at the launch (ConfigureInstance then heartbeats before it sends)
    assert launch == Launch(GROUP.waiting[0].instance_id, "mx-fleet", "proxymx-postfix-launch", time=launched)
    assert (launch.token, launch.message_id) == (None, None)
    assert launch.key == f"sweep-{GROUP.waiting[0].instance_id}"


def test_a_group_waiting_for_someone_elses_hook_is_skipped() -> None:
    sweep = sweeper(FakeInventory(), hooks=Hooks({"mx-fleet": ["their-hook"]}))
    assert sweep._stuck_in(GROUP) == []
    assert {s.reason for s in sweep.summary.skipped_instances} == {"waits for another launch hook than ours"}


# ----- the Scheduled Event --------------------------------------------------------------------


def test_the_sample_scheduled_event_parses() -> None:
    event = parse_scheduled_event(load_event("scheduled-reconcile"))
    assert (event.source, event.detail_type, event.detail) == ("aws.events", "Scheduled Event", {})


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("source", "aws.autoscaling", "source"),
        ("detail-type", "Nope", "detail-type"),
        ("detail", None, "detail"),
    ],
)
def test_a_malformed_scheduled_event_names_the_field(field: str, value: Any, named: str) -> None:
    event = load_event("scheduled-reconcile")
    event[field] = value
    with pytest.raises(MalformedEvent, match=f"malformed scheduled event: {named}"):
        parse_scheduled_event(event)


# ----- template.yaml --------------------------------------------------------------------------


def test_the_schedule_is_a_routable_rule_for_scheduled_events_only() -> None:
    # Given the template's rules / Then the schedule is one, matching Scheduled Events only
    rule = next(r for r in tpl.event_rules(TEMPLATE) if r.logical_id == "ReconcileFunctionSweep")
    assert [t.logical_id for t in rule.targets] == ["ReconcileFunction"]
    assert [r.function for r in route(load_event("scheduled-reconcile"), TEMPLATE)] == ["ReconcileFunction"]
    assert [r.function for r in route(load_event("lifecycle-launch"), TEMPLATE)] != ["ReconcileFunction"]


def test_the_schedule_is_a_parameter_and_can_be_disabled() -> None:
    params = TEMPLATE["Parameters"]
    assert params["ReconcileSchedule"]["Default"] == "rate(5 minutes)"
    assert params["ReconcileEnabled"]["AllowedValues"] == ["true", "false"]
    sweep = RES["ReconcileFunction"]["Properties"]["Events"]["Sweep"]
    assert sweep["Type"] == "Schedule"
    assert sweep["Properties"]["Schedule"] == {"Ref": "ReconcileSchedule"}
    assert sweep["Properties"]["State"] == {"Fn::If": ["ReconcileIsEnabled", "ENABLED", "DISABLED"]}
    assert TEMPLATE["Conditions"]["ReconcileIsEnabled"] == {
        "Fn::Equals": [{"Ref": "ReconcileEnabled"}, "true"]
    }


def test_the_function_has_its_log_group_an_errors_alarm_and_the_launch_scope() -> None:
    props = RES["ReconcileFunction"]["Properties"]
    assert props["LoggingConfig"]["LogGroup"] == {"Ref": "ReconcileLogGroup"}
    assert RES["ReconcileLogGroup"]["Properties"]["RetentionInDays"] > 0
    alarm = RES["ReconcileErrorsAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Errors")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "ReconcileFunction"}}]
    env = props["Environment"]["Variables"]
    configure = dict(RES["ConfigureInstanceFunction"]["Properties"]["Environment"]["Variables"])
    # Each function's own Timeout (its call budget, tests/unit/test_budget.py), not a shared setting
    configure.pop("FUNCTION_TIMEOUT_SECONDS")
    # The same launch scope and document parameters as ConfigureInstance, plus the fleet tag value
    assert {k: v for k, v in env.items() if k in configure} == configure
    assert env["FLEET_TAG_VALUE"] == {"Ref": "FleetTagValue"}
    # The sweep must end before the next one starts
    assert props["Timeout"] < 3600


def test_a_scheduled_event_without_version_parses_as_the_sam_cli_generates_it() -> None:
    # Given the sample trigger without "version" (`sam local generate-event cloudwatch scheduled-event`)
    event = load_event("scheduled-reconcile")
    del event["version"]
    # When parsed / Then the sweep is not refused for a field it never reads
    assert parse_scheduled_event(event).detail_type == "Scheduled Event"
