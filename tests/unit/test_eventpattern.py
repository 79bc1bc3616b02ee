"""The EventBridge pattern matcher, case by case against the documented semantics."""

from __future__ import annotations

from typing import Any

import pytest
from proxymx_tools.eventpattern import PatternError, matches

MODIFY_LOWER = "modifytargetgroupattributes"
EVENT: dict[str, Any] = {
    "source": "aws.elasticloadbalancing",
    "detail-type": "AWS API Call via CloudTrail",
    "detail": {
        "eventName": "ModifyTargetGroupAttributes",
        "apiVersion": "2015-12-01",
        "sourceIPAddress": "10.0.3.7",
        "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::123456789012:assumed-role/Ops/alice"},
        "requestParameters": {
            "targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/smtp/abc",
            "attributes": [
                {"key": "deregistration_delay.timeout_seconds", "value": "30"},
                {"key": "proxy_protocol_v2.enabled", "value": "false"},
            ],
        },
        "port": 25,
        "ratio": 0.5,
        "enabled": True,
        "nothing": None,
        "tags": ["smtp", "prod"],
        "empty": [],
    },
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        # exact values, OR within an array, AND across fields
        ({"source": ["aws.elasticloadbalancing"]}, True),
        ({"source": ["aws.ec2", "aws.elasticloadbalancing"]}, True),
        ({"source": ["aws.ec2"]}, False),
        ({"source": ["aws.elasticloadbalancing"], "detail-type": ["Other"]}, False),
        ({"detail": {"port": [25]}}, True),
        ({"detail": {"port": [25.0]}}, True),
        ({"detail": {"port": ["25"]}}, False),  # types are not coerced
        ({"detail": {"enabled": [True]}}, True),
        ({"detail": {"enabled": ["true"]}}, False),
        ({"detail": {"nothing": [None]}}, True),
        ({"detail": {"missing": [None]}}, False),  # null does not match an absent field
        # nested objects
        ({"detail": {"userIdentity": {"type": ["AssumedRole"]}}}, True),
        ({"detail": {"userIdentity": {"type": ["IAMUser"]}}}, False),
        ({"detail": {"eventName": {"x": ["y"]}}}, False),  # descending into a leaf never matches
        # arrays in the event: any element
        ({"detail": {"tags": ["prod"]}}, True),
        ({"detail": {"tags": ["dev"]}}, False),
        ({"detail": {"requestParameters": {"attributes": {"key": ["proxy_protocol_v2.enabled"]}}}}, True),
        ({"detail": {"requestParameters": {"attributes": {"key": ["stickiness.enabled"]}}}}, False),
        # prefix / suffix
        ({"detail": {"apiVersion": [{"prefix": "2015"}]}}, True),
        ({"detail": {"apiVersion": [{"prefix": "2012"}]}}, False),
        ({"detail": {"eventName": [{"prefix": {"equals-ignore-case": "modify"}}]}}, True),
        ({"detail": {"eventName": [{"suffix": "Attributes"}]}}, True),
        ({"detail": {"eventName": [{"suffix": {"equals-ignore-case": "ATTRIBUTES"}}]}}, True),
        ({"detail": {"port": [{"prefix": "2"}]}}, False),  # prefix only applies to strings
        # anything-but
        ({"detail": {"eventName": [{"anything-but": "CreateListener"}]}}, True),
        ({"detail": {"eventName": [{"anything-but": ["ModifyTargetGroupAttributes", "X"]}]}}, False),
        ({"detail": {"eventName": [{"anything-but": {"prefix": "Modify"}}]}}, False),
        ({"detail": {"eventName": [{"anything-but": {"suffix": "Listener"}}]}}, True),
        (
            {"detail": {"eventName": [{"anything-but": {"equals-ignore-case": [MODIFY_LOWER]}}]}},
            False,
        ),
        ({"detail": {"eventName": [{"anything-but": {"wildcard": "Create*"}}]}}, True),
        ({"detail": {"port": [{"anything-but": [587, 465]}]}}, True),
        ({"detail": {"missing": [{"anything-but": "x"}]}}, False),  # needs the field
        # numeric
        ({"detail": {"port": [{"numeric": [">", 0, "<=", 25]}]}}, True),
        ({"detail": {"port": [{"numeric": ["<", 25]}]}}, False),
        ({"detail": {"ratio": [{"numeric": ["=", 0.5]}]}}, True),
        ({"detail": {"apiVersion": [{"numeric": [">", 0]}]}}, False),  # strings are not numbers
        ({"detail": {"enabled": [{"numeric": [">", 0]}]}}, False),  # nor are booleans
        # exists
        ({"detail": {"errorCode": [{"exists": False}]}}, True),
        ({"detail": {"errorCode": [{"exists": True}]}}, False),
        ({"detail": {"eventName": [{"exists": True}]}}, True),
        ({"detail": {"eventName": [{"exists": False}]}}, False),
        ({"detail": {"empty": [{"exists": True}]}}, False),
        ({"detail": {"userIdentity": [{"exists": True}]}}, False),  # exists is about leaves
        # equals-ignore-case, wildcard, cidr
        ({"detail": {"eventName": [{"equals-ignore-case": "MODIFYTARGETGROUPATTRIBUTES"}]}}, True),
        ({"detail": {"userIdentity": {"arn": [{"wildcard": "arn:aws:sts::*:assumed-role/Ops/*"}]}}}, True),
        ({"detail": {"userIdentity": {"arn": [{"wildcard": "arn:aws:sts::*:assumed-role/Dev/*"}]}}}, False),
        ({"detail": {"sourceIPAddress": [{"cidr": "10.0.0.0/16"}]}}, True),
        ({"detail": {"sourceIPAddress": [{"cidr": "192.168.0.0/16"}]}}, False),
        ({"detail": {"eventName": [{"cidr": "10.0.0.0/8"}]}}, False),
        # $or, at the top and nested, combined with sibling fields
        ({"$or": [{"source": ["aws.ec2"]}, {"detail": {"port": [25]}}]}, True),
        ({"$or": [{"source": ["aws.ec2"]}, {"detail": {"port": [587]}}]}, False),
        (
            {
                "source": ["aws.elasticloadbalancing"],
                "detail": {
                    "$or": [
                        {"eventName": ["CreateListener"]},
                        {
                            "eventName": ["ModifyTargetGroupAttributes"],
                            "requestParameters": {"attributes": {"key": ["proxy_protocol_v2.enabled"]}},
                        },
                    ]
                },
            },
            True,
        ),
        (
            {"source": ["aws.ec2"], "$or": [{"detail": {"port": [25]}}, {"detail": {"ratio": [0.5]}}]},
            False,
        ),
    ],
)
def test_pattern_matches_like_eventbridge(pattern: dict[str, Any], expected: bool) -> None:
    # Given the event above and a pattern / When matched / Then the documented answer
    assert matches(pattern, EVENT) is expected


