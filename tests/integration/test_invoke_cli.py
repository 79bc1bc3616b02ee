"""``proxymx invoke`` and ``proxymx demo``: routing, the --json shape, exit codes, messages."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from proxymx.errors import PermanentAwsError
from proxymx_tools import demo
from proxymx_tools import template as tpl
from proxymx_tools.cli import main
from proxymx_tools.runner import Route, invoke_event, resolve, route, sqs_event
from support import EVENTS_DIR, ROOT, load_event

JSON_KEYS = ["matched_rules", "functions", "outcome", "aws_calls", "error"]


def invoke_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["invoke", *args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)  # exactly one JSON object, nothing else on stdout


def test_json_report_of_a_classic_creation(capsys: pytest.CaptureFixture[str]) -> None:
    # Given the Classic creation event / When invoked with --json on the embedded AWS
    code, report = invoke_json(capsys, str(EVENTS_DIR / "elb-create-smtp.json"))
    # Then one object with exactly the documented keys, every call in order, exit 0
    assert code == 0
    assert list(report) == JSON_KEYS
    assert report["matched_rules"] == ["EnableProxyProtocolFunctionClassicElbApiCall"]
    assert report["functions"] == ["EnableProxyProtocolFunction"]
    assert report["outcome"] == "changed"
    assert report["error"] is None
    # (the second read: the ports re-read right before the write that replaces their lists)
    assert [(c["service"], c["operation"]) for c in report["aws_calls"]][:8] == [
        ("elb", "describe_load_balancers"),
        ("elb", "describe_tags"),
        # the kill switch and the flapping guard (proxymx.controls), read only because a write
        # is planned
        ("ssm", "get_parameter"),
        ("dynamodb", "get_item"),
        # the interlock: launches held by groups attached to the ELB (no registered instance)
        ("autoscaling", "describe_auto_scaling_groups"),
        ("elb", "create_load_balancer_policy"),
        ("elb", "describe_load_balancers"),
        ("elb", "set_load_balancer_policies_for_backend_server"),
    ]
    assert report["aws_calls"][2]["params"] == {"Name": "/proxymx/proxymx/enabled"}
    assert report["aws_calls"][5]["params"]["PolicyName"] == "proxymx-ProxyProtocol"
    assert all(list(call) == ["service", "operation", "params"] for call in report["aws_calls"])


def test_dry_run_makes_reads_only(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = invoke_json(capsys, str(EVENTS_DIR / "nlb-drift-proxy-disabled.json"), "--dry-run")
    assert code == 0
    assert report["outcome"] == "changed"
    operations = [c["operation"] for c in report["aws_calls"]]
    assert operations
    # (and the kill switch and the flapping guard's item: reads too)
    assert all(op.startswith(("describe_", "get_")) for op in operations)


def test_malformed_event_is_rejected_with_the_field_and_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = invoke_json(capsys, str(EVENTS_DIR / "malformed-elb-bad-instance-port.json"))
    assert code == 3
    assert report["outcome"] == "rejected"
    assert report["error"].startswith("detail.requestParameters.listeners[0].instancePort:")
    assert report["aws_calls"] == []


def test_no_matching_rule_is_said_clearly_and_is_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(EVENTS_DIR / "elb-failed-call.json")
    code, report = invoke_json(capsys, path)
    assert (code, report["outcome"], report["matched_rules"], report["functions"]) == (0, "ignored", [], [])
    assert main(["invoke", path]) == 0
    assert "NONE: no rule of template.yaml matches this event" in capsys.readouterr().out


def test_a_failure_exits_1_with_the_reason(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the ELB API refuses (e.g. AccessDenied, translated once by the adapter)
    def refuse(self: Any, name: str) -> Any:
        raise PermanentAwsError(f"Classic load balancer {name}: AccessDenied")

    monkeypatch.setattr("proxymx.loadbalancer.classic.ClassicElb.describe", refuse)
    code, report = invoke_json(capsys, str(EVENTS_DIR / "elb-create-smtp.json"))
    assert code == 1
    assert report["outcome"] == "failed"
    assert report["error"] == "PermanentAwsError: Classic load balancer mx-inbound: AccessDenied"


def test_handler_logs_stay_out_of_json_and_show_with_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(EVENTS_DIR / "nlb-create-target-group.json")
    invoke_json(capsys, path)  # parses as one object: no log line leaked
    assert main(["invoke", path, "--verbose"]) == 0
    out = capsys.readouterr().out
    assert '"correlation_id"' in out
    assert '"ProxyProtocolEnabled"' in out  # the EMF line
    assert "outcome    changed: PROXY protocol enabled" in out


def test_readable_summary_lists_rules_outcome_and_calls(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["invoke", str(EVENTS_DIR / "elb-drift-backend-detached.json")]) == 0
    out = capsys.readouterr().out
    assert "rules      EnableProxyProtocolFunctionClassicElbApiCall" in out
    assert "outcome    changed: drift repaired" in out
    # the repair, and the undo counted by the flapping guard (its DRIFT# item)
    assert "2 writes" in out and "dynamodb.update_item" in out
    assert "elb.set_load_balancer_policies_for_backend_server" in out


def test_an_unreadable_json_file_is_rejected(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, report = invoke_json(capsys, str(bad))
    assert (code, report["outcome"]) == (3, "rejected")
    assert "is not JSON" in report["error"]


def test_missing_launch_seeder_is_reported_not_crashed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a template whose rule sends Auto Scaling events to a function, and no seed_launch module
    monkeypatch.setitem(sys.modules, "proxymx_tools.seed_launch", None)
    event = {"source": "aws.autoscaling", "detail-type": "EC2 Instance-launch Lifecycle Action", "detail": {}}
    path = tmp_path / "launch.json"
    path.write_text(json.dumps(event))
    template = tmp_path / "template.yaml"
    template.write_text(
        "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      CodeUri: fn\n      Handler: app.handler\n      Events:\n        Launch:\n"
        "          Type: EventBridgeRule\n          Properties:\n            Pattern:\n"
        "              source: [aws.autoscaling]\n"
    )
    code, report = invoke_json(capsys, str(path), "--template", str(template))
    assert code == 1
    assert report["outcome"] == "failed"
    assert "proxymx_tools.seed_launch is missing" in report["error"]


def test_a_name_aws_would_refuse_is_rejected_before_anything_is_seeded(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a CreateTargetGroup event whose name AWS (and moto) refuse (longer than 32 characters)
    event = load_event("nlb-create-target-group")
    event["detail"]["requestParameters"]["name"] = "x" * 40
    path = tmp_path / "long-name.json"
    path.write_text(json.dumps(event))
    # When invoked with --json / Then stdout is still exactly one JSON object: the function's own
    # parser rejects it before the embedded world is seeded (exit 3, no AWS call)
    code, report = invoke_json(capsys, str(path))
    assert list(report) == JSON_KEYS
    assert (code, report["outcome"], report["aws_calls"]) == (3, "rejected", [])
    assert report["error"].startswith("detail.requestParameters.name: string should have at most 32")


def test_an_unreadable_template_is_a_failed_json_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given --template naming a file that does not exist
    missing = tmp_path / "nope.yaml"
    # When invoked with --json / Then one JSON object says why, exit 1 (no traceback)
    code, report = invoke_json(capsys, str(EVENTS_DIR / "elb-create-smtp.json"), "--template", str(missing))
    assert list(report) == JSON_KEYS
    assert (code, report["outcome"]) == (1, "failed")
    assert "FileNotFoundError" in report["error"]


def test_the_handlers_get_their_settings_injected_not_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the process-wide settings made unreadable (what a handler reads in Lambda)
    import proxymx.handler

    def from_the_environment() -> Any:
        raise AssertionError("a handler read its settings from the environment")

    monkeypatch.setattr(proxymx.handler, "process_settings", from_the_environment)
    before = dict(os.environ)
    # When `proxymx invoke --dry-run` runs each function on its sample event
    reports = {
        name: invoke_event(load_event(name), dry_run=True)
        for name in ("elb-create-smtp", "lifecycle-launch", "ssm-status-success", "scheduled-reconcile")
    }
    # Then each ran with the template's configuration, injected, the dry run included
    assert {name: report.error for name, report in reports.items()} == dict.fromkeys(reports)
    assert (reports["elb-create-smtp"].outcome, reports["elb-create-smtp"].writes) == ("changed", 0)
    (sent,) = [c.params for c in reports["lifecycle-launch"].aws_calls if c.operation == "send_command"]
    assert sent["Parameters"]["DryRun"] == ["true"]
    # And the environment is as it was (only Powertools' variables were set, and only meanwhile)
    assert dict(os.environ) == before


def test_console_script_entry_point() -> None:
    # The installed `proxymx` script (pyproject: proxymx_tools.cli:main), as a user runs it.
    exe = shutil.which("proxymx", path=str(Path(sys.executable).parent))
    assert exe is not None
    done = subprocess.run(
        [exe, "invoke", "events/nlb-create.json", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["outcome"] == "compliant"
    assert [c["operation"] for c in report["aws_calls"]] == [
        "describe_load_balancers",
        "describe_target_groups",
    ]


# ----- routing machinery -------------------------------------------------------------------------

QUEUE_TEMPLATE: dict[str, Any] = {
    "Parameters": {"Port": {"Type": "String", "Default": "25"}},
    "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "Port"}, "25"]}},
    "Resources": {
        "Queue": {"Type": "AWS::SQS::Queue"},
        "Rule": {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "EventPattern": {"source": ["aws.autoscaling"], "detail": {"port": [{"Ref": "Port"}]}},
                "Targets": [{"Id": "q", "Arn": {"Fn::GetAtt": ["Queue", "Arn"]}}],
            },
        },
        "Consumer": {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "CodeUri": "c",
                "Handler": "app.handler",
                "Events": {
                    "Batch": {"Type": "SQS", "Properties": {"Queue": {"Fn::GetAtt": ["Queue", "Arn"]}}}
                },
            },
        },
        "FnRole": {"Type": "AWS::IAM::Role"},
    },
}


def test_a_rule_targeting_a_queue_runs_the_queues_consumer() -> None:
    event = {"source": "aws.autoscaling", "detail": {"port": "25"}}
    assert route(event, QUEUE_TEMPLATE) == [Route("Rule", "Consumer", "Queue")]
    assert route({"source": "aws.autoscaling", "detail": {"port": "587"}}, QUEUE_TEMPLATE) == []


def test_the_event_reaches_the_consumer_as_an_sqs_record() -> None:
    event = load_event("elb-create-smtp")
    record = sqs_event(event, "Queue")["Records"][0]
    assert record["eventSource"] == "aws:sqs"
    assert json.loads(record["body"]) == event
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:proxymx-Queue"


def test_intrinsics_resolve_as_a_local_stack_would() -> None:
    assert resolve(QUEUE_TEMPLATE, {"Ref": "Port"}) == "25"
    assert resolve(QUEUE_TEMPLATE, {"Ref": "Queue"}).endswith("/123456789012/proxymx-Queue")
    assert (
        resolve(QUEUE_TEMPLATE, {"Fn::GetAtt": ["FnRole", "Arn"]})
        == "arn:aws:iam::123456789012:role/proxymx-FnRole"
    )
    assert resolve(QUEUE_TEMPLATE, {"Fn::Sub": "${AWS::Region}:${Port}"}) == "us-east-1:25"
    assert resolve(QUEUE_TEMPLATE, {"Fn::If": ["IsProd", "a", "b"]}) == "a"
    assert resolve(QUEUE_TEMPLATE, {"Fn::Join": [",", ["x", {"Ref": "Port"}]]}) == "x,25"


def test_the_function_gets_its_template_environment() -> None:
    from proxymx_tools.runner import function_env

    env = function_env(tpl.load_template(), "EnableProxyProtocolFunction")
    assert env["SMTP_PORTS"] == "25"
    assert env["OPT_OUT_TAG_KEY"] == "proxymx:opt-out"
    assert env["DRY_RUN"] == "false"
    # Its own role, Reconcile's and CheckOutcome's (it switches a unit at the end of a cutover):
    # changes by any of them are ours, never remediated again.
    assert env["SELF_ROLE_ARNS"].split(",") == [
        "arn:aws:iam::123456789012:role/proxymx-EnableProxyProtocolFunctionRole",
        "arn:aws:iam::123456789012:role/proxymx-ReconcileFunctionRole",
        "arn:aws:iam::123456789012:role/proxymx-CheckOutcomeFunctionRole",
    ]
    # The cutover's state and fleet scope reach it too
    assert (env["STATE_TABLE"], env["FLEET_TAG_VALUE"], env["CUTOVER"]) == (
        "proxymx-StateTable",
        "mx",
        "auto",
    )
    assert "REQUIRED_TAG" in env


# ----- demo --------------------------------------------------------------------------------------


def test_demo_step_checks_every_event_against_the_manifest(tmp_path: Path) -> None:
    # Given an events dir with two events and a manifest, one entry deliberately wrong
    events = tmp_path / "events"
    events.mkdir()
    for name in ("nlb-create.json", "malformed-elb-no-user-identity.json"):
        shutil.copy(EVENTS_DIR / name, events / name)
    manifest = {
        "events": {
            "nlb-create.json": {"rules": ["EnableProxyProtocolFunctionElbV2ApiCall"], "outcome": "compliant"},
            "malformed-elb-no-user-identity.json": {
                "rules": ["EnableProxyProtocolFunctionElbV2ApiCall"],
                "outcome": "changed",
            },
        }
    }
    (events / "expected.json").write_text(json.dumps(manifest))
    out = io.StringIO()
    context = demo.DemoContext(template_path=tpl.DEFAULT_TEMPLATE, events_dir=events, out=out)
    # When the step runs / Then it fails, naming the mismatch, and the table has both rows
    result = demo.invoke_every_event(context)
    assert result.status == "failed"
    assert any("malformed-elb-no-user-identity.json: expected changed" in line for line in result.lines)
    assert any(line.startswith("nlb-create.json") and "compliant ok" in line for line in result.lines)
    # And fixing the manifest makes the whole demo exit 0
    manifest["events"]["malformed-elb-no-user-identity.json"]["outcome"] = "rejected"
    (events / "expected.json").write_text(json.dumps(manifest))
    code = demo.Demo([demo.Step("events", demo.invoke_every_event)]).run(context)
    assert code == 0
    assert "all steps passed" in out.getvalue()


def test_a_failing_step_fails_the_demo_but_the_next_steps_run(tmp_path: Path) -> None:
    out = io.StringIO()
    context = demo.DemoContext(template_path=tpl.DEFAULT_TEMPLATE, events_dir=tmp_path, out=out)
    ran: list[str] = []

    def broken(_ctx: demo.DemoContext) -> demo.StepResult:
        raise RuntimeError("boom")

    def fine(_ctx: demo.DemoContext) -> demo.StepResult:
        ran.append("fine")
        return demo.StepResult("skipped", "haproxy missing: apt-get install haproxy")

    code = demo.Demo([demo.Step("broken", broken), demo.Step("fine", fine)]).run(context)
    assert code == 1
    assert ran == ["fine"]
    text = out.getvalue()
    assert "FAILED: broken" in text
    assert "SKIPPED" in text


def test_invoke_inside_the_callers_embedded_aws_keeps_the_world(aws: Any) -> None:
    # Given the caller holds the embedded AWS (the demo's data-plane chain does)
    import boto3
    from proxymx_tools.runner import invoke_event

    # When the NLB target group event is invoked without entering a new one
    report = invoke_event(load_event("nlb-create-target-group"), enter_embedded=False)
    # Then the change is still readable afterwards, in the caller's world
    assert report.outcome == "changed"
    elbv2 = boto3.client("elbv2", region_name="us-east-1")
    arn = elbv2.describe_target_groups(Names=["mx-smtp-25"])["TargetGroups"][0]["TargetGroupArn"]
    attributes = elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
    assert {a["Key"]: a["Value"] for a in attributes}["proxy_protocol_v2.enabled"] == "true"


def test_backend_current_runs_in_the_callers_world_with_extra_environment(aws: Any) -> None:
    # Given the caller built the world itself
    from proxymx_tools.runner import invoke_event
    from proxymx_tools.seed import seed_world

    event = seed_world(load_event("elb-create-smtp"))
    # When invoked on it with SMTP_PORTS=587 for the function
    report = invoke_event(event, backend="current", env_overrides={"SMTP_PORTS": "587"})
    # Then the handler saw that environment (port 25 is not SMTP now): reads only
    assert report.outcome == "compliant"
    assert report.writes == 0


# ----- issue 10: as faithful as `sam local invoke` ----------------------------------------------


def sam_generated_event(*args: str) -> dict[str, Any]:
    """An event exactly as the pinned SAM CLI generates it (offline)."""
    sam = Path(sys.executable).with_name("sam")
    out = subprocess.run(
        [str(sam), "local", "generate-event", *args], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    event: dict[str, Any] = json.loads(out)
    return event


def write_event(tmp_path: Path, event: dict[str, Any], name: str = "event.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(event))
    return str(path)


def test_the_sam_clis_scheduled_event_runs_the_sweep(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given `sam local generate-event cloudwatch scheduled-event` (it has no "version")
    event = sam_generated_event("cloudwatch", "scheduled-event")
    assert "version" not in event
    # When it is given to Reconcile directly, as `sam local invoke ReconcileFunction -e` would
    code, report = invoke_json(capsys, write_event(tmp_path, event), "--function", "ReconcileFunction")
    # Then the sweep runs (no rule consulted) instead of rejecting the trigger
    assert (code, report["matched_rules"], report["functions"]) == (0, [], ["ReconcileFunction"])
    assert report["outcome"] in ("changed", "compliant")
    assert ("elb", "describe_load_balancers") in [(c["service"], c["operation"]) for c in report["aws_calls"]]


def test_the_sam_clis_sqs_event_around_a_lifecycle_body_reaches_configure_instance(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given `sam local generate-event sqs receive-message` with a lifecycle event as its body
    # (set afterwards: the SAM CLI pastes --body into its JSON unescaped, so a JSON body breaks it)
    event = sam_generated_event("sqs", "receive-message")
    event["Records"][0]["body"] = json.dumps(load_event("lifecycle-launch"))
    # When it is given to ConfigureInstance directly (short name, as sam local invoke accepts)
    code, report = invoke_json(capsys, write_event(tmp_path, event), "--function", "ConfigureInstance")
    # Then the instance of the body is sent the document
    assert (code, report["outcome"], report["functions"]) == (0, "changed", ["ConfigureInstanceFunction"])
    (send,) = [c for c in report["aws_calls"] if c["operation"] == "send_command"]
    assert send["params"]["InstanceIds"] == [load_event("lifecycle-launch")["detail"]["EC2InstanceId"]]


def test_function_runs_an_event_no_rule_would_route(capsys: pytest.CaptureFixture[str]) -> None:
    # Given an SSM status event of a foreign document (no rule matches it)
    path = str(EVENTS_DIR / "ssm-status-foreign-document.json")
    code, routed = invoke_json(capsys, path)
    assert (code, routed["matched_rules"], routed["functions"]) == (0, [], [])
    # When CheckOutcome is invoked with it directly
    code, direct = invoke_json(capsys, path, "--function", "CheckOutcomeFunction")
    # Then the handler itself says what it does with it
    assert (code, direct["functions"], direct["outcome"]) == (0, ["CheckOutcomeFunction"], "ignored")


def test_parameter_overrides_route_and_run_with_the_users_parameters(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a launch of a hook with the user's own name, on the user's SMTP ports
    event = load_event("lifecycle-launch")
    event["detail"]["LifecycleHookName"] = "mx-postfix-proxy-launch"
    path = write_event(tmp_path, event)
    # When invoked with the defaults, no rule matches (the default hook name differs)
    code, report = invoke_json(capsys, path)
    assert (code, report["matched_rules"]) == (0, [])
    # When invoked with the SAM CLI's two spellings of the overrides
    code, report = invoke_json(
        capsys,
        path,
        "--parameter-overrides",
        "LifecycleHookName=mx-postfix-proxy-launch",
        "ParameterKey=SmtpPorts,ParameterValue=25,587",
    )
    # Then the launch rule routes it, and the function runs with those parameters
    assert (code, report["matched_rules"], report["outcome"]) == (0, ["LaunchLifecycleRule"], "changed")
    (send,) = [c for c in report["aws_calls"] if c["operation"] == "send_command"]
    assert send["params"]["Parameters"]["SmtpPorts"] == ["25,587"]


@pytest.mark.parametrize(
    "override",
    ["NoSuchParameter=1", "DryRun=maybe", "SmtpPorts=25;reboot", "justaword"],
)
def test_a_bad_parameter_override_is_a_usage_error(capsys: pytest.CaptureFixture[str], override: str) -> None:
    # Given an override the template would refuse / When invoked / Then exit 2 with the reason
    code = main(["invoke", str(EVENTS_DIR / "lifecycle-launch.json"), "--parameter-overrides", override])
    assert code == 2
    assert "--parameter-overrides" in capsys.readouterr().err


def test_a_malformed_event_is_rejected_before_anything_is_seeded(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given seeding that records whether it ran
    from proxymx_tools import seed

    seeded: list[Any] = []
    monkeypatch.setattr(seed, "seed_world", lambda event: seeded.append(event) or event)
    cases = [
        ("malformed-lifecycle-missing-instance", []),
        ("malformed-elb-missing-load-balancer-name", []),
        ("malformed-ssm-bad-command-id", ["--function", "CheckOutcome"]),
        # A lifecycle event given to ConfigureInstance without its SQS envelope
        ("lifecycle-launch", ["--function", "ConfigureInstance"]),
    ]
    for name, extra in cases:
        # When it is invoked, routed or direct
        code, report = invoke_json(capsys, str(EVENTS_DIR / f"{name}.json"), *extra)
        # Then it is rejected (exit 3) with the reason, no call made
        assert (code, report["outcome"]) == (3, "rejected"), name
        assert report["error"] and report["aws_calls"] == [], name
    # And the embedded AWS was never seeded
    assert seeded == []


def test_an_smtp_listener_pointed_at_an_existing_target_group_enables_it(aws: Any) -> None:
    # Given an NLB whose SMTP listener was just pointed (ModifyListener) at a target group that
    # has never had the PROXY protocol
    import boto3
    from proxymx_tools.runner import invoke_event

    # When the ModifyListener event is invoked (seeded from the event, in the caller's world)
    report = invoke_event(load_event("nlb-modify-listener"), enter_embedded=False)
    # Then the rule routes it and the target group now has proxy_protocol_v2 on
    assert (report.matched_rules, report.outcome) == (["EnableProxyProtocolFunctionElbV2ApiCall"], "changed")
    elbv2 = boto3.client("elbv2", region_name="us-east-1")
    arn = elbv2.describe_target_groups(Names=["mx-smtp-blue"])["TargetGroups"][0]["TargetGroupArn"]
    attributes = elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
    assert {"Key": "proxy_protocol_v2.enabled", "Value": "true"} in attributes


@pytest.mark.parametrize("name", ["nlb-create-target-group", "lifecycle-launch", "elb-create-smtp"])
def test_the_embedded_world_lives_in_the_events_own_account_and_region(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    # Given a sample event moved to another account and region
    text = json.dumps(load_event(name))
    text = text.replace("us-east-1", "eu-west-1").replace("123456789012", "444455556666")
    # When it is invoked on the embedded AWS
    code, report = invoke_json(capsys, write_event(tmp_path, json.loads(text)))
    # Then it is handled there (the world was seeded in that account and region), and every
    # ARN the calls name is of that account and region
    assert (code, report["outcome"]) == (0, "changed")
    arns = re.findall(r"arn:aws:[a-z0-9-]+:[a-z0-9-]*:\d*:", json.dumps(report["aws_calls"]))
    places = {tuple(arn.split(":")[3:5]) for arn in arns if arn.split(":")[3]}
    assert places <= {("eu-west-1", "444455556666")}
    if name.startswith("nlb"):
        assert places == {("eu-west-1", "444455556666")}


def test_a_blocked_outcome_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    # Given the unready-fleet sample / When invoked / Then blocked is "needs attention": exit 2
    code, report = invoke_json(capsys, str(EVENTS_DIR / "elb-create-listeners-unready-fleet.json"))
    assert (code, report["outcome"]) == (2, "blocked")
    assert not [c for c in report["aws_calls"] if c["operation"].startswith(("create_", "set_"))]
