"""Pure launch-flow decisions: command context, the verdict on a run, scope, document parameters."""

from __future__ import annotations

import json
import re

import pytest
from proxymx.config import Settings, load_settings
from proxymx.launch.context import decode_comment, encode_comment
from proxymx.launch.plan import Invocation, Launch, document_parameters, judge
from proxymx.models.lifecycle import parse_lifecycle_event
from proxymx.scope import launch_out_of_scope
from proxymx_tools.summary import failed_summary, proving_summary
from proxymx_tools.template import document, load_template
from support import load_event


def _invocation(stdout: str = "", stderr: str = "", code: int = 0, status: str = "Success") -> Invocation:
    return Invocation("c" * 36, "i-0a1b2c3d4e5f60718", "doc", status, status, code, stdout, stderr, "")


# ----- comment context
def test_comment_round_trips_group_and_hook() -> None:
    comment = encode_comment("mx-fleet-eu", "proxymx-postfix-launch")
    assert len(comment) <= 100
    context = decode_comment(comment)
    assert context is not None
    assert (context.group_name, context.hook_name) == ("mx-fleet-eu", "proxymx-postfix-launch")


def test_names_too_long_for_a_comment_fall_back_to_lookup() -> None:
    comment = encode_comment("g" * 80, "proxymx-postfix-launch")
    assert comment == "proxymx"
    assert decode_comment(comment) is None


@pytest.mark.parametrize(
    "comment", ["", "someone else's", "proxymx:[1,2]", "proxymx:{", 'proxymx:["only-one"]']
)
def test_foreign_or_broken_comments_give_no_context(comment: str) -> None:
    assert decode_comment(comment) is None


# ----- verdict
def test_success_with_a_proving_summary_continues() -> None:
    verdict = judge("Success", _invocation("configured\n" + proving_summary() + "\n"))
    assert verdict.result == "CONTINUE"
    assert "3.7.11" in verdict.reason


def test_unchanged_second_run_also_proves() -> None:
    verdict = judge("Success", _invocation(proving_summary(result="unchanged")))
    assert verdict.result == "CONTINUE"


def test_success_without_summary_abandons() -> None:
    verdict = judge("Success", _invocation("all good, trust me\n"))
    assert verdict.result == "ABANDON"
    assert "no summary" in verdict.reason


def test_success_whose_summary_is_not_last_abandons() -> None:
    verdict = judge("Success", _invocation(proving_summary() + "\ntrailing noise\n"))
    assert verdict.result == "ABANDON"


def test_dry_run_summary_does_not_prove() -> None:
    summary = proving_summary(result="dry-run")
    verdict = judge("Success", _invocation(summary))
    assert verdict.result == "ABANDON"
    assert "result=dry-run" in verdict.reason


def test_failed_run_abandons_with_the_scripts_reason() -> None:
    verdict = judge("Failed", _invocation(failed_summary("Postfix 3.4.13 is too old for PROXY v2"), code=1))
    assert verdict.result == "ABANDON"
    assert "too old for PROXY v2" in verdict.reason


def test_failed_run_without_summary_gives_the_exit_code() -> None:
    verdict = judge("Failed", _invocation("", "postconf: not found", code=127, status="Failed"))
    assert verdict == verdict.__class__("ABANDON", "Failed (exit code 127)", None)


@pytest.mark.parametrize("status", ["TimedOut", "DeliveryTimedOut", "ExecutionTimedOut"])
def test_timeouts_abandon(status: str) -> None:
    verdict = judge(status, _invocation(code=-1, status=status))
    assert verdict.result == "ABANDON"
    assert "timed out" in verdict.reason


def test_undeliverable_abandons() -> None:
    verdict = judge("Undeliverable", None)
    assert verdict.result == "ABANDON"
    assert "could not be reached" in verdict.reason


# ----- scope
def out_of_scope(name: str, settings: Settings) -> str | None:
    launch = Launch.from_event(parse_lifecycle_event(load_event(name)))
    return launch_out_of_scope(launch.group_name, launch.hook_name, settings)


