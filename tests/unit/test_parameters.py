"""template.yaml's parameter patterns accept exactly what the code accepts (issue 9, item 5).

A value CloudFormation lets through must never break a function at run time (``SmtpPorts=25,99999``
once made every function fail on every event), and a value the code would take must not be
refused by the template for no reason. For every parameter that becomes a Settings variable,
each candidate (valid, boundary, invalid) goes through both: the template's ``AllowedPattern``
(or ``AllowedValues``) and :func:`proxymx.config.load_settings`.

CloudFormation matches ``AllowedPattern`` against the whole value (its docs' ``[a-zA-Z0-9]*``
example means "only alphanumerics"), as Java's ``String.matches`` does: ``re.fullmatch`` here.
The patterns keep to what Java and Python regexes read alike (classes, groups, ``{m,n}``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from proxymx.config import InvalidSetting, Settings, load_settings

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !GetAtt, !Sub, ...) as their long forms."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)
TEMPLATE: dict[str, Any] = yaml.load(TEMPLATE_PATH.read_text(encoding="utf-8"), Loader=_CfnLoader)
PARAMETERS: dict[str, dict[str, Any]] = TEMPLATE["Parameters"]
DOCUMENT_PARAMETERS: dict[str, dict[str, Any]] = TEMPLATE["Resources"]["PostfixProxyProtocolDocument"][
    "Properties"
]["Content"]["parameters"]

HOSTILE = ["", " ", "\n", "x\n", "$(id)", "`id`", "a;b", "é", "\x00", "\uff21", "x" * 5000]

# parameter -> (its environment variable, candidates beyond HOSTILE)
CANDIDATES: dict[str, tuple[str, list[str]]] = {
    "SmtpPorts": (
        "SMTP_PORTS",
        [
            "25",
            "1",
            "9",
            "10",
            "99",
            "100",
            "999",
            "1000",
            "9999",
            "10000",
            "59999",
            "60000",
            "64999",
            "65000",
            "65499",
            "65500",
            "65529",
            "65530",
            "65535",
            "25,587,465",
            "25,25",
            "0",
            "00",
            "025",
            "65536",
            "65539",
            "65540",
            "65599",
            "65600",
            "66000",
            "70000",
            "99999",
            "100000",
            "25,",
            ",25",
            "25,,587",
            "25 ,587",
            "25, 587",
            " 25",
            "25 ",
            "25\n",
            "+25",
            "-1",
            "1e3",
            "0x19",
            "\uff12\uff15",
            "\u0662\u0665",
            "25;587",
            "25,0",
            "25,65536",
            "25,587\n",
        ],
    ),
    "UpstreamProxyTimeout": (
        "UPSTREAM_PROXY_TIMEOUT",
        [
            "1s",
            "5s",
            "9s",
            "10s",
            "99s",
            "100s",
            "999s",
            "0s",
            "1000s",
            "05s",
            "5",
            "s",
            "5m",
            "5S",
            " 5s",
            "5s ",
            "5s\n",
            "-5s",
            "+5s",
            "\u0665s",
            "1.5s",
        ],
    ),
    "ProxyProtocolVersion": (
        "PROXY_PROTOCOL",
        ["v1", "v2", "any", "V1", "v3", "none", "v1 ", "any\n", "v1,v2"],
    ),
    "DryRun": ("DRY_RUN", ["true", "false", "True", "FALSE", "1", "0", "yes", "no", "true "]),
    "ProxyProtocolWhenClientIpPreserved": (
        "PROXY_PROTOCOL_WHEN_CLIENT_IP_PRESERVED",
        ["true", "false", "True", "FALSE", "1", "0", "yes", "no", "false "],
    ),
    "FailureResult": (
        "FAILURE_RESULT",
        ["ABANDON", "HOOK_DEFAULT", "CONTINUE", "abandon", "ABANDON "],
    ),
    "OptOutTagKey": (
        "OPT_OUT_TAG_KEY",
        [
            "proxymx:opt-out",
            "a",
            "x" * 128,
            "x" * 129,
            "k=v",
            "team/mail @x+y.z_1",
            "key,other",
            "tab\tkey",
            'a"b',
            "a'b",
            "a*b",
        ],
    ),
    "RequiredTag": (
        "REQUIRED_TAG",
        [
            "team",
            "team=mx",
            "team=",
            "k" * 128,
            "k" * 129,
            "k=" + "v" * 256,
            "k=" + "v" * 257,
            "=mx",
            "a=b=c",
            "team mail=mx mail",
            "team,x=mx",
            "proxymx:scope=mx",
        ],
    ),
    "LifecycleHookName": (
        "LIFECYCLE_HOOK_NAMES",
        ["proxymx-postfix-launch", "a", "h" * 255, "h" * 256, "mx/launch_1", "a,b", "a b", "a.b", "a:b"],
    ),
    "LaunchGroupNames": (
        "LAUNCH_GROUP_NAMES",
        [
            "mx",
            "mx-eu,mx-us",
            "a,b,c",
            "a,b,c,d",
            "g" * 255,
            "g" * 256,
            "a,",
            ",a",
            "a,,b",
            "mx-eu, mx-us",
            "my.group/x_1",
            "a b",
        ],
    ),
    "FleetTagValue": (
        "FLEET_TAG_VALUE",
        ["mx", "v" * 256, "v" * 257, "a=b", "mx fleet", "mx,eu", "mx;eu"],
    ),
    "Cutover": ("CUTOVER", ["auto", "off", "on", "Auto", "OFF", "auto "]),
    "MaxCutoversInFlight": (
        "MAX_CUTOVERS_IN_FLIGHT",
        ["1", "2", "9", "10", "11", "0", "01", "100", "-1", "1.0"],
    ),
    "MaxCutoversPerHour": (
        "MAX_CUTOVERS_PER_HOUR",
        ["1", "6", "9", "10", "99", "100", "101", "0", "06", "1000", "-6", "6.0"],
    ),
    "FlapThreshold": (
        "FLAP_THRESHOLD",
        ["1", "2", "3", "9", "10", "99", "100", "101", "03", "", "3 ", "-3", "3.0", "٣"],
    ),
    "FlapWindowMinutes": (
        "FLAP_WINDOW_MINUTES",
        [
            "0",
            "1",
            "60",
            "99",
            "100",
            "999",
            "1000",
            "1399",
            "1439",
            "1440",
            "1441",
            "2000",
            "060",
            "",
            "60m",
        ],
    ),
    "NotificationTopicArn": (
        "NOTIFICATION_TOPIC_ARN",
        [
            "arn:aws:sns:us-east-1:123456789012:proxymx-alerts",
            "arn:aws-us-gov:sns:us-gov-west-1:123456789012:t",
            "arn:aws-cn:sns:cn-north-1:123456789012:t_1",
            "arn:aws:sns:us-east-1:123456789012:" + "t" * 256,
            "arn:aws:sns:us-east-1:123456789012:" + "t" * 257,
            "arn:aws:sns:us-east-1:12345678901:t",
            "arn:aws:sns:us-east-1:123456789012:t.fifo",
            "arn:aws:sqs:us-east-1:123456789012:t",
            "arn:aws:sns:us-east-1:123456789012:",
            "proxymx-alerts",
        ],
    ),
}


def template_accepts(parameter: str, value: str, spec: dict[str, Any] | None = None) -> bool:
    spec = spec or PARAMETERS[parameter]
    if "AllowedValues" in spec:
        return value in [str(v) for v in spec["AllowedValues"]]
    pattern = spec.get("AllowedPattern") or spec.get("allowedPattern")
    assert pattern is not None, f"{parameter} has neither AllowedValues nor AllowedPattern"
    return re.fullmatch(pattern, value) is not None


def code_accepts(env: str, value: str) -> bool:
    try:
        settings = load_settings({env: value})
    except InvalidSetting:
        return False
    if env == "LIFECYCLE_HOOK_NAMES":
        # The variable may list several hooks; the parameter is one hook name: accepted means
        # read as exactly that one name.
        return settings.lifecycle_hook_names == (value,)
    return True


def template_environment() -> dict[str, str]:
    """Environment variable -> the parameter it is a plain !Ref of, over every function."""
    found: dict[str, str] = {}
    sections = [TEMPLATE["Globals"]["Function"]] + [
        r["Properties"] for r in TEMPLATE["Resources"].values() if r["Type"] == "AWS::Serverless::Function"
    ]
    for section in sections:
        variables = (section.get("Environment") or {}).get("Variables") or {}
        for name, value in variables.items():
            if isinstance(value, dict) and value.get("Ref") in PARAMETERS:
                found[name] = value["Ref"]
    return found


@pytest.mark.parametrize("parameter", sorted(CANDIDATES))
def test_template_and_code_accept_the_same_values(parameter: str) -> None:
    # Given a parameter and its candidates / When the template and the code judge each one
    env, candidates = CANDIDATES[parameter]
    disagreements = [
        (value, template_accepts(parameter, value), code_accepts(env, value))
        for value in [*candidates, *HOSTILE]
        if template_accepts(parameter, value) != code_accepts(env, value)
    ]
    # Then they agree on every one
    assert disagreements == []
    # And the candidates are not all on one side (the table really probes the boundary)
    verdicts = {code_accepts(env, value) for value in candidates}
    assert verdicts == {True, False}


def test_every_settings_variable_fed_by_a_parameter_is_in_the_table() -> None:
    # Given every function environment variable that is a plain !Ref of a template parameter
    fed = {
        env: parameter
        for env, parameter in template_environment().items()
        if not env.startswith("POWERTOOLS_")
    }
    # Then each is a Settings variable, and the table above probes exactly those parameters
    settings_variables = {f.metadata["env"] for f in Settings.__dataclass_fields__.values()}
    assert set(fed) <= settings_variables
    assert {parameter: env for env, parameter in fed.items()} == {p: e for p, (e, _) in CANDIDATES.items()}


@pytest.mark.parametrize("parameter", sorted(CANDIDATES))
def test_the_template_default_is_the_code_default(parameter: str) -> None:
    # Given the parameter's default / When the code reads it / Then it is what the code assumes unset
    env, _ = CANDIDATES[parameter]
    default = str(PARAMETERS[parameter]["Default"])
    field = next(f.name for f in Settings.__dataclass_fields__.values() if f.metadata["env"] == env)
    assert getattr(load_settings({env: default}), field) == getattr(load_settings({}), field)


@pytest.mark.parametrize(
    ("document_parameter", "stack_parameter"),
    [("SmtpPorts", "SmtpPorts"), ("UpstreamProxyTimeout", "UpstreamProxyTimeout")],
)
def test_the_documents_pattern_is_the_stacks(document_parameter: str, stack_parameter: str) -> None:
    # Given the SSM document's parameter and the stack parameter it is fed from
    document_spec = DOCUMENT_PARAMETERS[document_parameter]
    env, candidates = CANDIDATES[stack_parameter]
    # Then the document refuses nothing the code accepts, and accepts nothing the code refuses
    for value in [*candidates, *HOSTILE]:
        assert template_accepts(document_parameter, value, document_spec) == code_accepts(env, value), value
