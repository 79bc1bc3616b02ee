"""Operators stay in control (issue 7.5): the kill switch and the flapping guard.

**The kill switch.** The template creates the SSM String parameter ``/proxymx/<stack>/enabled``
= ``true`` and passes its name as ``ENABLED_PARAMETER``. Every write path asks :func:`halted`
before it writes; a reason (not None) means *paused*: no load balancer write, no refresh or
cutover command, no drift repair; the outcome is ``paused`` with that reason (metric
``ProxymxPaused``). An operator flips it with ``proxymx pause`` / ``proxymx resume`` (or
``aws ssm put-parameter``): no stack update in an incident.

- Read on every invocation that would write, cached :data:`CACHE_SECONDS` in the process: a warm
  function under a burst of events reads it once per 30 s, and a flip takes effect within 30 s.
- Only the exact value ``true`` (spaces around it ignored) means enabled. Anything else, a
  missing parameter, or a read that still fails after botocore's retries means **paused**: the
  switch exists to stop proxymx, and a switch we cannot read must not be taken for "go" (fail
  safe). The reason says which, so an IAM or throttling problem is visible, not silent.
- Not halted: the launch flow. ConfigureInstance and CheckOutcome keep configuring launches for
  what their units send, and completing their lifecycle actions: they write nothing to a load
  balancer, an unproven launch is never put in service anyway, and leaving launches to the
  hook's DefaultResult (ABANDON) would shrink the fleet during the very incident that made the
  operator pull the switch. Reconcile's re-drive of stuck launches goes on for the same reason.

**The flapping guard.** An IaC tool that keeps turning the header off (its state says "no PROXY
policy") and proxymx that keeps turning it back on would flap forever, each run flipping live mail
between the two mismatches. When the same actor undoes the PROXY setting of the same unit
``FlapThreshold`` times within ``FlapWindowMinutes`` (event time), the repairs of that unit are
suspended for :data:`SUSPEND_SECONDS` (24 h): outcome ``suspended``, metric ``DriftFlapping``, its
alarm, one SNS notice naming the actor. The undo that reaches the threshold is NOT repaired (the
tool would only undo it again); the header stays as the tool left it, and the operator settles the
conflict (fix the IaC, or opt the unit out) -- then deletes ``DRIFT#<unit>`` to end it early.

- What counts: a drift event (``is_drift``) that really took the setting away (the plan has a
  repair to make), by its actor (the role behind an assumed-role session, else the principal).
  Our own roles are ignored upstream and never counted. A duplicate delivery of the same
  CloudTrail event (same ``eventID``) counts once.
- State: the StateTable item ``DRIFT#<unit key>``: the recent undos (event id -> time and actor),
  ``version``, ``suspended_until``. Each write is one UpdateItem conditional on the version read
  (or on no live item), retried on a lost race (optimistic locking): concurrent drift events are
  each counted exactly once. IAM: GetItem and UpdateItem on the table.
- A suspended unit is not repaired by the sweep either (it asks :meth:`FlapGuard.suspension`
  before any write to the unit).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from proxymx.errors import TransientAwsError, aws_errors, error_code
from proxymx.frozen import frozen
from proxymx.state import StateTable

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

    from proxymx.aws import Clients
    from proxymx.config import Settings

log = logging.getLogger(__name__)

ENABLED = "true"
CACHE_SECONDS = 30.0

Clock = Callable[[], float]


def judge(name: str, value: str | None, error: str | None = None) -> str | None:
    """The kill switch's verdict on what was read: None (enabled) or why proxymx is paused."""
    if error is not None:
        return f"kill switch {name} unreadable ({error}): paused (fail safe)"
    if value is None:
        return f"kill switch {name} not found: paused (fail safe)"
    if value.strip() == ENABLED:
        return None
    return f"kill switch {name} = {value.strip()[:40]!r}: proxymx is paused (`proxymx resume` ends it)"


@dataclass
class _Read:
    at: float
    reason: str | None


class KillSwitch:
    """The parameter's verdict, read at most once per :data:`CACHE_SECONDS` of ``clock``."""

    def __init__(self, name: str, *, clock: Clock = time.monotonic, ttl: float = CACHE_SECONDS) -> None:
        self.name = name
        self.clock = clock
        self.ttl = ttl
        self._last: _Read | None = None

    def halted(self, ssm: SSMClient) -> str | None:
        now = self.clock()
        if self._last is not None and now - self._last.at < self.ttl:
            return self._last.reason
        reason = self._read(ssm)
        if reason is not None:
            log.warning("%s", reason, extra={"kill_switch": self.name})
        self._last = _Read(now, reason)
        return reason

    def forget(self) -> None:
        self._last = None

    def _read(self, ssm: SSMClient) -> str | None:
        try:
            value = ssm.get_parameter(Name=self.name)["Parameter"].get("Value")
        except aws_errors() as exc:
            code = error_code(exc)
            if code == "ParameterNotFound":
                return judge(self.name, None)
            return judge(self.name, None, code or type(exc).__name__)
        return judge(self.name, value)


# One switch per parameter name for the process (a warm Lambda keeps it).
_switches: dict[str, KillSwitch] = {}


def halted(settings: Settings, clients: Clients, *, clock: Clock | None = None) -> str | None:
    """Why proxymx must not write now (the kill switch is off or unreadable), or None.

    Every write path calls this before it writes (load balancer flow, Reconcile, refresh, the
    cutover). Without a configured parameter (``ENABLED_PARAMETER`` = "") nothing is read.
    """
    name = settings.enabled_parameter
    if not name:
        return None
    switch = _switches.get(name)
    if switch is None or (clock is not None and switch.clock is not clock):
        switch = _switches[name] = KillSwitch(name, clock=clock or time.monotonic)
    return switch.halted(clients.ssm)


