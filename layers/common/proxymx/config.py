"""Configuration: one typed model, read once from the environment at cold start.

The template's parameters become environment variables (see ``Globals`` in template.yaml);
domain code receives a :class:`Settings` and never reads ``os.environ`` itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The fleet tag's KEY is fixed: CloudFormation cannot build an IAM condition key from a parameter.
FLEET_TAG_KEY = "proxymx:fleet"


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    smtp_ports: tuple[int, ...] = Field(default=(25,), alias="SMTP_PORTS", min_length=1)
    opt_out_tag_key: str = Field(default="proxymx:opt-out", alias="OPT_OUT_TAG_KEY")
    # "" (everything in scope), "KEY" (tag present) or "KEY=VALUE".
    required_tag: str = Field(default="", alias="REQUIRED_TAG")
    dry_run: bool = Field(default=False, alias="DRY_RUN")
    # Principals whose API calls are our own changes: never remediated again (no loops).
    self_role_arns: tuple[str, ...] = Field(default=(), alias="SELF_ROLE_ARNS")

    # The function's own Timeout (template.yaml, beside it): every AWS call's retry and timeout
    # budget derives from it (proxymx/budget.py). 60 s: the template's Globals.
    function_timeout_seconds: int = Field(default=60, alias="FUNCTION_TIMEOUT_SECONDS", ge=1, le=900)

    # --- Launch flow (issue 3; see docs/lifecycle-hook.md) ---
    # Hooks whose launch events we act on; groups in scope ("" = every group carrying such a hook).
    lifecycle_hook_names: tuple[str, ...] = Field(
        default=("proxymx-postfix-launch",), alias="LIFECYCLE_HOOK_NAMES", min_length=1
    )
    launch_group_names: tuple[str, ...] = Field(default=(), alias="LAUNCH_GROUP_NAMES")
    # Our SSM document (template: !Ref PostfixProxyProtocolDocument; locally, as proxymx invoke
    # resolves that Ref for the local stack "proxymx": proxymx-PostfixProxyProtocolDocument).
    document_name: str = Field(default="proxymx-PostfixProxyProtocolDocument", alias="DOCUMENT_NAME")
    proxy_protocol: str = Field(default="any", alias="PROXY_PROTOCOL", pattern=r"^(v1|v2|any)$")
    upstream_proxy_timeout: str = Field(
        default="5s", alias="UPSTREAM_PROXY_TIMEOUT", pattern=r"^[1-9][0-9]{0,2}s$"
    )
    command_timeout_seconds: int = Field(default=600, alias="COMMAND_TIMEOUT_SECONDS", ge=30, le=2592000)
    command_log_group: str = Field(default="", alias="COMMAND_LOG_GROUP")
    # ABANDON (replace the instance now) or HOOK_DEFAULT (leave it to the hook's DefaultResult).
    failure_result: str = Field(
        default="ABANDON", alias="FAILURE_RESULT", pattern=r"^(ABANDON|HOOK_DEFAULT)$"
    )
    notification_topic_arn: str = Field(default="", alias="NOTIFICATION_TOPIC_ARN")
    # The StateTable (template.yaml): one command per launch (proxymx.launch.claims).
    state_table_name: str = Field(default="", alias="STATE_TABLE")
    heartbeat_after_seconds: int = Field(default=120, alias="HEARTBEAT_AFTER_SECONDS", ge=0)
    # --- Reconcile sweep (docs/lifecycle-hook.md): groups tagged FLEET_TAG_KEY=<this> are in scope.
    fleet_tag_value: str = Field(default="mx", alias="FLEET_TAG_VALUE", min_length=1)

    @field_validator("lifecycle_hook_names", "launch_group_names", mode="before")
    @classmethod
    def _comma_names(cls, value: object) -> object:
        return _split(value)

    @field_validator("smtp_ports", "self_role_arns", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return _split(value)

    @field_validator("smtp_ports")
    @classmethod
    def _valid_ports(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        for port in value:
            if not 0 < port < 65536:
                raise ValueError(f"SMTP port {port} is not a TCP port")
        return value

    @property
    def required_tag_pair(self) -> tuple[str, str | None] | None:
        if not self.required_tag:
            return None
        key, sep, value = self.required_tag.partition("=")
        return key, (value if sep else None)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    return Settings.model_validate({k: v for k, v in env.items() if v != ""})


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process-wide settings (cold start). Tests call ``settings.cache_clear()``."""
    return load_settings()
