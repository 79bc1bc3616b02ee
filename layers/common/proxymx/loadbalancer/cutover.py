"""The fleet-first cutover (issue 7.3): pure decisions and the StateTable records they need.

A unit (Classic ELB, NLB target group) kept off by the interlock because some of its targets are
not ready is cut over in the only safe order: the fleet first (the document, ``Mode=configure``,
on the unready targets), then the header -- switched on as soon as the last target is proven,
driven by the SSM status events (CheckOutcome), never by polling. In between the targets answer
``421`` to clients that send no header (senders retry; nothing bounces); that is the only
mismatched state a cutover passes through (docs/postfix.md), and ``gap_seconds`` measures it.

All or nothing: one target failing reverts every target already configured (``Mode=revert``),
the unit stays off, the cutover ends ``failed`` and is not retried for :data:`RETRY_AFTER_SECONDS`.

Records (StateTable, one string key ``pk``; every write that matters is conditional, so that of
two concurrent callers exactly one wins each transition):

- ``CUTOVER#<unit key>``: the cutover. ``phase``: ``configuring`` -> ``switching`` -> ``switched``;
  on a failure ``reverting`` -> ``failed``; ``cancelled`` (a slot or the hourly cap refused it
  right after it was claimed); ``held`` (the kill switch or the unit's pause tag stopped its switch
  or its revert: ``resume`` says which the sweep takes up again). ``targets``: instance id ->
  ``pending`` | ``proven`` | ``failed`` (its configure run failed) | ``reverting`` | ``reverted``
  | ``revert-failed``.
- ``CUTOVER-REF#<16 hex>``: the unit key of a digest. The SendCommand ``Comment`` (at most 100
  characters) cannot hold a target group ARN, so it carries the digest and this record maps it back.
- ``SLOT#cutover``: the string set ``holders`` of units cutting over now (at most
  ``MaxCutoversInFlight``).
- ``RATE#cutover#<YYYYMMDDTHH>``: cutovers started in that UTC hour (at most ``MaxCutoversPerHour``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from proxymx.frozen import frozen
from proxymx.loadbalancer.plan import Blocked
from proxymx.loadbalancer.readiness import Requirement
from proxymx.state import StateTable, Written

CUTOVER_PREFIX = "CUTOVER#"
REF_PREFIX = "CUTOVER-REF#"
SLOT_KEY = "SLOT#cutover"
RATE_PREFIX = "RATE#cutover#"
# SendCommand comments: a configure run of a cutover, a revert run of a failed one, and a revert
# run of the way back (proxymx:proxy-protocol=off). None parses as a lifecycle context
# (proxymx.launch.context reads ``proxymx:[...]`` JSON only).
CONFIGURE_COMMENT = "proxymx:cutover:"
REVERT_COMMENT = "proxymx:cutover-revert:"
OFF_COMMENT = "proxymx:off:"
DIGEST_LENGTH = 16

# A failed cutover is not retried before this (no tight loop against a fleet that cannot be
# configured); an operator retries sooner with `proxymx cutover clear <unit>` (deletes CUTOVER#).
RETRY_AFTER_SECONDS = 6 * 3600
# Records outlive any cutover and its retry_after; DynamoDB's TTL removes them later.
RECORD_LIFETIME_SECONDS = 7 * 24 * 3600
RATE_LIFETIME_SECONDS = 2 * 3600
# The document's own execution timeout (template.yaml): a configure run lasts at most the
# command's delivery timeout plus this.
DOCUMENT_EXECUTION_SECONDS = 300

Phase = Literal["configuring", "switching", "switched", "reverting", "failed", "cancelled", "held"]
# ``held`` is not terminal: a held cutover keeps its slot and its record until the sweep resumes it.
TERMINAL_PHASES: frozenset[str] = frozenset({"switched", "failed", "cancelled"})
# What a held cutover does once the operator's brake is off: the switch it was about to make, or
# the revert (all or nothing) it was about to start.
Resume = Literal["switch", "revert"]
# Target states in which Postfix may be configured for the header (a revert is still owed).
STILL_CONFIGURED: frozenset[str] = frozenset({"pending", "proven", "reverting"})

CommentKind = Literal["configure", "revert", "off"]


# ----- pure decisions ---------------------------------------------------------------------------


def digest(unit: str) -> str:
    return hashlib.sha256(unit.encode()).hexdigest()[:DIGEST_LENGTH]


def comment_for(kind: CommentKind, unit: str) -> str:
    prefix = {"configure": CONFIGURE_COMMENT, "revert": REVERT_COMMENT, "off": OFF_COMMENT}[kind]
    return prefix + digest(unit)


def parse_comment(comment: str) -> tuple[CommentKind, str] | None:
    """(kind, digest) of a cutover command's comment; None for any other comment."""
    kinds: tuple[tuple[str, CommentKind], ...] = (
        (REVERT_COMMENT, "revert"),
        (CONFIGURE_COMMENT, "configure"),
        (OFF_COMMENT, "off"),
    )
    for prefix, kind in kinds:
        if comment.startswith(prefix):
            rest = comment[len(prefix) :]
            if len(rest) == DIGEST_LENGTH and all(c in "0123456789abcdef" for c in rest):
                return kind, rest
            return None
    return None


