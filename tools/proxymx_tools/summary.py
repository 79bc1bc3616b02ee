"""Summary lines as the SSM document's script prints them (see proxymx.postfix_summary): what the
embedded AWS answers for a scripted command, and what the tests judge. No AWS, no moto."""

from __future__ import annotations

import json
from collections.abc import Iterable


def proving_summary(
    *,
    proxy_protocol: str = "any",
    smtp_ports: Iterable[int] = (25,),
    postfix_version: str = "3.7.11",
    result: str = "configured",
    upstream_proxy_timeout: str = "5s",
) -> str:
    """A summary line (see proxymx.postfix_summary) that proves the configuration."""
    summary = {
        "proxymx": "postfix-summary",
        "schema": 1,
        "result": result,
        "postfix_version": postfix_version,
        "proxy_protocol": proxy_protocol,
        "smtp_ports": list(smtp_ports),
        "changed": ["main.cf:postscreen_upstream_proxy_protocol", "master.cf:smtp/inet"]
        if result == "configured"
        else [],
        "verified": {
            "postscreen_upstream_proxy_protocol": "haproxy",
            "postscreen_upstream_proxy_timeout": upstream_proxy_timeout,
            "smtp/inet": "postscreen",
        },
        "listening": True,
        "running": True,
        "dry_run": False,
        "reason": None,
    }
    return json.dumps(summary, separators=(",", ":"))


def failed_summary(reason: str, *, postfix_version: str | None = "3.7.11") -> str:
    return json.dumps(
        {
            "proxymx": "postfix-summary",
            "schema": 1,
            "result": "failed",
            "postfix_version": postfix_version,
            "changed": [],
            "verified": {},
            "listening": True,
            "running": True,
            "dry_run": False,
            "reason": reason,
        },
        separators=(",", ":"),
    )