def test_wildcard_escapes_a_literal_star() -> None:
    # Given a value with a literal star
    event = {"detail": {"name": "a*b"}}
    # When the pattern escapes the star / Then only the literal matches
    assert matches({"detail": {"name": [{"wildcard": "a\\*b"}]}}, event)
    assert not matches({"detail": {"name": [{"wildcard": "a\\*b"}]}}, {"detail": {"name": "axxb"}})


def test_an_empty_pattern_matches_everything() -> None:
    assert matches({}, EVENT)


@pytest.mark.parametrize(
    "pattern",
    [
        {"source": [{"startswith": "aws"}]},
        {"source": "aws.elasticloadbalancing"},
        {"source": []},
        {"detail": {"port": [{"numeric": ["~", 1]}]}},
        {"detail": {"port": [{"exists": "yes"}]}},
        {"$or": []},
        {"detail": {"eventName": [{"anything-but": {"numeric": [">", 1]}}]}},
        {"detail": {"eventName": [{"prefix": "a", "suffix": "b"}]}},
    ],
)
def test_an_invalid_pattern_is_an_error_not_a_silent_miss(pattern: dict[str, Any]) -> None:
    # Given a pattern EventBridge would reject / When matched / Then PatternError says why
    with pytest.raises(PatternError):
        matches(pattern, EVENT)
