"""Readiness: the tag grammar of proxymx:proxy-protocol and what a tag covers (issue 7.1)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from proxymx.loadbalancer.readiness import (
    MAX_TAG_VALUE,
    REQUIRED_CONFIG_LEVEL,
    Readiness,
    Requirement,
    proves_plain,
    ready_tag_value,
    tag_value_from_summary,
)
from proxymx.postfix_summary import PostfixConfigResult, parse_summary

V2_ON_25 = Requirement((25,), "v2")
V1_ON_2525 = Requirement((2525,), "v1")
NOW = datetime(2026, 11, 30, 12, 5, 1, tzinfo=UTC)
PROVEN = "ready;ports=25,587;v=any;doc=2;ip6=1;at=20261130T120501Z"


def summary(**fields: object) -> PostfixConfigResult:
    base: dict[str, object] = {
        "proxymx": "postfix-summary",
        "schema": 2,
        "result": "configured",
        "postfix_version": "3.7.11",
        "smtp_ports": [25, 587],
        "verified": {"postscreen_upstream_proxy_protocol": "haproxy"},
        "listening": True,
        "running": True,
        "dry_run": False,
    }
    base.update(fields)
    parsed = parse_summary(json.dumps(base))
    assert parsed is not None, base
    return parsed


def test_bare_ready_is_the_operators_assertion_for_every_port_and_version() -> None:
    # Given a launch template's bare tag / When parsed
    readiness = Readiness.parse("ready")
    # Then it covers any port, v2, and IPv6 senders
    assert readiness.bare
    assert readiness.covers(Requirement((2525, 465), "v2", ipv6=True)) == (
        True,
        "ready (asserted by the operator)",
    )


def test_a_proven_tag_parses_every_field() -> None:
    readiness = Readiness.parse(PROVEN)
    assert readiness.state == "ready"
    assert readiness.ports == frozenset({25, 587})
    assert readiness.accepts == "any"
    assert readiness.config_level == 2
    assert readiness.ipv6 is True
    assert readiness.at == "20261130T120501Z"
    assert readiness.covers(Requirement((25, 587), "v2", ipv6=True)) == (True, "ready")


@pytest.mark.parametrize(
    ("value", "requirement", "reason"),
    [
        (PROVEN, Requirement((2525,), "v1"), "port 2525 not proven"),
        ("ready;ports=25;v=v1;doc=2;ip6=0", V2_ON_25, "reads v1 only, the target group sends v2"),
        ("ready;ports=25;v=any;doc=1;ip6=1", V2_ON_25, f"config level 1 < {REQUIRED_CONFIG_LEVEL}"),
        (
            "ready;ports=25;v=any;doc=2;ip6=0",
            Requirement((25,), "v2", ipv6=True),
            "IPv6 senders not proven (dual-stack NLB)",
        ),
    ],
)
def test_each_field_that_does_not_cover_names_its_reason(
    value: str, requirement: Requirement, reason: str
) -> None:
    assert Readiness.parse(value).covers(requirement) == (False, reason)


def test_v1_only_still_covers_a_classic_elb() -> None:
    assert Readiness.parse("ready;ports=2525;v=v1;doc=2;ip6=0").covers(V1_ON_2525) == (True, "ready")


def test_proven_plain_is_not_ready() -> None:
    readiness = Readiness.parse("plain;doc=2;at=20261130T120501Z")
    assert readiness.state == "plain"
    covered, why = readiness.covers(V1_ON_2525)
    assert not covered and "plain" in why


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "Ready",
        "yes",
        "ready;",
        "ready;ports=25",  # doc missing
        "ready;doc=2",  # ports missing
        "ready;ports=abc;doc=2",
        "ready;ports=0;doc=2",
        "ready;ports=25;v=v2;doc=2",
        "ready;ports=25;doc=2;ip6=yes",
        "ready;ports=25;doc=2;color=blue",
        "ready;ports=25;doc=2;doc=3",
        "ready;ports=25;doc=2;at=yesterday",
        "ready;ports",
        "ready;ports=25;doc=2;" + "x" * MAX_TAG_VALUE,
    ],
)
def test_garbage_is_not_ready_and_says_why(value: str | None) -> None:
    readiness = Readiness.parse(value)
    assert readiness.state == "unknown"
    covered, why = readiness.covers(V2_ON_25)
    assert not covered
    assert why == readiness.why and why


def test_written_tag_round_trips_and_stays_within_256_characters() -> None:
    # Given the largest port list a summary could carry
    value = ready_tag_value(range(1000, 1040), "any", 2, True, NOW)
    assert len(value) <= MAX_TAG_VALUE
    assert Readiness.parse(value).ports == frozenset(range(1000, 1040))
    with pytest.raises(ValueError, match="256"):
        ready_tag_value(range(10000, 10060), "any", 2, True, NOW)


def test_a_schema_2_summary_earns_the_tag_it_proved() -> None:
    value = tag_value_from_summary(
        summary(accepts="any", config_level=2, ipv6_clients=True, mode="configure"), NOW
    )
    assert value == PROVEN


def test_a_schema_1_summary_reads_defaults_level_1_no_ipv6() -> None:
    # Given a schema-1 summary of Postfix 3.4 (no PROXY v2)
    value = tag_value_from_summary(summary(schema=1, postfix_version="3.4.13"), NOW)
    # Then it is recorded as v1 only, level 1, no IPv6 -- and does not cover today's requirement
    assert value == "ready;ports=25,587;v=v1;doc=1;ip6=0;at=20261130T120501Z"
    assert Readiness.parse(value).covers(Requirement((25,), "v1"))[0] is False


def test_a_summary_that_proves_nothing_earns_no_tag() -> None:
    assert tag_value_from_summary(summary(result="failed"), NOW) is None
    assert tag_value_from_summary(summary(dry_run=True), NOW) is None


def test_a_revert_summary_earns_plain_only_when_it_proves_plain() -> None:
    reverted = summary(mode="revert", result="unchanged", config_level=2, verified={})
    assert proves_plain(reverted)
    assert tag_value_from_summary(reverted, NOW) == "plain;doc=2;at=20261130T120501Z"
    assert tag_value_from_summary(summary(mode="revert", result="unchanged", running=False), NOW) is None
