"""The contract between the SSM document's script and CheckOutcome.

The script's LAST line of standard output is one JSON object (and nothing else), e.g.::

    {"proxymx": "postfix-summary", "schema": 1, "result": "configured",
     "postfix_version": "3.7.11", "proxy_protocol": "v2", "smtp_ports": [25],
     "changed": ["main.cf:postscreen_upstream_proxy_protocol", "master.cf:smtp/inet"],
     "verified": {"postscreen_upstream_proxy_protocol": "haproxy",
                  "postscreen_upstream_proxy_timeout": "5s", "smtp/inet": "postscreen"},
     "listening": true, "running": true, "dry_run": false, "reason": null}

``result`` is one of ``configured`` (changes made and verified), ``unchanged`` (already right,
nothing written), ``dry-run`` (plan only), ``failed`` (rolled back; ``reason`` says why).
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SUMMARY_MARKER = "postfix-summary"


class PostfixConfigResult(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    proxymx: Literal["postfix-summary"]
    schema_version: int = Field(alias="schema")
    # "reverted": a Mode=revert run took the PROXY settings out (issue 7, the way back).
    result: Literal["configured", "unchanged", "reverted", "dry-run", "failed"]
    postfix_version: str | None = None
    proxy_protocol: str | None = None
    smtp_ports: list[int] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    verified: dict[str, str] = Field(default_factory=dict)
    listening: bool = False
    running: bool = False
    dry_run: bool = False
    reason: str | None = None

    @property
    def proves_configuration(self) -> bool:
        """True only when the instance demonstrably speaks the PROXY protocol now."""
        return (
            self.result in ("configured", "unchanged")
            and not self.dry_run
            and self.running
            and self.listening
            and self.verified.get("postscreen_upstream_proxy_protocol") == "haproxy"
        )


def parse_summary(stdout: str) -> PostfixConfigResult | None:
    """The summary from a script's standard output, or None when the last line is not one."""
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    if not lines:
        return None
    try:
        data = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("proxymx") != SUMMARY_MARKER:
        return None
    try:
        return PostfixConfigResult.model_validate(data)
    except ValidationError:
        return None
