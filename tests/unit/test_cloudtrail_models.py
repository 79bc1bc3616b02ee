"""CloudTrail ELB event models: Classic vs v2, failed calls, who did it, one clear error."""

from __future__ import annotations

from typing import Any

import pytest
from proxymx.errors import MalformedEvent
from proxymx.models.cloudtrail import (
    ClassicCreateLoadBalancer,
    ClassicCreateLoadBalancerListeners,
    ClassicDeletePolicy,
    ClassicRegisterInstances,
    ClassicSetBackendPolicies,
    FailedElbCall,
    OtherElbCall,
    V2CreateListener,
    V2CreateLoadBalancer,
    V2CreateTargetGroup,
    V2ModifyListener,
    V2ModifyTargetGroupAttributes,
    V2RegisterTargets,
    parse_elb_event,
)
from support import load_event


@pytest.mark.parametrize(
    ("name", "model", "drift"),
    [
        ("elb-create-smtp", ClassicCreateLoadBalancer, False),
        ("elb-create-listeners", ClassicCreateLoadBalancerListeners, False),
        ("elb-drift-backend-detached", ClassicSetBackendPolicies, True),
        ("elb-drift-policy-deleted", ClassicDeletePolicy, True),
        ("elb-failed-call", FailedElbCall, False),
        ("nlb-create", V2CreateLoadBalancer, False),
        ("nlb-create-application-lb", V2CreateLoadBalancer, False),
        ("nlb-create-target-group", V2CreateTargetGroup, False),
        ("nlb-create-listener", V2CreateListener, False),
        ("nlb-modify-listener", V2ModifyListener, False),
        ("nlb-drift-proxy-disabled", V2ModifyTargetGroupAttributes, True),
    ],
)
def test_each_sample_event_parses_into_its_typed_detail(name: str, model: type, drift: bool) -> None:
    # Given a sample event / When parsed / Then the detail has the model of its (apiVersion, eventName)
    parsed = parse_elb_event(load_event(name))
    assert type(parsed.detail) is model
    assert parsed.detail.is_drift is drift


def test_classic_and_v2_create_load_balancer_are_told_apart_by_api_version() -> None:
    # Given the same eventName in the two API versions
    classic = parse_elb_event(load_event("elb-create-smtp")).detail
    v2 = parse_elb_event(load_event("nlb-create")).detail
    # Then each gets its own request shape
    assert isinstance(classic, ClassicCreateLoadBalancer)
    assert classic.request_parameters.load_balancer_name == "mx-inbound"
    assert [li.instance_port for li in classic.request_parameters.listeners] == [25, 8080]
    assert isinstance(v2, V2CreateLoadBalancer)
    assert v2.request_parameters.type == "network"
    assert v2.response_elements is not None
    assert v2.response_elements.load_balancers[0].load_balancer_arn.endswith("/net/mx-nlb/5d8e9f0a1b2c3d4e")


def test_a_v2_load_balancer_without_type_is_an_application_load_balancer() -> None:
    # Given CreateLoadBalancer without Type (the API's default is application)
    detail = parse_elb_event(load_event("nlb-create-application-lb")).detail
    # Then the model says so
    assert isinstance(detail, V2CreateLoadBalancer)
    assert detail.request_parameters.type == "application"


def test_a_failed_call_parses_loosely_and_keeps_its_error_code() -> None:
    # Given a call that failed, with a partial request
    event = load_event("elb-failed-call")
    event["detail"]["requestParameters"] = {"listeners": "garbage"}
    # When parsed / Then it is a FailedElbCall (nothing to validate: it changed nothing)
    detail = parse_elb_event(event).detail
    assert isinstance(detail, FailedElbCall)
    assert detail.error_code == "DuplicateLoadBalancerName"


def test_an_elb_call_we_do_not_act_on_is_other() -> None:
    event = load_event("elb-create-smtp")
    event["detail"]["eventName"] = "ConfigureHealthCheck"
    assert isinstance(parse_elb_event(event).detail, OtherElbCall)


def test_who_made_the_call_and_the_role_behind_it() -> None:
    # Given a drift by an SSO user and a change by our own function
    drift = parse_elb_event(load_event("elb-drift-backend-detached")).detail.user_identity
    own = parse_elb_event(load_event("elb-own-change")).detail.user_identity
    # Then "who" names the person, and the issuer is the role ARN we compare with SELF_ROLE_ARNS
    assert drift.who.endswith("/bob@example.com")
    assert own.issuer_arn == "arn:aws:iam::123456789012:role/proxymx-EnableProxyProtocolFunctionRole"


def test_modify_target_group_attributes_is_drift_only_when_it_disables_proxy_protocol() -> None:
    event = load_event("nlb-drift-proxy-disabled")
    event["detail"]["requestParameters"]["attributes"] = [
        {"key": "proxy_protocol_v2.enabled", "value": "true"}
    ]
    assert parse_elb_event(event).detail.is_drift is False


