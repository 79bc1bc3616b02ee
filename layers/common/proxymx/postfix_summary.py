"""The contract between the SSM document's script and CheckOutcome.

The script's LAST line of standard output is one JSON object (and nothing else); schema 2::

    {"proxymx": "postfix-summary", "schema": 2, "result": "configured", "mode": "configure",
     "postfix_version": "3.7.11", "proxy_protocol": "v2", "accepts": "any", "config_level": 2,
     "ipv6_clients": true, "smtp_ports": [25],
     "changed": ["main.cf:postscreen_upstream_proxy_protocol", "master.cf:smtp/inet"],
     "verified": {"postscreen_upstream_proxy_protocol": "haproxy",
                  "postscreen_upstream_proxy_timeout": "5s", "smtp/inet": "postscreen"},
     "listening": true, "running": true, "dry_run": false, "reason": null}

``result``: ``configured`` (changes made and verified), ``unchanged`` (already right, nothing
written), ``reverted`` (the PROXY settings taken out again, ``mode: revert``), ``dry-run`` (plan
only), ``failed`` (rolled back; ``reason`` says why). ``proxy_protocol`` is what was requested,
``accepts`` what this Postfix reads in haproxy mode (``any`` from 3.5, else ``v1``; null after a
revert), ``config_level`` what the document proves, ``ipv6_clients`` whether header addresses of
AF_INET6/TCP6 were accepted and proven.

Schema 1 summaries (no ``mode``, ``accepts``, ``config_level``, ``ipv6_clients``) still parse.
Every default is the safe one: a field the script did not print never proves anything
(``listening``/``running`` false, ``mode`` configure, ``config_level`` 1, ``ipv6_clients`` false).

SSM keeps only the beginning of a command's output (2,500 characters through
ListCommandInvocations, 24,000 through GetCommandInvocation): a last line longer than
:data:`SUMMARY_MAX` characters is not a summary.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from proxymx.models.reader import SHORT_MAX, Invalid, Obj
from proxymx.models.record import Record

SUMMARY_MARKER = "postfix-summary"
SUMMARY_MAX: Final = 2000
SCHEMAS: Final = (1, 2)
RESULTS: Final = ("configured", "unchanged", "reverted", "dry-run", "failed")
MODES: Final = ("configure", "revert")
_VERSION = re.compile(r"[0-9][0-9A-Za-z.+~_-]{0,63}")


class PostfixConfigResult(Record):
    proxymx: str
    schema_version: int
    result: str
    mode: str = "configure"
    postfix_version: str | None = None
    proxy_protocol: str | None = None
    accepts: str | None = None
    config_level: int = 1
    ipv6_clients: bool = False
    smtp_ports: list[int]
    changed: list[str]
    verified: dict[str, str]
    listening: bool = False
    running: bool = False
    dry_run: bool = False
    reason: str | None = None

    @classmethod
    def read(cls, o: Obj) -> PostfixConfigResult:
        schema = o.integer("schema", lo=min(SCHEMAS), hi=max(SCHEMAS))
        return cls(
            proxymx=o.const("proxymx", SUMMARY_MARKER),
            schema_version=schema,
            result=o.choice("result", RESULTS),
            mode=o.choice("mode", MODES, default="configure"),
            postfix_version=o.opt_text("postfix_version", max_len=64, pattern=_VERSION),
            proxy_protocol=o.opt_choice("proxy_protocol", ("v1", "v2", "any")),
            accepts=o.opt_choice("accepts", ("any", "v1")),
            config_level=o.integer("config_level", lo=1, hi=99, default=1),
            ipv6_clients=o.flag("ipv6_clients", default=False),
            smtp_ports=o.integers("smtp_ports", lo=1, hi=65535, max_items=64),
            changed=o.texts("changed", max_len=SHORT_MAX, max_items=64),
            verified=o.text_map("verified", max_len=SHORT_MAX, max_items=64),
            listening=o.flag("listening", default=False),
            running=o.flag("running", default=False),
            dry_run=o.flag("dry_run", default=False),
            reason=o.opt_text("reason", max_len=SUMMARY_MAX),
        )

    @property
    def proves_configuration(self) -> bool:
        """True only when the instance demonstrably speaks the PROXY protocol now."""
        return (
            self.result in ("configured", "unchanged")
            and self.mode == "configure"
            and not self.dry_run
            and self.running
            and self.listening
            and self.verified.get("postscreen_upstream_proxy_protocol") == "haproxy"
        )

    @property
    def proves_plain(self) -> bool:
        """True only when the instance demonstrably speaks plain SMTP again (a revert that held)."""
        return (
            self.result in ("reverted", "unchanged")
            and self.mode == "revert"
            and not self.dry_run
            and self.running
            and self.listening
        )


def parse_summary(stdout: str) -> PostfixConfigResult | None:
    """The summary from a script's standard output, or None when the last line is not one."""
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    if not lines or len(lines[-1]) > SUMMARY_MAX:
        return None
    try:
        data: Any = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("proxymx") != SUMMARY_MARKER:
        return None
    try:
        return PostfixConfigResult.read(Obj(data))
    except Invalid:
        return None
