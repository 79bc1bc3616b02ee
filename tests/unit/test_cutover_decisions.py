"""The cutover's pure decisions (issue 7.3): when a blocked unit is cut over, what a record asks for
next, the comments that route status events, the gap. Each branch pinned."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from proxymx.loadbalancer.cutover import (
    CONFIGURE_COMMENT,
    RETRY_AFTER_SECONDS,
    comment_for,
    decide_start,
    digest,
    document_parameters_for,
    gap_seconds,
    next_step,
    parse_comment,
    rate_key,
    requirement_of,
)
from proxymx.loadbalancer.plan import Blocked
from proxymx.loadbalancer.readiness import Requirement
from proxymx.loadbalancer.targets import Unready

NOW = 1_800_000_000
V1_25 = Requirement((25,), "v1")


def blocked(*targets: tuple[str, bool]) -> Blocked:
    return Blocked("classic/mx", V1_25, tuple(Unready(t, "no tag", fleet) for t, fleet in targets))


FLEET = blocked(("i-b", True), ("i-a", True))


# ----- decide_start ------------------------------------------------------------------------------


def test_an_unready_fleet_with_no_record_is_cut_over_every_target_sorted() -> None:
    decision = decide_start(FLEET, cutover="auto", record=None, now=NOW)
    assert (decision.start, decision.targets) == (True, ("i-a", "i-b"))
    assert decision.reason == "cutover: 2 target(s) to configure first"


def test_cutover_off_never_starts() -> None:
    decision = decide_start(FLEET, cutover="off", record=None, now=NOW)
    assert not decision.start and "Cutover=off" in decision.reason and decision.targets == ()


def test_one_target_outside_the_fleet_means_no_cutover_at_all() -> None:
    decision = decide_start(blocked(("i-a", True), ("i-x", False)), cutover="auto", record=None, now=NOW)
    assert not decision.start
    assert decision.reason.startswith("no cutover: 1 target(s) outside the fleet (i-x)")


@pytest.mark.parametrize("phase", ["configuring", "switching", "reverting"])
def test_a_cutover_in_flight_is_not_started_again(phase: str) -> None:
    decision = decide_start(FLEET, cutover="auto", record={"phase": phase, "retry_after": 0}, now=NOW)
    assert (decision.start, decision.reason) == (False, f"cutover in flight ({phase})")


def test_a_failed_cutover_waits_for_its_retry_after() -> None:
    record = {"phase": "failed", "retry_after": NOW + 1, "reason": "target(s) failed: i-a"}
    decision = decide_start(FLEET, cutover="auto", record=record, now=NOW)
    assert not decision.start
    assert "last cutover failed (target(s) failed: i-a); not retried before" in decision.reason
    # (how to retry sooner: the CLI that deletes CUTOVER#classic/mx)
    assert "`proxymx cutover clear classic/mx` to retry now" in decision.reason


def test_a_held_cutover_is_in_flight_and_waits() -> None:
    # A cutover held by the operator's brake is not over: no second one starts, nothing advances.
    record = {"phase": "held", "resume": "switch", "targets": {"i-a": "proven"}}
    decision = decide_start(FLEET, cutover="auto", record=record, now=NOW)
    assert (decision.start, decision.reason) == (False, "cutover in flight (held)")
    assert next_step(record) == "wait"


@pytest.mark.parametrize("phase", ["failed", "switched", "cancelled"])
def test_a_terminal_cutover_past_its_retry_after_starts_again(phase: str) -> None:
    decision = decide_start(FLEET, cutover="auto", record={"phase": phase, "retry_after": NOW}, now=NOW)
    assert decision.start


# ----- next_step ---------------------------------------------------------------------------------


def record(phase: str, **targets: str) -> dict[str, Any]:
    return {"phase": phase, "targets": targets}


@pytest.mark.parametrize(
    ("given", "step"),
    [
        (record("configuring", a="proven", b="proven"), "switch"),
        (record("configuring", a="proven", b="pending"), "wait"),
        (record("configuring", a="pending", b="failed"), "revert"),
        (record("configuring", a="proven", b="failed"), "revert"),
        (record("configuring"), "wait"),
        (record("reverting", a="reverted", b="failed"), "fail"),
        (record("reverting", a="reverted", b="revert-failed"), "fail"),
        (record("reverting", a="reverting", b="failed"), "wait"),
        (record("reverting", a="pending", b="failed"), "wait"),
        (record("reverting", a="proven", b="failed"), "wait"),
        (record("switching", a="proven"), "wait"),
        (record("switched", a="proven"), "wait"),
        (record("failed", a="reverted"), "wait"),
    ],
)
def test_next_step(given: dict[str, Any], step: str) -> None:
    assert next_step(given) == step


# ----- comments, keys, parameters ----------------------------------------------------------------


def test_comments_round_trip_and_fit_sendcommand() -> None:
    unit = (
        "tg/arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/" + "x" * 32 + "/0123456789abcdef"
    )
    for kind in ("configure", "revert", "off"):
        comment = comment_for(kind, unit)  # type: ignore[arg-type]
        assert len(comment) <= 100
        assert parse_comment(comment) == (kind, digest(unit))


@pytest.mark.parametrize(
    "comment",
    [
        "",
        "proxymx",
        'proxymx:["mx","hook"]',
        CONFIGURE_COMMENT,
        CONFIGURE_COMMENT + "0" * 15,
        CONFIGURE_COMMENT + "G" * 16,
    ],
)
def test_other_comments_are_not_cutover_commands(comment: str) -> None:
    assert parse_comment(comment) is None


def test_digests_differ_per_unit() -> None:
    assert digest("classic/a") != digest("classic/b") and len(digest("classic/a")) == 16


def test_rate_key_is_the_utc_hour() -> None:
    assert rate_key(datetime(2026, 12, 1, 0, 59, 59, tzinfo=UTC)) == "RATE#cutover#20261201T00"


def test_gap_is_first_proof_to_switch_never_negative() -> None:
    assert gap_seconds(100, 107) == 7
    assert gap_seconds(None, 107) == 0
    assert gap_seconds(110, 107) == 0


def test_requirement_round_trips_through_the_record() -> None:
    assert requirement_of({"ports": "25,2525", "version": "v2", "ipv6": True}) == Requirement(
        (25, 2525), "v2", True
    )
    assert requirement_of({"ports": "25", "version": "v1"}) == Requirement((25,), "v1", False)


def test_the_document_is_asked_for_the_units_ports_and_version() -> None:
    assert document_parameters_for(Requirement((25, 2525), "v2"), "configure") == {
        "SmtpPorts": "25,2525",
        "ProxyProtocol": "v2",
        "Mode": "configure",
    }
    assert document_parameters_for(V1_25, "revert")["Mode"] == "revert"


def test_a_failed_cutover_waits_six_hours() -> None:
    assert RETRY_AFTER_SECONDS == 6 * 3600


def test_a_launch_in_pending_wait_holds_the_cutover_until_it_is_in_service() -> None:
    racing = Blocked(
        "classic/mx",
        V1_25,
        (Unready("i-a", "no tag", True), Unready("i-new", "no tag", True, launching=True)),
    )
    decision = decide_start(racing, cutover="auto", record=None, now=NOW)
    assert not decision.start
    assert decision.reason.startswith("no cutover yet: 1 launch(es) in Pending:Wait (i-new)")
