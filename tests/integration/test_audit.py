"""``proxymx audit`` on a world of realistic size (issue 12): the embedded AWS in-process, and a
``moto_server`` on loopback reached through ``AWS_ENDPOINT_URL``, the way a real account is.

The worlds come from ``proxymx_tools.seed_account``: hundreds of load balancers (Classic and NLB)
in every state the audit names, thousands of instances (ready, not ready, outside the fleet), two
ALBs. The builder records what each unit must be audited as; the audit must say exactly that.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from proxymx.aws import Clients
from proxymx.state import StateTable
from proxymx_tools.audit import Audit, AuditReport, settings_from_template
from proxymx_tools.cli import main
from proxymx_tools.embedded import STATE_TABLE_NAME, create_enabled_parameter, create_state_table
from proxymx_tools.seed_account import AccountBuilder, SeededAccount, realistic_account

ROOT = Path(__file__).resolve().parents[2]
RESOURCE_KEYS = {"kind", "id", "state", "reason", "targets"}


def states(report: dict[str, Any]) -> dict[str, str]:
    return {r["id"]: r["state"] for r in report["resources"]}


def assert_audited_as_seeded(report: dict[str, Any], seeded: SeededAccount) -> None:
    found = states(report)
    # Every seeded unit is audited as what it was built to be.
    assert {unit: found.get(unit) for unit in seeded.expected} == seeded.expected
    # ALBs are out of scope, and say why.
    for arn in seeded.albs:
        (alb,) = [r for r in report["resources"] if r["id"] == arn]
        assert (alb["kind"], alb["state"]) == ("alb", "out of scope")
        assert "application load balancers" in alb["reason"]
    # The fleet's instances: ready or not ready, as tagged; outside-fleet ones only where named.
    instances = {i["id"]: i["state"] for i in report["instances"]}
    assert {i: instances.get(i) for i in seeded.fleet_ready} == dict.fromkeys(seeded.fleet_ready, "ready")
    assert {i: instances.get(i) for i in seeded.fleet_unready} == dict.fromkeys(
        seeded.fleet_unready, "not ready"
    )
    outside = {i for i, state in instances.items() if state == "outside the fleet"}
    assert outside and outside <= set(seeded.outside)


def assert_json_shape(report: dict[str, Any]) -> None:
    assert set(report) == {"resources", "instances", "summary", "aws_calls"}
    for resource in report["resources"]:
        assert set(resource) >= RESOURCE_KEYS
        assert isinstance(resource["targets"], list)
    assert report["aws_calls"] and all(set(c) == {"service", "operation"} for c in report["aws_calls"])
    counted = Counter(r["state"] for r in report["resources"])
    assert report["summary"]["resources"] == dict(counted)


# ----- the embedded AWS ------------------------------------------------------------------------


@pytest.fixture
def account(aws: object) -> SeededAccount:
    return realistic_account(load_balancers=210, instances=2000)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["audit", *args])
    return code, capsys.readouterr().out


def test_audit_names_every_state_and_gates_with_exit_2(
    account: SeededAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an account with every state (seeded above)
    # When it is audited with --json
    code, out = run_cli(capsys, "--json")
    report = json.loads(out)
    # Then each unit has the state it was built with, the JSON has its promised shape, and the
    # gate says "needs attention"
    assert_json_shape(report)
    assert_audited_as_seeded(report, account)
    assert set(report["summary"]["resources"]) >= {
        "compliant",
        "drifted",
        "blocked",
        "broken",
        "paused",
        "out of scope",
    }
    assert code == 2
    # And the blocked units name their unready targets (in the fleet or not)
    blocked = [r for r in report["resources"] if r["state"] == "blocked"]
    assert all(t["why"] and t["ready"] is False for r in blocked for t in r["targets"])
    assert {t["in_fleet"] for r in blocked for t in r["targets"]} == {True, False}
    # And the calls grow with pages, not with load balancers (issue 12): well under one per unit
    assert len(report["aws_calls"]) < len(report["resources"])


def test_markdown_and_text_show_the_same_states(
    account: SeededAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the same account, audited as Markdown and as text
    code_md, markdown = run_cli(capsys, "--markdown")
    code_text, text = run_cli(capsys)
    # Then both are the gate's answer, a table with every state, and the summary line
    assert code_md == code_text == 2
    assert markdown.startswith("| kind | id | state | reason |\n| --- | --- | --- | --- |")
    for state in ("compliant", "drifted", "blocked", "broken", "paused", "out of scope"):
        assert f"**{state}**" in markdown
        assert f"  {state}  " in text
    last = text.strip().splitlines()[-1]
    assert last.startswith("212 load balancer(s)/target group(s): ") and "instances: " in last
    assert f"**{last}**" in markdown


def test_a_cutover_in_progress_is_read_from_the_state_table(
    account: SeededAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a blocked Classic ELB whose cutover the functions started (and another that ended)
    blocked = sorted(
        unit for unit, state in account.expected.items() if state == "blocked" and "arn:" not in unit
    )
    # (the embedded AWS has the template's StateTable, as a deployed stack does)
    table = StateTable(STATE_TABLE_NAME, Clients().dynamodb)
    later = int(time.time()) + 3600
    started = {"phase": "configuring", "started_at": "2026-12-01T00:00:00Z"}
    table.put_if_absent(f"CUTOVER#classic/{blocked[0]}", started, now=0, expires_at=later)
    table.put_if_absent(f"CUTOVER#classic/{blocked[1]}", {"phase": "failed"}, now=0, expires_at=later)
    # When the account is audited
    code, out = run_cli(capsys, "--json")
    found = states(json.loads(out))
    # Then the first is a cutover in progress, the finished one is blocked again
    assert found[blocked[0]] == "cutover in progress"
    assert found[blocked[1]] == "blocked"
    assert code == 2


def test_fix_dry_run_prints_the_plan_and_fix_then_audit_exits_0(
    aws: object, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an account with drifted and broken units only, besides compliant and out of scope
    builder = AccountBuilder()
    for n in range(60):
        builder.classic(f"mx-{n:03d}", ("compliant", "drifted", "opted-out", "no-smtp")[n % 4])
        builder.nlb(f"nlb-{n:03d}", ("compliant", "drifted", "broken", "preserved")[n % 4])
    # When --fix --dry-run runs, nothing is written and the plan is printed
    code, out = run_cli(capsys, "--fix", "--dry-run")
    assert code == 2
    # Classic: create + attach; NLB: enable; broken: the placement
    assert sum(line.startswith("would: ") for line in out.splitlines()) == 15 * 2 + 15 + 15
    code, _ = run_cli(capsys)
    assert code == 2
    # When --fix runs, it prints what it changed
    code, out = run_cli(capsys, "--fix")
    assert code == 0
    assert sum(line.startswith("changed: ") for line in out.splitlines()) == 15 * 2 + 15 + 15
    # Then a new audit finds everything in scope compliant
    code, out = run_cli(capsys, "--json")
    report = json.loads(out)
    assert code == 0, report["summary"]
    assert set(report["summary"]["resources"]) == {"compliant", "out of scope"}


def test_fix_never_switches_a_blocked_unit_and_hands_it_to_the_functions(
    aws: object, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a drifted Classic ELB in front of a fleet instance that is not ready
    builder = AccountBuilder()
    (unready,) = builder.fleet(1, ready=False)
    builder.classic("mx-blocked", "blocked", [unready])
    # When --fix runs
    code, out = run_cli(capsys, "--fix")
    # Then the header stays off, and the command says who will switch it and how to trigger them
    assert code == 2
    assert "changed: " not in out
    assert "handed to the deployed functions" in out and "aws lambda invoke" in out
    policies = builder.elb.describe_load_balancers(LoadBalancerNames=["mx-blocked"])[
        "LoadBalancerDescriptions"
    ][0]
    assert policies.get("BackendServerDescriptions", []) == []


def test_an_aws_error_exits_1_with_the_error_and_no_traceback(
    aws: object, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an account whose EC2 listing is denied to the caller
    from botocore.exceptions import ClientError
    from proxymx import aws as aws_clients

    def deny(client: Any) -> None:
        def refuse(model: Any, **_: Any) -> None:
            if model.name == "DescribeInstances":
                raise ClientError(
                    {"Error": {"Code": "UnauthorizedOperation", "Message": "denied"}}, model.name
                )

        client.meta.events.register("provide-client-params", refuse)

    AccountBuilder().classic("mx-a", "compliant")
    aws_clients.add_client_observer(deny)
    try:
        # When it is audited
        code = main(["audit"])
    finally:
        aws_clients.remove_client_observer(deny)
    captured = capsys.readouterr()
    # Then the exit status is 1 and the AWS error is printed, never a traceback
    assert code == 1
    assert "UnauthorizedOperation" in captured.out
    assert "Traceback" not in captured.out + captured.err


def test_the_audit_reads_in_pages(aws: object) -> None:
    # Given 300 compliant Classic ELBs
    builder = AccountBuilder()
    for n in range(300):
        builder.classic(f"mx-{n:03d}", "compliant")
    # When they are audited
    report: AuditReport = Audit(settings_from_template(), Clients()).run()
    # Then: one page of load balancers, 15 DescribeTags, one instance page, one v2 page
    assert report.counts["compliant"] == 300
    assert Counter(f"{s}.{o}" for s, o in report.aws_calls) == Counter(
        {
            "elb.describe_load_balancers": 1,
            "elb.describe_tags": 15,
            "ec2.describe_instances": 1,
            "elbv2.describe_load_balancers": 1,
        }
    )


# ----- a moto server, reached as a real account is ----------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``moto_server`` on 127.0.0.1 and a random port; the process environment points at it."""
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.2)
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_audit_against_a_moto_server_through_aws_endpoint_url(moto_server: str) -> None:
    # Given an account of realistic size behind an AWS-compatible endpoint, where proxymx is
    # deployed: its kill switch on (without it the functions, and so the audit, say "paused") and
    # its state table (the flapping guard and the cutovers are read from it)
    seeded = realistic_account(load_balancers=150, instances=1500)
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    create_enabled_parameter(region)
    create_state_table(region)
    # When `proxymx audit --json` runs as a separate process, configured only by the standard AWS
    # environment (AWS_ENDPOINT_URL, credentials, region)
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_server}
    done = subprocess.run(
        [sys.executable, "-m", "proxymx_tools.cli", "audit", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # Then it audits that account as it was built, and gates with 2
    assert done.returncode == 2, (
        done.stderr[-2000:],
        [line for line in done.stdout.splitlines() if "rror" in line][:5],
    )
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert_json_shape(report)
    assert_audited_as_seeded(report, seeded)
