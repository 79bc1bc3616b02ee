"""The summary contract between the document's script and CheckOutcome (schema 2; schema 1 still read).

Every default is the safe one, and a test pins each (issue 9: a summary that omits ``listening``
or ``running`` must never prove anything)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from proxymx.postfix_summary import SUMMARY_MAX, parse_summary

SCHEMA_2: dict[str, Any] = {
    "proxymx": "postfix-summary",
    "schema": 2,
    "result": "configured",
    "mode": "configure",
    "postfix_version": "3.7.11",
    "proxy_protocol": "v2",
    "accepts": "any",
    "config_level": 2,
    "ipv6_clients": True,
    "smtp_ports": [25, 587],
    "changed": ["main.cf:postscreen_upstream_proxy_protocol", "master.cf:smtp/inet"],
    "verified": {"postscreen_upstream_proxy_protocol": "haproxy", "smtp/inet": "postscreen"},
    "listening": True,
    "running": True,
    "dry_run": False,
    "reason": None,
}
SCHEMA_1: dict[str, Any] = {
    key: value
    for key, value in SCHEMA_2.items()
    if key not in ("mode", "accepts", "config_level", "ipv6_clients")
} | {"schema": 1}
REVERTED: dict[str, Any] = SCHEMA_2 | {
    "result": "reverted",
    "mode": "revert",
    "proxy_protocol": None,
    "accepts": None,
    "changed": ["main.cf:postscreen_upstream_proxy_protocol"],
    "verified": {"postscreen_upstream_proxy_protocol": ""},
}


def output(summary: dict[str, Any], before: str = "proxymx: plan ...\nproxymx: done\n") -> str:
    return before + json.dumps(summary) + "\n"


def test_schema_2_is_read_whole() -> None:
    summary = parse_summary(output(SCHEMA_2))
    assert summary is not None
    assert (summary.schema_version, summary.result, summary.mode) == (2, "configured", "configure")
    assert (summary.postfix_version, summary.proxy_protocol, summary.accepts) == ("3.7.11", "v2", "any")
    assert (summary.config_level, summary.ipv6_clients) == (2, True)
    assert summary.smtp_ports == [25, 587]
    assert summary.changed == SCHEMA_2["changed"]
    assert summary.verified == SCHEMA_2["verified"]
    assert summary.proves_configuration
    assert not summary.proves_plain


def test_schema_1_is_read_with_the_safe_defaults() -> None:
    summary = parse_summary(output(SCHEMA_1))
    assert summary is not None
    assert (summary.schema_version, summary.mode, summary.accepts) == (1, "configure", None)
    assert (summary.config_level, summary.ipv6_clients) == (1, False)
    assert summary.proves_configuration


@pytest.mark.parametrize(
    ("field", "default"),
    [
        ("mode", "configure"),
        ("postfix_version", None),
        ("proxy_protocol", None),
        ("accepts", None),
        ("config_level", 1),
        ("ipv6_clients", False),
        ("smtp_ports", []),
        ("changed", []),
        ("verified", {}),
        ("listening", False),
        ("running", False),
        ("dry_run", False),
        ("reason", None),
    ],
)
def test_each_omitted_field_takes_its_safe_default(field: str, default: Any) -> None:
    # Given a schema-2 summary without the field / When parsed / Then the field has the safe default
    data = {key: value for key, value in SCHEMA_2.items() if key != field}
    summary = parse_summary(output(data))
    assert summary is not None
    assert getattr(summary, field) == default


@pytest.mark.parametrize("omitted", ["listening", "running", "verified", "result", "schema", "proxymx"])
def test_a_summary_that_omits_evidence_proves_nothing(omitted: str) -> None:
    data = {key: value for key, value in SCHEMA_2.items() if key != omitted}
    summary = parse_summary(output(data))
    assert summary is None or not summary.proves_configuration


@pytest.mark.parametrize(
    ("change", "proves"),
    [
        ({}, True),
        ({"result": "unchanged", "changed": []}, True),
        ({"result": "dry-run"}, False),
        ({"result": "failed"}, False),
        ({"result": "reverted"}, False),
        ({"mode": "revert"}, False),
        ({"dry_run": True}, False),
        ({"running": False}, False),
        ({"listening": False}, False),
        ({"verified": {"postscreen_upstream_proxy_protocol": ""}}, False),
        ({"verified": {"postscreen_upstream_proxy_protocol": "HAPROXY"}}, False),
    ],
)
def test_proves_configuration(change: dict[str, Any], proves: bool) -> None:
    summary = parse_summary(output(SCHEMA_2 | change))
    assert summary is not None
    assert summary.proves_configuration is proves


@pytest.mark.parametrize(
    ("change", "proves"),
    [
        ({}, True),
        ({"result": "unchanged", "changed": []}, True),
        ({"result": "configured"}, False),
        ({"result": "failed"}, False),
        ({"result": "dry-run"}, False),
        ({"mode": "configure"}, False),
        ({"dry_run": True}, False),
        ({"running": False}, False),
        ({"listening": False}, False),
    ],
)
def test_proves_plain(change: dict[str, Any], proves: bool) -> None:
    summary = parse_summary(output(REVERTED | change))
    assert summary is not None
    assert summary.proves_plain is proves
    assert not summary.proves_configuration


@pytest.mark.parametrize(
    "change",
    [
        {"schema": 3},
        {"schema": 0},
        {"schema": "2"},
        {"result": "done"},
        {"mode": "undo"},
        {"proxy_protocol": "v3"},
        {"accepts": "v2"},
        {"config_level": 0},
        {"config_level": "2"},
        {"ipv6_clients": "true"},
        {"running": "true"},
        {"listening": 1},
        {"dry_run": 0},
        {"smtp_ports": [0]},
        {"smtp_ports": [65536]},
        {"smtp_ports": ["25"]},
        {"smtp_ports": 25},
        {"changed": "main.cf"},
        {"verified": ["postscreen_upstream_proxy_protocol"]},
        {"verified": {"postscreen_upstream_proxy_protocol": True}},
        {"postfix_version": "$(id)"},
        {"reason": 5},
    ],
)
def test_a_summary_of_the_wrong_shape_is_no_summary(change: dict[str, Any]) -> None:
    # Strict JSON types: "true" is not true, 1 is not true, "25" is not a port
    assert parse_summary(output(SCHEMA_2 | change)) is None


def test_the_last_line_rule() -> None:
    # A summary that is not the last line is not the summary
    assert parse_summary(output(SCHEMA_2) + "proxymx: trailing noise\n") is None
    # Blank lines after it do not count
    assert parse_summary(output(SCHEMA_2) + "\n  \n") is not None
    # Anything but a JSON object with our marker is not a summary
    assert parse_summary("") is None
    assert parse_summary("[1, 2]\n") is None
    assert parse_summary('{"proxymx": "other"}\n') is None
    assert parse_summary("{not json\n") is None


def test_a_last_line_longer_than_the_limit_is_not_a_summary() -> None:
    # Given summaries padded to exactly the limit and one character beyond
    base = json.dumps(SCHEMA_2 | {"reason": ""})
    at_limit = SCHEMA_2 | {"reason": "r" * (SUMMARY_MAX - len(base))}
    beyond = SCHEMA_2 | {"reason": "r" * (SUMMARY_MAX - len(base) + 1)}
    assert len(json.dumps(at_limit)) == SUMMARY_MAX
    # Then the first is read and the second is not (SSM keeps only the output's beginning)
    assert parse_summary(output(at_limit)) is not None
    assert parse_summary(output(beyond)) is None
    assert SUMMARY_MAX == 2000


# ----- the bounds, each side (mutation testing: a bound moved by one must fail a test) ---------


@pytest.mark.parametrize(
    ("change", "accepted"),
    [
        ({"proxy_protocol": "v1"}, True),
        ({"proxy_protocol": "v2"}, True),
        ({"proxy_protocol": "any"}, True),
        ({"proxy_protocol": "v3"}, False),
        ({"accepts": "v1"}, True),
        ({"accepts": "any"}, True),
        ({"accepts": "v2"}, False),
        ({"config_level": 1}, True),
        ({"config_level": 0}, False),
        ({"config_level": 99}, True),
        ({"config_level": 100}, False),
        ({"smtp_ports": [1, 65535]}, True),
        ({"smtp_ports": [0]}, False),
        ({"smtp_ports": [65536]}, False),
        ({"smtp_ports": list(range(1, 65))}, True),
        ({"smtp_ports": list(range(1, 66))}, False),
        ({"changed": [f"c{i}" for i in range(64)]}, True),
        ({"changed": [f"c{i}" for i in range(65)]}, False),
        ({"verified": {f"k{i}": "v" for i in range(64)}}, True),
        ({"verified": {f"k{i}": "v" for i in range(65)}}, False),
        ({"postfix_version": "3" + "." * 63}, True),
        ({"postfix_version": "3" + "." * 64}, False),
    ],
)
def test_each_bound_accepts_its_edge_and_refuses_one_past_it(change: dict[str, Any], accepted: bool) -> None:
    # Given a schema-2 summary with one field at (or one past) its bound
    # When parsed / Then it is a summary exactly when the value is within the contract
    summary = parse_summary(output(SCHEMA_2 | change))
    assert (summary is not None) is accepted
    if summary is not None:
        ((field, value),) = change.items()
        assert getattr(summary, field) == value