def forget() -> None:
    """Drop every cached verdict (tests; the CLI after it flips the switch)."""
    _switches.clear()


def set_enabled(ssm: SSMClient, name: str, enabled: bool) -> None:
    """``proxymx pause`` / ``resume``: overwrite the parameter (the template created it)."""
    ssm.put_parameter(Name=name, Value=ENABLED if enabled else "false", Type="String", Overwrite=True)


# ----- the flapping guard --------------------------------------------------------------------------

SUSPEND_SECONDS = 24 * 3600
# Optimistic locking: a lost race re-reads and retries; this many concurrent drift events of one
# unit within one read-write round trip is already far beyond any IaC run.
WRITE_ATTEMPTS = 8


def drift_key(unit: str) -> str:
    return f"DRIFT#{unit}"


@frozen
class Flapping:
    """Repairs of ``unit`` suspended until ``until`` (epoch seconds) because of ``actor``."""

    unit: str
    actor: str
    undos: int
    window_minutes: int
    until: int

    def describe(self) -> str:
        from datetime import UTC, datetime

        until = datetime.fromtimestamp(self.until, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f"repairs of {self.unit} suspended until {until}: {self.actor} undid its PROXY setting "
            f"{self.undos} time(s) within {self.window_minutes} min (flapping; fix the tool, or opt "
            f"the unit out; delete the StateTable item {drift_key(self.unit)} to resume earlier)"
        )


def recent_undos(drifts: dict[str, str], at: int, window_seconds: int) -> dict[str, str]:
    """The undos (event id -> "epoch|actor") within the window that ends at ``at``."""
    return {key: entry for key, entry in drifts.items() if int(entry.split("|", 1)[0]) > at - window_seconds}


def undos_by(drifts: dict[str, str], actor: str) -> int:
    return sum(1 for entry in drifts.values() if entry.split("|", 1)[1] == actor)


class FlapGuard:
    """Counts undos per unit and actor in the StateTable; suspends flapping units."""

    def __init__(
        self,
        table: StateTable,
        *,
        threshold: int,
        window_minutes: int,
        suspend_seconds: int = SUSPEND_SECONDS,
    ) -> None:
        self.table = table
        self.threshold = threshold
        self.window_minutes = window_minutes
        self.suspend_seconds = suspend_seconds

    def suspension(self, unit: str, now: int) -> Flapping | None:
        """The unit's suspension in force, or None."""
        item = self.table.get(drift_key(unit), now=now)
        if not item or int(item.get("suspended_until", 0)) <= now:
            return None
        return self._flapping(unit, item)

    def record(self, unit: str, actor: str, event_id: str | None, at: int, now: int) -> Flapping | None:
        """Count one undo (``at``: the event's time); the suspension when this one reaches the
        threshold (or one is already in force), else None."""
        window = self.window_minutes * 60
        key = event_id or f"{actor}@{at}"
        for _attempt in range(WRITE_ATTEMPTS):
            item = self.table.get(drift_key(unit), now=now)
            drifts = recent_undos(dict((item or {}).get("drifts") or {}), at, window)
            if key in drifts and item is not None:
                # The same CloudTrail event delivered again: counted already.
                return self._flapping(unit, item) if int(item.get("suspended_until", 0)) > now else None
            drifts[key] = f"{at}|{actor}"
            undos = undos_by(drifts, actor)
            until = int((item or {}).get("suspended_until", 0))
            suspended_actor = str((item or {}).get("suspended_actor", ""))
            if undos >= self.threshold and until <= now:
                until, suspended_actor = now + self.suspend_seconds, actor
            version = int((item or {}).get("version", 0))
            values = {
                "unit": unit,
                "drifts": drifts,
                "version": version + 1,
                "suspended_until": until,
                "suspended_actor": suspended_actor,
                "suspended_undos": undos
                if suspended_actor == actor
                else int((item or {}).get("suspended_undos", 0)),
            }
            expires = max(now + window, until) + 3600
            # One UpdateItem for both cases (it creates an absent item): conditional on the
            # version read, or on there being no live item (absent or expired) when none was read.
            written = self.table.update_if(
                drift_key(unit),
                {**values, "expires_at": expires},
                condition=(
                    "#version = :version"
                    if item is not None
                    else "attribute_not_exists(pk) OR expires_at <= :now"
                ),
                names={"#version": "version"} if item is not None else None,
                bindings={":version": version} if item is not None else {":now": now},
            )
            if written.won:
                return self._flapping(unit, values) if until > now else None
        raise TransientAwsError(f"{drift_key(unit)}: {WRITE_ATTEMPTS} concurrent writers, gave up (retried)")

    def _flapping(self, unit: str, item: dict[str, object]) -> Flapping:
        return Flapping(
            unit=unit,
            actor=str(item.get("suspended_actor") or "unknown"),
            undos=int(str(item.get("suspended_undos") or 0)),
            window_minutes=self.window_minutes,
            until=int(str(item.get("suspended_until") or 0)),
        )


def flap_guard(settings: Settings, clients: Clients) -> FlapGuard | None:
    """The guard on the StateTable, or None without one (local runs, tests without a table)."""
    if not settings.state_table_name:
        return None
    return FlapGuard(
        StateTable(settings.state_table_name, clients.dynamodb),
        threshold=settings.flap_threshold,
        window_minutes=settings.flap_window_minutes,
    )