def test_our_hook_is_in_scope_by_default() -> None:
    assert out_of_scope("lifecycle-launch", load_settings({})) is None


def test_someone_elses_hook_is_out_of_scope() -> None:
    reason = out_of_scope("lifecycle-out-of-scope", load_settings({}))
    assert reason is not None and "someone-elses-hook" in reason


def test_named_groups_narrow_the_scope() -> None:
    # (the template's pattern has no spaces around the commas; tests/unit/test_settings.py pins
    # that the code refuses them too)
    settings = load_settings({"LAUNCH_GROUP_NAMES": "mx-eu,mx-us"})
    assert settings.launch_group_names == ("mx-eu", "mx-us")
    reason = out_of_scope("lifecycle-launch", settings)
    assert reason is not None and "proxymx-mx-fleet" in reason
    assert out_of_scope("lifecycle-launch", load_settings({"LAUNCH_GROUP_NAMES": "proxymx-mx-fleet"})) is None


# ----- the document's parameters, as the template declares them
@pytest.mark.parametrize(
    "env",
    [
        {},
        {
            "SMTP_PORTS": "25,587,465",
            "PROXY_PROTOCOL": "v2",
            "UPSTREAM_PROXY_TIMEOUT": "10s",
            "DRY_RUN": "true",
        },
        {"PROXY_PROTOCOL": "v1"},
    ],
)
def test_parameters_we_send_satisfy_the_documents_patterns(env: dict[str, str]) -> None:
    declared = document(load_template())["parameters"]
    sent = document_parameters(load_settings(env))
    assert set(sent) <= set(declared)
    for name, value in sent.items():
        pattern = declared[name].get("allowedPattern")
        assert pattern is None or re.search(pattern, value), f"{name}={value!r} vs {pattern}"


def test_settings_refuse_a_timeout_the_document_would_refuse() -> None:
    with pytest.raises(ValueError, match="UPSTREAM_PROXY_TIMEOUT"):
        load_settings({"UPSTREAM_PROXY_TIMEOUT": "5m"})


# ----- verdicts, word for word (operators read them in notifications; make mutation) --------


def _revert_summary(**changes: object) -> str:
    summary = {
        "proxymx": "postfix-summary",
        "schema": 2,
        "result": "reverted",
        "mode": "revert",
        "postfix_version": "3.7.11",
        "smtp_ports": [25],
        "changed": ["main.cf:postscreen_upstream_proxy_protocol"],
        "verified": {"postscreen_upstream_proxy_protocol": ""},
        "listening": True,
        "running": True,
        "dry_run": False,
    }
    return json.dumps(summary | changes)


def test_a_revert_run_that_proves_postfix_plain_continues() -> None:
    # Given a launch behind units that send no header (issue 7.4), whose run reverted and proved it
    verdict = judge("Success", _invocation(_revert_summary()))
    # Then the instance goes in service: plain is what it must be
    assert (verdict.result, verdict.reason) == ("CONTINUE", "Postfix 3.7.11 proven plain")


def test_a_revert_run_that_does_not_prove_plain_abandons() -> None:
    verdict = judge("Success", _invocation(_revert_summary(running=False)))
    assert (verdict.result, verdict.reason) == (
        "ABANDON",
        "the revert run does not prove Postfix plain (result=reverted)",
    )


def test_the_verdicts_reasons_word_for_word() -> None:
    assert judge("Success", _invocation("no line\n")).reason == (
        "the document succeeded but printed no summary line"
    )
    no_version = judge("Success", _invocation(proving_summary().replace('"3.7.11"', "null")))
    assert (no_version.result, no_version.reason) == ("CONTINUE", "Postfix ? configured and verified")
    dry = judge("Success", _invocation(proving_summary(result="dry-run")))
    assert dry.reason == (
        "the summary does not prove the configuration (result=dry-run, running=True, listening=True, "
        "dry_run=False)"
    )
    assert judge("Undeliverable", None).reason == "undeliverable: the SSM agent could not be reached"
    assert judge("Failed", None).reason == "Failed (exit code -1)"
