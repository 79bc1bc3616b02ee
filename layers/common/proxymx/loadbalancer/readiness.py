"""Readiness: what an instance's tag ``proxymx:proxy-protocol`` says it was proven to speak.

Pure: no AWS. One grammar, parsed by :meth:`Readiness.parse` and written by
:func:`tag_value_from_summary` (docs/agreement.md has it for operators who bake AMIs):

- ``ready`` -- bare: the operator's assertion (a baked AMI, a launch template) for every port
  and every version.
- ``ready;ports=25,587;v=any;doc=2;ip6=1;at=20261130T120501Z`` -- written by proxymx from a
  summary that proved the configuration: the instance ports proven, the versions Postfix reads
  (``any`` or ``v1``), the document's *configuration level* (not its SSM version: a cosmetic
  document update must not make the whole fleet unready), IPv6 client addresses accepted, when.
- ``plain;doc=2;at=...`` -- proven plain (a revert, or a launch behind units that send nothing).
- anything else, or no tag -> not ready, and :attr:`Readiness.why` says why.

A load balancer unit is switched on only when every target's readiness :meth:`covers` its
requirement (issue 7.2).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import field
from datetime import UTC, datetime
from typing import Literal

from proxymx.frozen import frozen

READINESS_TAG_KEY = "proxymx:proxy-protocol"
# The configuration level of the current document: a tag proven at a lower level does not
# cover (the document now proves more, e.g. IPv6 client addresses).
REQUIRED_CONFIG_LEVEL = 2
# EC2 tag values are at most 256 characters.
MAX_TAG_VALUE = 256

Version = Literal["v1", "v2"]
Accepts = Literal["any", "v1"]
_TIME = re.compile(r"^\d{8}T\d{6}Z$")


@frozen
class Requirement:
    """What a unit needs of every target behind it: the instance ports it forwards to, the PROXY
    version it sends, and whether IPv6 senders reach it (a dual-stack NLB)."""

    ports: tuple[int, ...]
    version: Version
    ipv6: bool = False

    def describe(self) -> str:
        ports = ",".join(str(p) for p in self.ports)
        return f"PROXY {self.version} on ports {ports}" + (" with IPv6 senders" if self.ipv6 else "")


@frozen
class Readiness:
    state: Literal["ready", "plain", "unknown"]
    # None: every port (bare ``ready``).
    ports: frozenset[int] | None = None
    accepts: Accepts = "any"
    config_level: int | None = None
    ipv6: bool = False
    at: str | None = None
    bare: bool = False
    why: str = ""
    raw: str | None = field(default=None, compare=False)

    @classmethod
    def parse(cls, value: str | None) -> Readiness:
        """The readiness a tag value states; never raises (garbage is ``unknown`` with a why)."""
        if value is None:
            return cls("unknown", why=f"no {READINESS_TAG_KEY} tag")
        text = value.strip()
        if len(value) > MAX_TAG_VALUE:
            return cls("unknown", why=f"{READINESS_TAG_KEY} longer than {MAX_TAG_VALUE}", raw=value)
        if text == "ready":
            return cls("ready", bare=True, why="ready (asserted by the operator)", raw=value)
        head, _, rest = text.partition(";")
        if head not in ("ready", "plain"):
            return cls("unknown", why=f"{READINESS_TAG_KEY}={value!r} is not ready", raw=value)
        fields: dict[str, str] = {}
        for part in rest.split(";") if rest else []:
            key, sep, item = part.partition("=")
            if not sep or key in fields:
                return cls("unknown", why=f"{READINESS_TAG_KEY}={value!r}: bad field {part!r}", raw=value)
            fields[key.strip()] = item.strip()
        try:
            return cls._from_fields(head, fields, value)
        except ValueError as exc:
            return cls("unknown", why=f"{READINESS_TAG_KEY}={value!r}: {exc}", raw=value)

    @classmethod
    def _from_fields(cls, head: str, fields: Mapping[str, str], value: str) -> Readiness:
        unknown = set(fields) - {"ports", "v", "doc", "ip6", "at"}
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)}")
        at = fields.get("at")
        if at is not None and not _TIME.match(at):
            raise ValueError(f"at={at} is not YYYYMMDDTHHMMSSZ")
        doc = int(fields["doc"]) if "doc" in fields else None
        if head == "plain":
            return cls("plain", config_level=doc, at=at, why="proven plain (no PROXY header)", raw=value)
        if "ports" not in fields:
            raise ValueError("ports missing")
        ports = frozenset(int(p) for p in fields["ports"].split(",") if p.strip())
        if not ports or any(not 0 < p < 65536 for p in ports):
            raise ValueError(f"ports={fields['ports']} are not TCP ports")
        accepts = fields.get("v", "any")
        if accepts not in ("any", "v1"):
            raise ValueError(f"v={accepts} is not any or v1")
        ip6 = fields.get("ip6", "0")
        if ip6 not in ("0", "1"):
            raise ValueError(f"ip6={ip6} is not 0 or 1")
        if doc is None:
            raise ValueError("doc missing")
        return cls(
            "ready",
            ports=ports,
            accepts="any" if accepts == "any" else "v1",
            config_level=doc,
            ipv6=ip6 == "1",
            at=at,
            why="ready",
            raw=value,
        )

    def covers(self, requirement: Requirement) -> tuple[bool, str]:
        """(covered, reason): does this proven configuration take what the unit sends?"""
        if self.state != "ready":
            return False, self.why
        if self.bare:
            return True, self.why
        assert self.ports is not None and self.config_level is not None
        missing = [p for p in requirement.ports if p not in self.ports]
        if missing:
            return False, f"port {','.join(str(p) for p in missing)} not proven"
        if self.accepts == "v1" and requirement.version != "v1":
            return False, f"reads v1 only, the target group sends {requirement.version}"
        if self.config_level < REQUIRED_CONFIG_LEVEL:
            return False, f"config level {self.config_level} < {REQUIRED_CONFIG_LEVEL}"
        if requirement.ipv6 and not self.ipv6:
            return False, "IPv6 senders not proven (dual-stack NLB)"
        return True, "ready"


def utc_stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def ready_tag_value(
    ports: Iterable[int], accepts: Accepts, config_level: int, ipv6: bool, now: datetime | None = None
) -> str:
    port_list = ",".join(str(p) for p in sorted(set(ports)))
    value = f"ready;ports={port_list};v={accepts};doc={config_level};ip6={int(ipv6)};at={utc_stamp(now)}"
    if len(value) > MAX_TAG_VALUE:
        raise ValueError(f"readiness tag would exceed {MAX_TAG_VALUE} characters ({len(value)})")
    return value


def plain_tag_value(config_level: int, now: datetime | None = None) -> str:
    return f"plain;doc={config_level};at={utc_stamp(now)}"


def summary_fields(summary: object) -> tuple[str, Accepts, int, bool]:
    """(mode, accepts, config_level, ipv6_clients) of a summary, read defensively: a schema-1
    summary lacks them (mode configure, level 1, no IPv6, any from Postfix 3.5 else v1)."""
    extra = getattr(summary, "model_extra", None) or {}

    def read(name: str) -> object:
        return getattr(summary, name, None) if name not in extra else extra[name]

    mode = str(read("mode") or "configure")
    level_value = read("config_level")
    level = int(level_value) if isinstance(level_value, int | str) and str(level_value).isdigit() else 1
    ipv6 = read("ipv6_clients") is True
    accepts_value = read("accepts")
    if accepts_value in ("any", "v1"):
        accepts: Accepts = "any" if accepts_value == "any" else "v1"
    else:
        accepts = "any" if _postfix_at_least(str(read("postfix_version") or ""), (3, 5)) else "v1"
    return mode, accepts, level, ipv6


def tag_value_from_summary(summary: object, now: datetime | None = None) -> str | None:
    """The tag value a proving summary earns, or None when it proves nothing."""
    mode, accepts, level, ipv6 = summary_fields(summary)
    if mode == "revert":
        return plain_tag_value(level, now) if proves_plain(summary) else None
    if not getattr(summary, "proves_configuration", False):
        return None
    ports = list(getattr(summary, "smtp_ports", []) or [])
    if not ports:
        return None
    return ready_tag_value(ports, accepts, level, ipv6, now)


def proves_plain(summary: object) -> bool:
    """A revert run proved Postfix reads no header (the summary class may not know ``mode``)."""
    own = getattr(type(summary), "proves_plain", None)
    if isinstance(own, property) and own.fget is not None:
        return bool(own.fget(summary))
    mode, _, _, _ = summary_fields(summary)
    return (
        mode == "revert"
        and getattr(summary, "result", None) in ("reverted", "unchanged")
        and bool(getattr(summary, "running", False))
        and bool(getattr(summary, "listening", False))
        and not getattr(summary, "dry_run", True)
    )


def _postfix_at_least(version: str, wanted: tuple[int, int]) -> bool:
    parts = re.findall(r"\d+", version)
    if len(parts) < 2:
        return False
    return (int(parts[0]), int(parts[1])) >= wanted
