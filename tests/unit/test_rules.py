"""The template's EventBridge rules against events/: each event matches exactly the rules it should.

Driven by events/expected.json (the same manifest `proxymx demo` checks), so every event
added to events/ must say which rules it reaches.
"""

from __future__ import annotations

import json

import pytest
from proxymx_tools import template as tpl
from proxymx_tools.eventpattern import matches
from proxymx_tools.runner import resolve, route
from support import EVENTS_DIR, expected_events, load_event

TEMPLATE = tpl.load_template()
MANIFEST = expected_events()
SAMPLES = sorted(p.name for p in EVENTS_DIR.glob("*.json") if p.name != "expected.json")


def matched_rules(event: object) -> list[str]:
    return sorted({r.rule for r in route(event, TEMPLATE)})


def test_every_sample_event_is_in_the_manifest() -> None:
    # Given events/ / Then none is missing from expected.json, and expected.json names no ghost
    assert sorted(set(SAMPLES) - set(MANIFEST)) == []
    assert sorted(set(MANIFEST) - set(SAMPLES)) == []


@pytest.mark.parametrize("name", SAMPLES)
def test_each_event_matches_exactly_its_rules(name: str) -> None:
    # Given a sample event / When routed through every rule of template.yaml
    # Then exactly the expected rules match
    assert matched_rules(load_event(name)) == sorted(MANIFEST[name]["rules"])


def test_every_rule_of_the_template_is_exercised_by_some_event() -> None:
    used = {rule for entry in MANIFEST.values() for rule in entry["rules"]}
    assert {rule.logical_id for rule in tpl.event_rules(TEMPLATE)} <= used


@pytest.mark.parametrize(
    "rule_id", ["EnableProxyProtocolFunctionClassicElbApiCall", "EnableProxyProtocolFunctionElbV2ApiCall"]
)
def test_the_load_balancer_rules_retry_and_dead_letter(rule_id: str) -> None:
    # Given the function's EventBridge rule / Then it has a RetryPolicy and a DeadLetterConfig
    event_id = rule_id.removeprefix("EnableProxyProtocolFunction")
    props = TEMPLATE["Resources"]["EnableProxyProtocolFunction"]["Properties"]["Events"][event_id][
        "Properties"
    ]
    assert props["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert props["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["EnableProxyProtocolDLQ", "Arn"]}


def test_a_failed_call_is_dropped_by_the_pattern_and_our_drift_events_are_not() -> None:
    # Given the drift event with an errorCode added / Then no rule matches it any more
    event = load_event("nlb-drift-proxy-disabled")
    assert matched_rules(event) == ["EnableProxyProtocolFunctionElbV2ApiCall"]
    event["detail"]["errorCode"] = "AccessDenied"
    assert matched_rules(event) == []


def test_modify_target_group_attributes_without_the_proxy_attribute_is_not_routed() -> None:
    event = load_event("nlb-drift-proxy-disabled")
    event["detail"]["requestParameters"]["attributes"] = [{"key": "stickiness.enabled", "value": "true"}]
    assert matched_rules(event) == []


@pytest.mark.parametrize(
    ("sample", "rule"),
    [
        ("elb-add-tags-off", "EnableProxyProtocolFunctionClassicElbApiCall"),
        ("nlb-add-tags-unrelated", "EnableProxyProtocolFunctionElbV2ApiCall"),
    ],
)
def test_add_tags_is_routed_only_when_it_sets_our_tag(sample: str, rule: str) -> None:
    # Given an AddTags of both APIs / Then only one that sets proxymx:proxy-protocol reaches the
    # function, among other tags or alone; any other key, or a failed call, does not
    event = load_event(sample)
    event["detail"]["requestParameters"]["tags"] = [{"key": "cost-center", "value": "mail"}]
    assert matched_rules(event) == []
    event["detail"]["requestParameters"]["tags"] = [
        {"key": "cost-center", "value": "mail"},
        {"key": "proxymx:proxy-protocol", "value": "off"},
    ]
    assert matched_rules(event) == [rule]
    event["detail"]["errorCode"] = "AccessDenied"
    assert matched_rules(event) == []


def test_a_read_only_elb_call_is_not_routed() -> None:
    event = load_event("elb-create-smtp")
    event["detail"]["eventName"] = "DescribeLoadBalancers"
    assert matched_rules(event) == []


def test_patterns_are_valid_json_for_eventbridge() -> None:
    # Every resolved pattern is plain JSON and accepted by the matcher (no PatternError).
    for rule in tpl.event_rules(TEMPLATE):
        pattern = resolve(TEMPLATE, rule.pattern)
        json.dumps(pattern)
        matches(pattern, {})
