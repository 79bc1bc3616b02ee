"""Settings: every environment variable's name, every bound, the defaults, and errors that name
the variable and its value (issue 9: a renamed ``OPT_OUT_TAG_KEY`` would let proxymx modify an
opted-out load balancer; a changed port bound would break every function)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from proxymx.config import InvalidSetting, Settings, environment_names, load_settings, settings

ROLE = "arn:aws:iam::123456789012:role/proxymx-EnableProxyProtocolFunctionRole"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:mx-alerts"

# field, environment variable, a value that is not the default, what the field then holds
EVERY_VARIABLE: list[tuple[str, str, str, Any]] = [
    ("smtp_ports", "SMTP_PORTS", "25,587,465", (25, 587, 465)),
    ("opt_out_tag_key", "OPT_OUT_TAG_KEY", "mx:skip", "mx:skip"),
    ("required_tag", "REQUIRED_TAG", "team=mx", "team=mx"),
    ("dry_run", "DRY_RUN", "true", True),
    ("self_role_arns", "SELF_ROLE_ARNS", f"{ROLE},{ROLE}2", (ROLE, f"{ROLE}2")),
    ("lifecycle_hook_names", "LIFECYCLE_HOOK_NAMES", "a,b", ("a", "b")),
    ("launch_group_names", "LAUNCH_GROUP_NAMES", "mx-eu,mx-us", ("mx-eu", "mx-us")),
    ("document_name", "DOCUMENT_NAME", "my-doc", "my-doc"),
    ("proxy_protocol", "PROXY_PROTOCOL", "v2", "v2"),
    ("upstream_proxy_timeout", "UPSTREAM_PROXY_TIMEOUT", "10s", "10s"),
    ("command_timeout_seconds", "COMMAND_TIMEOUT_SECONDS", "900", 900),
    ("command_log_group", "COMMAND_LOG_GROUP", "/proxymx/run-command", "/proxymx/run-command"),
    ("failure_result", "FAILURE_RESULT", "HOOK_DEFAULT", "HOOK_DEFAULT"),
    ("notification_topic_arn", "NOTIFICATION_TOPIC_ARN", TOPIC, TOPIC),
    ("heartbeat_after_seconds", "HEARTBEAT_AFTER_SECONDS", "300", 300),
    ("fleet_tag_value", "FLEET_TAG_VALUE", "mail", "mail"),
    ("function_timeout_seconds", "FUNCTION_TIMEOUT_SECONDS", "30", 30),
    ("state_table_name", "STATE_TABLE", "proxymx-StateTable", "proxymx-StateTable"),
    ("cutover", "CUTOVER", "off", "off"),
    ("max_cutovers_in_flight", "MAX_CUTOVERS_IN_FLIGHT", "3", 3),
    ("max_cutovers_per_hour", "MAX_CUTOVERS_PER_HOUR", "12", 12),
    ("enabled_parameter", "ENABLED_PARAMETER", "/proxymx/mx/enabled", "/proxymx/mx/enabled"),
    ("flap_threshold", "FLAP_THRESHOLD", "5", 5),
    ("flap_window_minutes", "FLAP_WINDOW_MINUTES", "15", 15),
    (
        "proxy_protocol_when_client_ip_preserved",
        "PROXY_PROTOCOL_WHEN_CLIENT_IP_PRESERVED",
        "true",
        True,
    ),
]

DEFAULTS: dict[str, Any] = {
    "smtp_ports": (25,),
    "opt_out_tag_key": "proxymx:opt-out",
    "required_tag": "",
    "dry_run": False,
    "self_role_arns": (),
    "lifecycle_hook_names": ("proxymx-postfix-launch",),
    "launch_group_names": (),
    "document_name": "proxymx-PostfixProxyProtocolDocument",
    "proxy_protocol": "any",
    "upstream_proxy_timeout": "5s",
    "command_timeout_seconds": 600,
    "command_log_group": "",
    "failure_result": "ABANDON",
    "notification_topic_arn": "",
    "heartbeat_after_seconds": 120,
    "fleet_tag_value": "mx",
    "function_timeout_seconds": 60,
    "state_table_name": "",
    "cutover": "auto",
    "max_cutovers_in_flight": 1,
    "max_cutovers_per_hour": 6,
    "enabled_parameter": "",
    "flap_threshold": 3,
    "flap_window_minutes": 60,
    "proxy_protocol_when_client_ip_preserved": False,
}

# variable, the last accepted value(s) at each end, the first refused value(s) beyond them
BOUNDS: list[tuple[str, list[str], list[str]]] = [
    ("SMTP_PORTS", ["1", "65535", "1,65535"], ["0", "65536", "25,0", "25,65536", "", "025"]),
    ("COMMAND_TIMEOUT_SECONDS", ["30", "2592000"], ["29", "2592001", "", "-30", "30.0"]),
    ("HEARTBEAT_AFTER_SECONDS", ["0", "7200"], ["7201", "-1", "", "00"]),
    ("UPSTREAM_PROXY_TIMEOUT", ["1s", "999s"], ["0s", "1000s", "5", "5m", ""]),
    ("LAUNCH_GROUP_NAMES", ["", "a,b,c", "g" * 255], ["a,b,c,d", "g" * 256, "a,", "mx-eu, mx-us"]),
    ("LIFECYCLE_HOOK_NAMES", ["h", ",".join("h" * 10), "h" * 255], ["", ",".join("h" * 11), "h" * 256]),
    ("SELF_ROLE_ARNS", ["", ",".join([ROLE] * 10)], [",".join([ROLE] * 11), "arn:aws:iam::1:role/x", "x"]),
    ("DOCUMENT_NAME", ["abc", "d" * 128], ["ab", "d" * 129, "", "my doc"]),
    ("COMMAND_LOG_GROUP", ["", "l" * 512], ["l" * 513, "log group"]),
    ("OPT_OUT_TAG_KEY", ["k", "k" * 128], ["", "k" * 129, "a,b"]),
    ("FLEET_TAG_VALUE", ["v", "v" * 256], ["", "v" * 257]),
    ("FUNCTION_TIMEOUT_SECONDS", ["1", "900"], ["0", "901", "", "060", "30.0"]),
    ("STATE_TABLE", ["", "abc", "t" * 255, "my.table_1-x"], ["ab", "t" * 256, "my table", "a/b"]),
    ("ENABLED_PARAMETER", ["", "/a", "/" + "p" * 1010], ["/" + "p" * 1011, "enabled", "/a b", "/a:b"]),
    ("FLAP_THRESHOLD", ["2", "100"], ["1", "101", "", "03"]),
    ("FLAP_WINDOW_MINUTES", ["1", "1440"], ["0", "1441", "", "60m"]),
    ("REQUIRED_TAG", ["", "k", "k=", "k" * 128 + "=" + "v" * 256], ["k" * 129, "k=" + "v" * 257, "=v"]),
    ("PROXY_PROTOCOL", ["v1", "v2", "any"], ["v3", "V1", ""]),
    ("CUTOVER", ["auto", "off"], ["on", "Auto", "", "false"]),
    ("MAX_CUTOVERS_IN_FLIGHT", ["1", "10"], ["0", "11", "", "01"]),
    ("MAX_CUTOVERS_PER_HOUR", ["1", "100"], ["0", "101", "", "06"]),
    ("FAILURE_RESULT", ["ABANDON", "HOOK_DEFAULT"], ["CONTINUE", "abandon", ""]),
    ("DRY_RUN", ["true", "false"], ["True", "1", "yes", ""]),
    ("PROXY_PROTOCOL_WHEN_CLIENT_IP_PRESERVED", ["true", "false"], ["True", "1", "yes", ""]),
    ("NOTIFICATION_TOPIC_ARN", ["", TOPIC], ["mx-alerts", TOPIC.replace(":sns:", ":sqs:")]),
]


def test_the_table_names_every_variable() -> None:
    # Given the Settings table / Then each field reads exactly the variable pinned here
    assert environment_names() == {field: env for field, env, _, _ in EVERY_VARIABLE}


@pytest.mark.parametrize(("field", "env", "value", "expected"), EVERY_VARIABLE)
def test_each_variable_reaches_its_field(field: str, env: str, value: str, expected: Any) -> None:
    # Given the variable set to a value other than the default / When loaded / Then the field holds it
    assert expected != DEFAULTS[field]
    assert getattr(load_settings({env: value}), field) == expected


def test_defaults_when_nothing_is_set() -> None:
    assert dataclasses.asdict(load_settings({})) == DEFAULTS


@pytest.mark.parametrize(("env", "accepted", "refused"), BOUNDS)
def test_bounds_of_each_variable(env: str, accepted: list[str], refused: list[str]) -> None:
    # Given the last values inside each bound / Then they load
    for value in accepted:
        load_settings({env: value})
    # Given the first values outside / Then each is refused, naming the variable and the value
    for value in refused:
        with pytest.raises(InvalidSetting) as raised:
            load_settings({env: value})
        shown = repr(value) if len(value) <= 80 else repr(value[:77])
        assert str(raised.value).startswith(f"{env}={shown}"), str(raised.value)


def test_an_error_says_why() -> None:
    with pytest.raises(InvalidSetting, match=r"^SMTP_PORTS='25,99999': '99999' is not a TCP port \(1-65535"):
        load_settings({"SMTP_PORTS": "25,99999"})


def test_a_huge_value_is_cut_short_in_the_message() -> None:
    with pytest.raises(InvalidSetting) as raised:
        load_settings({"FLEET_TAG_VALUE": "v" * 5000})
    assert len(str(raised.value)) < 400


def test_unknown_variables_are_ignored() -> None:
    assert load_settings({"PATH": "/usr/bin", "POWERTOOLS_SERVICE_NAME": "proxymx"}) == load_settings({})


@pytest.mark.parametrize(
    ("required_tag", "pair"),
    [("", None), ("team", ("team", None)), ("team=", ("team", "")), ("team=mx", ("team", "mx"))],
)
def test_required_tag_pair(required_tag: str, pair: tuple[str, str | None] | None) -> None:
    # "team" means the tag must be present with any value; "team=" that its value is empty
    assert load_settings({"REQUIRED_TAG": required_tag}).required_tag_pair == pair


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        load_settings({}).dry_run = True  # type: ignore[misc]


def test_settings_are_read_once_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the process environment / When settings() is called twice around a change
    settings.cache_clear()
    monkeypatch.setenv("SMTP_PORTS", "587")
    first = settings()
    monkeypatch.setenv("SMTP_PORTS", "465")
    # Then the cold start's value stays until the cache is cleared
    assert settings() is first and first.smtp_ports == (587,)
    settings.cache_clear()
    assert settings().smtp_ports == (465,)
    settings.cache_clear()


def test_settings_can_be_built_directly_for_tests_and_the_cli() -> None:
    assert Settings(smtp_ports=(587,)).smtp_ports == (587,)
    assert dataclasses.replace(load_settings({}), dry_run=True).dry_run is True


def test_the_fleet_tag_key_is_the_documented_one() -> None:
    # The tag operators put on their MX instances (docs/agreement.md): a renamed key would take
    # every instance out of the fleet, and the interlock would then never configure them
    from proxymx.config import FLEET_TAG_KEY

    assert FLEET_TAG_KEY == "proxymx:fleet"


def test_a_value_is_shown_whole_up_to_80_characters_then_cut() -> None:
    # Given refused values of 80 and 81 characters
    for size, shown in ((80, "," + "k" * 79), (81, ("," + "k" * 80)[:77])):
        value = "," + "k" * (size - 1)
        with pytest.raises(InvalidSetting) as raised:
            load_settings({"OPT_OUT_TAG_KEY": value})
        # Then the first is quoted whole, the second cut to 77 characters and "..."
        suffix = ":" if size == 80 else "...:"
        assert str(raised.value).startswith(f"OPT_OUT_TAG_KEY={shown!r}{suffix}")


def test_numbers_say_what_they_must_be() -> None:
    with pytest.raises(InvalidSetting, match=r"'29' is not a whole number \(30-2592000"):
        load_settings({"COMMAND_TIMEOUT_SECONDS": "29"})
    with pytest.raises(InvalidSetting, match=r"'0' is not a number of seconds \(1-999"):
        load_settings({"UPSTREAM_PROXY_TIMEOUT": "0s"})