def rate_key(now: datetime) -> str:
    return RATE_PREFIX + now.astimezone(UTC).strftime("%Y%m%dT%H")


@frozen
class StartDecision:
    """Whether a blocked unit is cut over now; ``reason`` is what the operator reads."""

    start: bool
    reason: str
    targets: tuple[str, ...] = ()


def decide_start(
    blocked: Blocked, *, cutover: str, record: Mapping[str, Any] | None, now: int
) -> StartDecision:
    """Pure: cut this blocked unit over? (The slot and the hourly cap are checked by the writes.)"""
    if cutover != "auto":
        return StartDecision(False, "no cutover (Cutover=off): configure the targets, or set Cutover=auto")
    outside = blocked.outside_fleet
    if outside:
        names = ", ".join(u.target_id for u in outside[:5])
        return StartDecision(
            False,
            f"no cutover: {len(outside)} target(s) outside the fleet ({names}); proxymx never touches "
            "them (tag them proxymx:fleet, configure them, or deregister them)",
        )
    launching = [u.target_id for u in blocked.unready if u.launching]
    if launching:
        # Its launch runs the document already (ConfigureInstance, for what the unit sends now):
        # a second run on the same instance could race it. Once it is in service, it is a target
        # like the others.
        return StartDecision(
            False,
            f"no cutover yet: {len(launching)} launch(es) in Pending:Wait ({', '.join(launching[:5])}) are "
            "configured by the launch flow first; the next event or sweep starts it",
        )
    if record is not None:
        phase = str(record.get("phase", ""))
        if phase not in TERMINAL_PHASES:
            return StartDecision(False, f"cutover in flight ({phase})")
        retry_after = int(record.get("retry_after", 0))
        if retry_after > now:
            when = datetime.fromtimestamp(retry_after, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return StartDecision(
                False,
                f"last cutover {phase} ({record.get('reason', '')}); not retried before {when} "
                f"(`proxymx cutover clear {blocked.unit}` to retry now)",
            )
    targets = tuple(sorted({u.target_id for u in blocked.unready}))
    return StartDecision(True, f"cutover: {len(targets)} target(s) to configure first", targets)


Step = Literal["wait", "switch", "revert", "fail"]


def next_step(record: Mapping[str, Any]) -> Step:
    """Pure: what the record, as just written, asks for next.

    ``configuring``: every target proven -> switch; any failed -> revert (all or nothing); else wait.
    ``reverting``: no target still configured (or still running its configure) -> fail; else wait.
    """
    phase = record.get("phase")
    states = list((record.get("targets") or {}).values())
    if phase == "configuring":
        if any(s == "failed" for s in states):
            return "revert"
        if states and all(s == "proven" for s in states):
            return "switch"
        return "wait"
    if phase == "reverting" and not any(s in STILL_CONFIGURED for s in states):
        return "fail"
    return "wait"


def gap_seconds(first_proven_at: int | None, switched_at: int) -> int:
    """Header off + Postfix configured (clients without a header get 421): from the first target
    proven to the switch."""
    return max(0, switched_at - first_proven_at) if first_proven_at else 0


def requirement_of(record: Mapping[str, Any]) -> Requirement:
    ports = tuple(int(p) for p in str(record.get("ports", "")).split(",") if p)
    version: Literal["v1", "v2"] = "v2" if record.get("version") == "v2" else "v1"
    return Requirement(ports, version, ipv6=bool(record.get("ipv6", False)))


def document_parameters_for(requirement: Requirement, mode: Literal["configure", "revert"]) -> dict[str, str]:
    """The unit's ports and version: the document proves exactly what the unit will send."""
    return {
        "SmtpPorts": ",".join(str(p) for p in requirement.ports),
        "ProxyProtocol": requirement.version,
        "Mode": mode,
    }


# ----- the records ------------------------------------------------------------------------------


class CutoverRecords:
    """The cutover's StateTable records (conditional writes only where a race matters)."""

    def __init__(self, table: StateTable) -> None:
        self.table = table

    @staticmethod
    def key(unit: str) -> str:
        return CUTOVER_PREFIX + unit

    def get(self, unit: str, now: int) -> dict[str, Any] | None:
        return self.table.get(self.key(unit), now=now)

    def listed(self, now: int) -> list[dict[str, Any]]:
        """Every live cutover record (``proxymx cutover list``: an operator's read, a Scan)."""
        return self.table.scan_prefix(CUTOVER_PREFIX, now=now)

    def clear(self, unit: str) -> Written:
        """Delete the record only when its cutover is over (terminal phase): one conditional
        delete, so a cutover that moves on meanwhile is never cut from under its flow. Nothing
        else is touched (the slot of a terminal cutover is the sweep's to release)."""
        terminal = sorted(TERMINAL_PHASES)
        bindings = {f":t{i}": phase for i, phase in enumerate(terminal)}
        return self.table.delete(
            self.key(unit),
            condition=f"#phase IN ({', '.join(bindings)})",
            names={"#phase": "phase"},
            bindings=bindings,
        )

    def unit_of(self, digest_hex: str, now: int) -> str | None:
        ref = self.table.get(REF_PREFIX + digest_hex, now=now)
        return str(ref["unit"]) if ref and ref.get("unit") else None

    def claim(self, unit: str, requirement: Requirement, targets: tuple[str, ...], now: int) -> Written:
        """The cutover's record: absent, or terminal with its retry_after passed."""
        record = {
            "kind": "cutover",
            "unit": unit,
            "phase": "configuring",
            "ports": ",".join(str(p) for p in requirement.ports),
            "version": requirement.version,
            "ipv6": requirement.ipv6,
            "targets": dict.fromkeys(targets, "pending"),
            "commands": {},
            "started_at": now,
            "retry_after": now,
        }
        written = self.table.put_if_absent(
            self.key(unit),
            record,
            now=now,
            expires_at=now + RECORD_LIFETIME_SECONDS,
            or_if="#phase IN (:switched, :failed, :cancelled) AND retry_after <= :now",
            names={"#phase": "phase"},
            bindings={":switched": "switched", ":failed": "failed", ":cancelled": "cancelled", ":now": now},
        )
        if written.won:
            self.table.put_if_absent(
                REF_PREFIX + digest(unit),
                {"unit": unit},
                now=now,
                expires_at=now + RECORD_LIFETIME_SECONDS,
                or_if="attribute_exists(pk)",
            )
        return written

    def take_slot(self, unit: str, limit: int) -> bool:
        written = self.table.update_expression_if(
            SLOT_KEY,
            "ADD holders :me",
            condition="attribute_not_exists(holders) OR size(holders) < :limit OR contains(holders, :unit)",
            bindings={":me": {unit}, ":limit": limit, ":unit": unit},
        )
        return written.won

    def release_slot(self, unit: str) -> bool:
        written = self.table.update_expression_if(
            SLOT_KEY,
            "DELETE holders :me",
            condition="contains(holders, :unit)",
            bindings={":me": {unit}, ":unit": unit},
        )
        return written.won

    def slot_holders(self, now: int) -> set[str]:
        slot = self.table.get(SLOT_KEY, now=now)
        return set(slot.get("holders") or ()) if slot else set()

    def count_start(self, now: datetime, cap: int) -> bool:
        """One more cutover started this UTC hour, unless the cap is reached."""
        written = self.table.update_expression_if(
            rate_key(now),
            "ADD started :one SET expires_at = :expires",
            condition="attribute_not_exists(started) OR started < :cap",
            bindings={":one": 1, ":cap": cap, ":expires": int(now.timestamp()) + RATE_LIFETIME_SECONDS},
        )
        return written.won

    def set_fields(self, unit: str, values: Mapping[str, Any], *, phase: str | None = None) -> Written:
        """Set top-level fields (only while the record is in ``phase``, when given)."""
        if phase is None:
            return self.table.update_if(self.key(unit), values, condition="attribute_exists(pk)")
        return self.table.update_if(
            self.key(unit),
            values,
            condition="#phase = :phase",
            names={"#phase": "phase"},
            bindings={":phase": phase},
        )

    def transition(self, unit: str, old: str, new: str, values: Mapping[str, Any] | None = None) -> Written:
        """``old`` -> ``new``, only for the one caller that finds the record in ``old``."""
        update = {"phase": new, **(values or {})}
        return self.table.update_if(
            self.key(unit),
            update,
            condition="#phase = :old",
            names={"#phase": "phase"},
            bindings={":old": old},
        )

    def mark_target(
        self,
        unit: str,
        target: str,
        new: str,
        *,
        phase: str,
        expected: tuple[str, ...],
        extra: Mapping[str, Any] | None = None,
    ) -> Written:
        """One target's state (``expected`` -> ``new``) while the record is in ``phase``; the whole
        record as left (ALL_NEW) when this call won."""
        sets = ["targets.#target = :new"]
        bindings: dict[str, Any] = {":new": new, ":phase": phase}
        for index, value in enumerate((extra or {}).values()):
            sets.append(f"#extra{index} = if_not_exists(#extra{index}, :extra{index})")
            bindings[f":extra{index}"] = value
        names = {"#target": target, "#phase": "phase"}
        names.update({f"#extra{i}": name for i, name in enumerate(extra or {})})
        allowed = " OR ".join(f"targets.#target = :expected{i}" for i in range(len(expected)))
        bindings.update({f":expected{i}": value for i, value in enumerate(expected)})
        return self.table.update_expression_if(
            self.key(unit),
            "SET " + ", ".join(sets),
            condition=f"#phase = :phase AND ({allowed})",
            names=names,
            bindings=bindings,
        )

    def add_targets(self, unit: str, targets: tuple[str, ...], *, phase: str) -> Written:
        """New targets (a registration during the cutover) join it as ``pending``."""
        names = {"#phase": "phase", **{f"#t{i}": t for i, t in enumerate(targets)}}
        sets = ", ".join(f"targets.#t{i} = :pending" for i in range(len(targets)))
        return self.table.update_expression_if(
            self.key(unit),
            f"SET {sets}, #phase = :configuring",
            condition="#phase = :phase",
            names=names,
            bindings={":pending": "pending", ":configuring": "configuring", ":phase": phase},
        )

    def record_command(self, unit: str, command_id: str, targets: list[str]) -> None:
        names = {f"#t{i}": t for i, t in enumerate(targets)}
        sets = ", ".join(f"commands.#t{i} = :command" for i in range(len(targets)))
        self.table.update_expression_if(
            self.key(unit),
            f"SET {sets}",
            condition="attribute_exists(pk)",
            names=names,
            bindings={":command": command_id},
        )
