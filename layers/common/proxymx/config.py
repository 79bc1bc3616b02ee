"""Configuration: one frozen dataclass, read once from the environment at cold start.

The template's parameters become environment variables (see ``Globals`` in template.yaml);
domain code receives a :class:`Settings` and never reads ``os.environ`` itself.

Each field of :class:`Settings` is one row of a table: environment variable, parser, default
(:func:`setting`). Adding a setting is adding a row. A variable that is absent takes the
default; a variable that is set, even to ``""``, is parsed, and a value the parser refuses
raises :class:`InvalidSetting` naming the variable and the value. Each parser accepts exactly
what the template's ``AllowedPattern`` of its parameter accepts (tests/unit/test_parameters.py
enumerates both), so a value CloudFormation lets through never breaks a function at run time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import field, fields
from functools import lru_cache
from typing import Any, Final, TypeVar

from proxymx.frozen import frozen

# The fleet tag's KEY is fixed: CloudFormation cannot build an IAM condition key from a parameter.
FLEET_TAG_KEY = "proxymx:fleet"

T = TypeVar("T")
Parser = Callable[[str], Any]

# Tag keys and values as the template allows them (a subset of what AWS allows: no characters a
# shell or an IAM policy would have to escape). A required-tag key cannot hold "=", which
# separates it from the value.
TAG_KEY: Final = re.compile(r"[A-Za-z0-9 _.:/=+@-]{1,128}")
TAG_VALUE: Final = re.compile(r"[A-Za-z0-9 _.:/=+@-]{1,256}")
REQUIRED_TAG: Final = re.compile(r"([A-Za-z0-9 _.:/+@-]{1,128}(=[A-Za-z0-9 _.:/+@-]{0,256})?)?")
# Auto Scaling: hook names [A-Za-z0-9\-_\/]+ (1-255); group names as the template allows them.
HOOK_NAME: Final = re.compile(r"[A-Za-z0-9_/-]{1,255}")
GROUP_NAME: Final = re.compile(r"[A-Za-z0-9_./-]{1,255}")
# SSM document names: letters, digits, "_", "-", "." (3-128).
DOCUMENT_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{3,128}")
LOG_GROUP_NAME: Final = re.compile(r"([A-Za-z0-9_./#-]{1,512})?")
TOPIC_ARN: Final = re.compile(r"(arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256})?")
ROLE_ARN: Final = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}")
# SendCommand's TimeoutSeconds is 30 to 2,592,000; a lifecycle hook's heartbeat at most 7,200 s.
COMMAND_TIMEOUT_RANGE: Final = (30, 2592000)
HEARTBEAT_RANGE: Final = (0, 7200)
# postscreen_upstream_proxy_timeout, as the document accepts it: 1s to 999s.
TIMEOUT_RANGE: Final = (1, 999)
LAUNCH_GROUPS_MAX: Final = 3
# A Lambda function's Timeout: 1 to 900 seconds.
FUNCTION_TIMEOUT_RANGE: Final = (1, 900)
# DynamoDB table names: letters, digits, "_", "-", "." (3-255); "" = no table.
TABLE_NAME: Final = re.compile(r"([A-Za-z0-9_.-]{3,255})?")
# Cutovers (issue 7.3): at most 10 in flight (each is up to 50 targets a SendCommand), at most 100
# started an hour.
CUTOVERS_IN_FLIGHT_RANGE: Final = (1, 10)
CUTOVERS_PER_HOUR_RANGE: Final = (1, 100)
# SSM parameter names as the template builds the kill switch's (/proxymx/<stack>/enabled): a
# fully qualified name of letters, digits, "_", ".", "-", "/" (at most 1011 characters); "" = none.
PARAMETER_NAME: Final = re.compile(r"(/[A-Za-z0-9_./-]{1,1010})?")
# The flapping guard (proxymx.controls): how many undos by one actor, within how many minutes.
FLAP_THRESHOLD_RANGE: Final = (2, 100)
FLAP_WINDOW_RANGE: Final = (1, 1440)


class InvalidSetting(ValueError):
    """An environment variable holds a value the functions cannot work with."""


# ----- parsers: text -> value, ValueError saying why --------------------------------------------


def _decimal(text: str, lo: int, hi: int, what: str) -> int:
    # ASCII digits only ("٢٥".isdigit() is true), no sign, no leading zero: what the template's
    # patterns accept, nothing else.
    canonical = text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0"))
    if not canonical or len(text) > len(str(hi)) or not lo <= int(text) <= hi:
        raise ValueError(f"{text!r} is not {what} ({lo}-{hi}, decimal digits, no leading zero)")
    return int(text)


def ports(text: str) -> tuple[int, ...]:
    """``25`` or ``25,587,465``: TCP ports 1-65535."""
    return tuple(_decimal(part, 1, 65535, "a TCP port") for part in text.split(","))


def integer(lo: int, hi: int) -> Parser:
    def parse(text: str) -> int:
        return _decimal(text, lo, hi, "a whole number")

    return parse


def seconds(lo: int, hi: int) -> Parser:
    """``5s``: whole seconds with the unit Postfix reads."""

    def parse(text: str) -> str:
        if not text.endswith("s"):
            raise ValueError(f"{text!r} must be whole seconds ending in 's', e.g. 5s")
        _decimal(text[:-1], lo, hi, "a number of seconds")
        return text

    return parse


def boolean(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError("must be true or false")
    return text == "true"


def choice(*allowed: str) -> Parser:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return parse


def matching(pattern: re.Pattern[str]) -> Parser:
    def parse(text: str) -> str:
        if pattern.fullmatch(text) is None:
            raise ValueError(f"must match {pattern.pattern}")
        return text

    return parse


def names(pattern: re.Pattern[str], *, min_items: int, max_items: int) -> Parser:
    """A comma-separated list (``""`` is the empty list), each item matching ``pattern``."""

    def parse(text: str) -> tuple[str, ...]:
        items = tuple(text.split(",")) if text else ()
        if not min_items <= len(items) <= max_items:
            raise ValueError(f"must list {min_items} to {max_items} comma-separated names")
        for item in items:
            if pattern.fullmatch(item) is None:
                raise ValueError(f"{item!r} must match {pattern.pattern}")
        return items

    return parse


def setting(env: str, parse: Parser, default: T) -> T:
    """One row of the table: the field's environment variable, parser and default."""
    return field(default=default, metadata={"env": env, "parse": parse})