@pytest.mark.parametrize("recorded", [[], None, "absent"])
def test_detaching_every_backend_policy_is_drift_however_it_is_recorded(recorded: Any) -> None:
    # Given SetLoadBalancerPoliciesForBackendServer with PolicyNames=[] (removes the PROXY policy too),
    # its policyNames recorded as [], null or not at all
    event = load_event("elb-drift-backend-detached")
    if recorded == "absent":
        del event["detail"]["requestParameters"]["policyNames"]
    else:
        event["detail"]["requestParameters"]["policyNames"] = recorded
    # When parsed / Then it is the drift call, not a malformed event
    detail = parse_elb_event(event).detail
    assert isinstance(detail, ClassicSetBackendPolicies)
    assert detail.is_drift
    assert detail.request_parameters.policy_names == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "malformed-elb-missing-load-balancer-name",
            "detail.requestParameters.loadBalancerName: field required",
        ),
        (
            "malformed-elb-bad-instance-port",
            "detail.requestParameters.listeners[0].instancePort: input should be a valid integer",
        ),
        ("malformed-elb-missing-target-group-arn", "detail.requestParameters.targetGroupArn: field required"),
        ("malformed-elb-no-user-identity", "detail.userIdentity: field required"),
    ],
)
def test_a_malformed_sample_event_gets_one_clear_message_naming_the_field(name: str, message: str) -> None:
    # Given a malformed sample event / When parsed / Then MalformedEvent names the field
    with pytest.raises(MalformedEvent) as raised:
        parse_elb_event(load_event(name))
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e["detail"].update(apiVersion="2099-01-01"), "detail.apiVersion: apiVersion must be"),
        (lambda e: e["detail"].pop("apiVersion"), "detail.apiVersion: apiVersion must be"),
        (lambda e: e.update(source="aws.ec2"), "source: input should be 'aws.elasticloadbalancing'"),
        (lambda e: e.pop("detail"), "detail: field required"),
        (lambda e: e["detail"].update(eventTime="yesterday"), "detail.eventTime:"),
    ],
)
def test_envelope_errors_name_the_field(mutate: Any, message: str) -> None:
    event = load_event("elb-create-smtp")
    mutate(event)
    with pytest.raises(MalformedEvent) as raised:
        parse_elb_event(event)
    assert str(raised.value).startswith(message)


def test_an_event_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(MalformedEvent, match="expected a JSON object"):
        parse_elb_event(["not", "an", "event"])


def test_modify_listener_names_its_load_balancer_through_the_listener_arn() -> None:
    # Given ModifyListener (its request carries only the listener's ARN and what changed)
    detail = parse_elb_event(load_event("nlb-modify-listener")).detail
    # Then the load balancer is the one the listener ARN embeds
    assert isinstance(detail, V2ModifyListener)
    assert detail.request_parameters.load_balancer_arn == (
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/mx-nlb/5d8e9f0a1b2c3d4e"
    )


@pytest.mark.parametrize(
    "listener_arn", [None, "", "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/net/x/y"]
)
def test_modify_listener_without_a_listener_arn_is_malformed(listener_arn: Any) -> None:
    # Given a ModifyListener whose listenerArn is missing or not a listener's
    event = load_event("nlb-modify-listener")
    event["detail"]["requestParameters"]["listenerArn"] = listener_arn
    # When parsed / Then one error names the field
    with pytest.raises(MalformedEvent, match="listenerArn"):
        parse_elb_event(event)


def _registration(event_name: str, api_version: str, request: Any) -> dict[str, Any]:
    event = load_event("elb-create-listeners")
    event["detail"].update(eventName=event_name, apiVersion=api_version, requestParameters=request)
    return event


def test_registrations_parse_into_their_targets() -> None:
    # Given the two registration calls (issue 7.2: registration is a write too)
    classic = parse_elb_event(
        _registration(
            "RegisterInstancesWithLoadBalancer",
            "2012-06-01",
            {"loadBalancerName": "mx", "instances": [{"instanceId": "i-0a"}, {"instanceId": "i-0b"}]},
        )
    ).detail
    v2 = parse_elb_event(
        _registration(
            "RegisterTargets",
            "2015-12-01",
            {"targetGroupArn": "arn:tg", "targets": [{"id": "i-0c", "port": 2525}, {"id": "10.0.0.9"}]},
        )
    ).detail
    # Then each names its unit and its targets (a per-target port when the call gave one)
    assert isinstance(classic, ClassicRegisterInstances)
    assert classic.request_parameters.load_balancer_name == "mx"
    assert [i.instance_id for i in classic.request_parameters.instances] == ["i-0a", "i-0b"]
    assert isinstance(v2, V2RegisterTargets)
    assert [(t.id, t.port) for t in v2.request_parameters.targets] == [("i-0c", 2525), ("10.0.0.9", None)]


@pytest.mark.parametrize(
    ("event_name", "api_version", "request_parameters", "field"),
    [
        (
            "RegisterInstancesWithLoadBalancer",
            "2012-06-01",
            {"loadBalancerName": "mx", "instances": []},
            "instances",
        ),
        (
            "RegisterInstancesWithLoadBalancer",
            "2012-06-01",
            {"loadBalancerName": "mx", "instances": [{}]},
            "instanceId",
        ),
        ("RegisterTargets", "2015-12-01", {"targetGroupArn": "arn:tg"}, "targets"),
        (
            "RegisterTargets",
            "2015-12-01",
            {"targetGroupArn": "arn:tg", "targets": [{"id": "i-0a", "port": 0}]},
            "port",
        ),
    ],
)
def test_a_malformed_registration_names_the_field(
    event_name: str, api_version: str, request_parameters: Any, field: str
) -> None:
    with pytest.raises(MalformedEvent, match=field):
        parse_elb_event(_registration(event_name, api_version, request_parameters))