# ----- the table ------------------------------------------------------------------------------


@frozen
class Settings:
    smtp_ports: tuple[int, ...] = setting("SMTP_PORTS", ports, (25,))
    opt_out_tag_key: str = setting("OPT_OUT_TAG_KEY", matching(TAG_KEY), "proxymx:opt-out")
    # "" (everything in scope), "KEY" (tag present) or "KEY=VALUE".
    required_tag: str = setting("REQUIRED_TAG", matching(REQUIRED_TAG), "")
    dry_run: bool = setting("DRY_RUN", boolean, False)
    # Principals whose API calls are our own changes: never remediated again (no loops).
    self_role_arns: tuple[str, ...] = setting(
        "SELF_ROLE_ARNS", names(ROLE_ARN, min_items=0, max_items=10), ()
    )
    # NLB instance targets (TCP) with preserve_client_ip.enabled=true already show the client's
    # address: the header stays off unless this asks for it (proxymx.loadbalancer.nlbheader).
    proxy_protocol_when_client_ip_preserved: bool = setting(
        "PROXY_PROTOCOL_WHEN_CLIENT_IP_PRESERVED", boolean, False
    )

    # The function's own Timeout (template.yaml, beside it): every AWS call's retry and timeout
    # budget derives from it (proxymx/budget.py). 60 s: the template's Globals.
    function_timeout_seconds: int = setting("FUNCTION_TIMEOUT_SECONDS", integer(*FUNCTION_TIMEOUT_RANGE), 60)

    # --- Launch flow (issue 3; see docs/lifecycle-hook.md) ---
    # Hooks whose launch events we act on; groups in scope ("" = every group carrying such a hook).
    lifecycle_hook_names: tuple[str, ...] = setting(
        "LIFECYCLE_HOOK_NAMES", names(HOOK_NAME, min_items=1, max_items=10), ("proxymx-postfix-launch",)
    )
    launch_group_names: tuple[str, ...] = setting(
        "LAUNCH_GROUP_NAMES", names(GROUP_NAME, min_items=0, max_items=LAUNCH_GROUPS_MAX), ()
    )
    # Our SSM document (template: !Ref PostfixProxyProtocolDocument; locally, as proxymx invoke
    # resolves that Ref for the local stack "proxymx": proxymx-PostfixProxyProtocolDocument).
    document_name: str = setting(
        "DOCUMENT_NAME", matching(DOCUMENT_NAME), "proxymx-PostfixProxyProtocolDocument"
    )
    proxy_protocol: str = setting("PROXY_PROTOCOL", choice("v1", "v2", "any"), "any")
    upstream_proxy_timeout: str = setting("UPSTREAM_PROXY_TIMEOUT", seconds(*TIMEOUT_RANGE), "5s")
    command_timeout_seconds: int = setting("COMMAND_TIMEOUT_SECONDS", integer(*COMMAND_TIMEOUT_RANGE), 600)
    command_log_group: str = setting("COMMAND_LOG_GROUP", matching(LOG_GROUP_NAME), "")
    # ABANDON (replace the instance now) or HOOK_DEFAULT (leave it to the hook's DefaultResult).
    failure_result: str = setting("FAILURE_RESULT", choice("ABANDON", "HOOK_DEFAULT"), "ABANDON")
    notification_topic_arn: str = setting("NOTIFICATION_TOPIC_ARN", matching(TOPIC_ARN), "")
    # The StateTable (template.yaml): one command per launch (proxymx.launch.claims); "" locally
    # and in tests without a table (claims are then skipped, see launch/claims.py).
    state_table_name: str = setting("STATE_TABLE", matching(TABLE_NAME), "")
    heartbeat_after_seconds: int = setting("HEARTBEAT_AFTER_SECONDS", integer(*HEARTBEAT_RANGE), 120)
    # --- Reconcile sweep (docs/lifecycle-hook.md): groups tagged FLEET_TAG_KEY=<this> are in scope.
    fleet_tag_value: str = setting("FLEET_TAG_VALUE", matching(TAG_VALUE), "mx")
    # --- Fleet-first cutover (issue 7.3, docs/agreement.md): a unit blocked by unready fleet
    # targets is cut over automatically (auto) or only reported (off).
    cutover: str = setting("CUTOVER", choice("auto", "off"), "auto")
    max_cutovers_in_flight: int = setting("MAX_CUTOVERS_IN_FLIGHT", integer(*CUTOVERS_IN_FLIGHT_RANGE), 1)
    max_cutovers_per_hour: int = setting("MAX_CUTOVERS_PER_HOUR", integer(*CUTOVERS_PER_HOUR_RANGE), 6)

    # --- Operators stay in control (issue 7.5; proxymx.controls, docs/agreement.md) ---
    # The kill switch: the SSM parameter the template creates (/proxymx/<stack>/enabled = true);
    # "" = no switch (tests and local runs without one).
    enabled_parameter: str = setting("ENABLED_PARAMETER", matching(PARAMETER_NAME), "")
    # The same actor undoing the PROXY setting of one unit this many times within this window
    # suspends the repairs of that unit for a day (outcome suspended, metric DriftFlapping).
    flap_threshold: int = setting("FLAP_THRESHOLD", integer(*FLAP_THRESHOLD_RANGE), 3)
    flap_window_minutes: int = setting("FLAP_WINDOW_MINUTES", integer(*FLAP_WINDOW_RANGE), 60)

    @property
    def required_tag_pair(self) -> tuple[str, str | None] | None:
        if not self.required_tag:
            return None
        key, sep, value = self.required_tag.partition("=")
        return key, (value if sep else None)


def environment_names() -> dict[str, str]:
    """Field name -> its environment variable (for the docs and the tests)."""
    return {f.name: f.metadata["env"] for f in fields(Settings)}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        name = f.metadata["env"]
        if name not in env:
            continue
        raw = env[name]
        try:
            values[f.name] = f.metadata["parse"](raw)
        except ValueError as exc:
            shown = repr(raw) if len(raw) <= 80 else f"{raw[:77]!r}..."
            raise InvalidSetting(f"{name}={shown}: {exc}") from None
    return Settings(**values)


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process-wide settings (cold start). Tests call ``settings.cache_clear()``."""
    return load_settings()
