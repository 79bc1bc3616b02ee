"""The cutover's moves (issue 7.3): start it, advance it on each status event, revert, finish.

The decisions are :mod:`proxymx.loadbalancer.cutover`'s; this module applies them through the
adapters (StateTable, SSM Run Command, SNS) and, for the switch itself, the very plan and adapters
EnableProxyProtocol uses (:meth:`~proxymx.loadbalancer.service.EnableProxyProtocol.ensure_unit`),
which recompute the unit's targets and their readiness right before writing -- a target
registered meanwhile joins the cutover instead of being switched in front of.

Three callers:

- EnableProxyProtocol (event path and the Reconcile sweep): :meth:`Cutovers.start` for each unit
  the interlock blocked;
- CheckOutcome, per invocation of a cutover command: :meth:`Cutovers.on_invocation`;
- Reconcile, the safety net: :meth:`Cutovers.sweep` (events lost, stale slots, held cutovers).

**The operator's brake holds a cutover, it does not revert it.** When the kill switch is off
(:func:`proxymx.controls.halted`) or the unit carries ``proxymx:pause-until``, the move a cutover
was about to make -- its switch, or the start of its revert -- is not made: the record goes to
``held`` (one conditional write: ``resume`` = the move, ``reason`` = the brake) and nothing else is
written. Reverting there would be a write the operator just forbade, and would throw away a fleet
already proven. A cutover never *starts* while braked: EnableProxyProtocol asks the same brake
before its interlock. The sweep resumes held cutovers once the brake is off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from proxymx.aws import Clients
from proxymx.batching import chunked
from proxymx.config import Settings
from proxymx.errors import ProxymxError
from proxymx.frozen import frozen
from proxymx.loadbalancer.cutover import (
    DOCUMENT_EXECUTION_SECONDS,
    RETRY_AFTER_SECONDS,
    TERMINAL_PHASES,
    CommentKind,
    CutoverRecords,
    Resume,
    comment_for,
    decide_start,
    digest,
    document_parameters_for,
    gap_seconds,
    next_step,
    requirement_of,
)
from proxymx.loadbalancer.plan import Blocked, pause_reason
from proxymx.loadbalancer.readiness import Readiness, Requirement
from proxymx.results import Metric, count
from proxymx.state import StateTable

if TYPE_CHECKING:
    from proxymx.launch.runcommand import RunCommand
    from proxymx.launch.sns import Notifications

log = logging.getLogger(__name__)

# SendCommand takes at most 50 InstanceIds.
INSTANCES_PER_COMMAND = 50
# A switch that raised (an AWS error) is tried again by the sweep after this long.
SWITCH_RETRY_SECONDS = 120


@frozen
class StartOutcome:
    started: bool
    reason: str


@dataclass
class Progress:
    """What one invocation did to its cutover (CheckOutcome reports it)."""

    unit: str | None
    reason: str
    phase: str | None = None
    measured: list[Metric] = field(default_factory=list)


class Cutovers:
    """Starts and advances cutovers; ``now`` is injectable for the tests of time-bound rules."""

    def __init__(
        self,
        settings: Settings,
        clients: Clients,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.now = now
        self.sleep = sleep
        self.records = CutoverRecords(StateTable(settings.state_table_name, clients.dynamodb))
        self.measured: list[Metric] = []

    @cached_property
    def runcommand(self) -> RunCommand:
        from proxymx.launch.runcommand import RunCommand

        return RunCommand(self.clients.ssm)

    @cached_property
    def notifications(self) -> Notifications:
        from proxymx.launch.sns import Notifications

        return Notifications(self.clients.sns)

    def _at(self) -> int:
        return int(self.now().timestamp())

    # ----- start ----------------------------------------------------------------------------

    def start(self, blocked: Blocked) -> StartOutcome:
        """Cut a blocked unit over when the rules allow it (see :func:`decide_start`); the reason
        joins the unit's ``blocked`` outcome either way."""
        at = self._at()
        record = self.records.get(blocked.unit, at)
        decision = decide_start(blocked, cutover=self.settings.cutover, record=record, now=at)
        if not decision.start:
            return StartOutcome(False, decision.reason)
        targets = decision.targets
        if self.settings.dry_run:
            # The same decision, nothing written (not even the state table).
            return StartOutcome(
                False,
                f"dry run: would start a cutover: configure {len(targets)} target(s) "
                f"({', '.join(targets[:5])}) for {blocked.requirement.describe()}, then switch",
            )
        claimed = self.records.claim(blocked.unit, blocked.requirement, targets, at)
        if not claimed.won:
            phase = (claimed.existing or {}).get("phase", "?")
            return StartOutcome(False, f"cutover in flight ({phase})")
        if not self.records.take_slot(blocked.unit, self.settings.max_cutovers_in_flight):
            return self._cancel(
                blocked.unit,
                f"no cutover slot free (MaxCutoversInFlight={self.settings.max_cutovers_in_flight}); "
                "the next sweep tries again",
            )
        if not self.records.count_start(self.now(), self.settings.max_cutovers_per_hour):
            self.records.release_slot(blocked.unit)
            return self._cancel(
                blocked.unit,
                f"hourly cap reached (MaxCutoversPerHour={self.settings.max_cutovers_per_hour}); "
                "a later sweep tries again",
            )
        self._notify(
            f"proxymx: cutover starting on {blocked.unit}",
            f"Unit: {blocked.unit}\nRequirement: {blocked.requirement.describe()}\n"
            f"Targets configured first ({len(targets)}): {', '.join(targets)}\n\n"
            "Until the header is switched on, clients without a header get 421 (retried).",
        )
        commands = self._send(blocked.unit, list(targets), "configure", blocked.requirement)
        after = self.records.get(blocked.unit, self._at()) or {}
        if after.get("phase") != "configuring":
            # SSM refused every target (not registered, offline): failed before it began.
            return StartOutcome(
                True, f"cutover started and {after.get('phase', 'ended')} at once: {after.get('reason', '')}"
            )
        log.warning(
            "cutover started on %s: %d target(s), commands %s",
            blocked.unit,
            len(targets),
            commands,
            extra={"load_balancer": blocked.unit, "targets": list(targets), "commands": commands},
        )
        return StartOutcome(
            True,
            f"cutover started: {len(targets)} target(s) being configured "
            f"(commands {', '.join(commands) or 'none'})",
        )

    def _cancel(self, unit: str, reason: str) -> StartOutcome:
        # Retriable at once: nothing was sent; the next event or sweep starts it when allowed.
        self.records.transition(
            unit, "configuring", "cancelled", {"reason": reason, "retry_after": self._at()}
        )
        return StartOutcome(False, f"no cutover yet: {reason}")

    def _send(
        self, unit: str, targets: list[str], mode: Literal["configure", "revert"], requirement: Requirement
    ) -> list[str]:
        """The document to ``targets`` (<= 50 a command); a chunk SSM refuses counts as failed."""
        from proxymx.launch.plan import document_parameters

        kind: CommentKind = "configure" if mode == "configure" else "revert"
        parameters = {**document_parameters(self.settings), **document_parameters_for(requirement, mode)}
        commands: list[str] = []
        refused: list[str] = []
        for chunk in chunked(sorted(targets), INSTANCES_PER_COMMAND):
            try:
                command_id = self.runcommand.send_command(
                    chunk,
                    document_name=self.settings.document_name,
                    parameters=parameters,
                    comment=comment_for(kind, unit),
                    timeout_seconds=self.settings.command_timeout_seconds,
                    log_group=self.settings.command_log_group,
                )
            except ProxymxError as exc:
                log.error("cutover %s: SendCommand (%s) refused for %s: %s", unit, mode, chunk, exc)
                refused.extend(chunk)
                continue
            commands.append(command_id)
            self.records.record_command(unit, command_id, chunk)
        for target in refused:
            # Undeliverable is a failure of that target: all or nothing.
            if mode == "configure":
                self._configured(unit, target, proven=False)
            else:
                self._mark(unit, target, "revert-failed", phase="reverting", expected=("reverting",))
        if refused:
            record = self.records.get(unit, self._at())
            if record is not None:
                self._advance(unit, record)
        return commands

    # ----- progress (CheckOutcome) -----------------------------------------------------------

    def on_invocation(
        self, kind: CommentKind, digest_hex: str, instance_id: str, status: str, readiness_tag: str | None
    ) -> Progress:
        """One target's run of a cutover command has ended (its proof, if any, already tagged)."""
        at = self._at()
        unit = self.records.unit_of(digest_hex, at)
        if unit is None:
            return Progress(None, f"no cutover record for {digest_hex} (expired, or deleted by an operator)")
        record = self.records.get(unit, at)
        if record is None:
            return Progress(unit, "no cutover record (expired, or deleted by an operator)")
        if kind == "configure":
            proven, why = self._proves(record, readiness_tag, status)
            self._configured(unit, instance_id, proven)
            reason = f"{instance_id} {'proven' if proven else 'failed: ' + why}"
        else:
            plain = readiness_tag is not None and readiness_tag.startswith("plain")
            self._mark(
                unit,
                instance_id,
                "reverted" if plain else "revert-failed",
                phase="reverting",
                expected=("reverting",),
            )
            if not plain:
                log.error("cutover %s: revert failed on %s (%s)", unit, instance_id, status)
            reason = f"{instance_id} {'reverted to plain' if plain else f'revert failed ({status})'}"
        after = self.records.get(unit, at)
        phase = str(after.get("phase")) if after else None
        if kind == "configure" and phase in ("reverting", "failed") and reason.endswith("proven"):
            reason += " while the cutover reverts: put back to plain"
        return Progress(unit, f"cutover {unit}: {reason}; phase {phase}", phase, list(self.measured))

    @staticmethod
    def _proves(record: Mapping[str, Any], readiness_tag: str | None, status: str) -> tuple[bool, str]:
        if status != "Success":
            return False, f"the document ended {status}"
        covered, why = Readiness.parse(readiness_tag).covers(requirement_of(record))
        return covered, why

    def _configured(self, unit: str, instance_id: str, proven: bool) -> None:
        at = self._at()
        if proven:
            extra = {"first_proven_at": at}
            written = self._mark(
                unit, instance_id, "proven", phase="configuring", expected=("pending",), extra=extra
            )
            # Held (the operator's brake): the proof is recorded, the move waits for the resume.
            if written or self._mark(
                unit, instance_id, "proven", phase="held", expected=("pending",), extra=extra
            ):
                return
            # The cutover is already reverting: this target was still running; put it back now.
            if self._mark(unit, instance_id, "reverting", phase="reverting", expected=("pending",)):
                record = self.records.get(unit, at)
                if record is not None:
                    self._send(unit, [instance_id], "revert", requirement_of(record))
            return
        for phase in ("configuring", "held", "reverting"):
            if self._mark(unit, instance_id, "failed", phase=phase, expected=("pending",)):
                return

    def _mark(
        self,
        unit: str,
        target: str,
        new: str,
        *,
        phase: str,
        expected: tuple[str, ...],
        extra: Mapping[str, Any] | None = None,
    ) -> bool:
        written = self.records.mark_target(unit, target, new, phase=phase, expected=expected, extra=extra)
        if written.won and written.item is not None:
            self._advance(unit, written.item)
        return written.won

    def _advance(self, unit: str, record: Mapping[str, Any]) -> None:
        step = next_step(record)
        if step == "switch":
            if self.records.transition(unit, "configuring", "switching", {"switching_at": self._at()}).won:
                self._switch(unit, record)
        elif step == "revert":
            failed = sorted(t for t, s in record["targets"].items() if s == "failed")
            self._revert(unit, "configuring", f"target(s) failed: {', '.join(failed)}")
        elif step == "fail":
            self._fail(unit, record)

    # ----- switch ----------------------------------------------------------------------------

    def _switch(self, unit: str, record: Mapping[str, Any]) -> None:
        """Recompute the unit and switch it with EnableProxyProtocol's own plan and adapters."""
        from proxymx.loadbalancer.service import EnableProxyProtocol

        capture = _CaptureBlocked()
        service = (
            EnableProxyProtocol(self.settings, self.clients, cutovers=capture, sleep=self.sleep)
            if self.sleep is not None
            else EnableProxyProtocol(self.settings, self.clients, cutovers=capture)
        )
        result = service.ensure_unit(unit)
        at = self._at()
        if result.outcome in ("changed", "compliant") and not result.way_back:
            gap = gap_seconds(record.get("first_proven_at"), at)
            values = {"switched_at": at, "gap_seconds": gap, "retry_after": at, "reason": result.reason}
            if not self.records.transition(unit, "switching", "switched", values).won:
                return
            self.records.release_slot(unit)
            self.measured += [count("CutoversSwitched"), Metric("CutoverGapSeconds", "Seconds", gap)]
            log.warning(
                "cutover done on %s (gap %d s)", unit, gap, extra={"load_balancer": unit, "gap_seconds": gap}
            )
            self._notify(
                f"proxymx: cutover done on {unit} (gap {gap} s)",
                f"Unit: {unit}\n{result.reason}\nChanges: {', '.join(result.changes)}\n"
                f"Header off + Postfix configured (421 to clients without a header) for {gap} s.",
            )
            return
        if result.outcome == "paused":
            # The kill switch or the unit's pause tag (EnableProxyProtocol's verdict, the same one
            # any switch gets): hold the cutover, do not revert it.
            self._hold(unit, "switching", "switch", result.reason)
            return
        mine = [b for b in capture.blocked if b.unit == unit]
        if result.outcome == "blocked" and mine:
            self._extend(unit, record, mine[0])
            return
        # Opted out, paused, refused by AWS...: the header stays off, so the fleet must not stay
        # configured behind it (all or nothing).
        self._revert(unit, "switching", f"switch not done ({result.outcome}: {result.reason})")

    def _extend(self, unit: str, record: Mapping[str, Any], blocked: Blocked) -> None:
        """A target appeared (or lost its proof) between the last proof and the switch."""
        if blocked.outside_fleet:
            names = ", ".join(u.target_id for u in blocked.outside_fleet)
            self._revert(unit, "switching", f"target(s) outside the fleet appeared: {names}")
            return
        # New targets, and any whose proof no longer covers (its tag changed since): all pending.
        # A launch in Pending:Wait is configured by the launch flow: the sweep tries the switch
        # again (SWITCH_RETRY_SECONDS) once it is in service.
        new = tuple(sorted({u.target_id for u in blocked.unready if not u.launching}))
        if not new:
            waiting = ", ".join(u.target_id for u in blocked.unready)
            self.records.set_fields(
                unit,
                {"reason": f"switch waits for launch(es) {waiting}", "switching_at": self._at()},
                phase="switching",
            )
            return
        if not self.records.add_targets(unit, new, phase="switching").won:
            return
        log.warning("cutover %s extended to %s before the switch", unit, new, extra={"load_balancer": unit})
        self._send(unit, list(new), "configure", requirement_of(record))

    # ----- all or nothing --------------------------------------------------------------------

    def _revert(self, unit: str, from_phase: str, reason: str) -> None:
        brake = self._brake(unit) if from_phase != "held" else None
        if brake is not None:
            # A revert sends commands to the fleet: the brake holds it like any other write.
            self._hold(unit, from_phase, "revert", brake, revert_reason=reason)
            return
        won = self.records.transition(unit, from_phase, "reverting", {"reason": reason})
        if not won.won:
            return
        log.error("cutover %s reverting: %s", unit, reason, extra={"load_balancer": unit})
        record = self.records.get(unit, self._at()) or {}
        proven = sorted(t for t, s in (record.get("targets") or {}).items() if s == "proven")
        reverting = [
            t
            for t in proven
            if self.records.mark_target(unit, t, "reverting", phase="reverting", expected=("proven",)).won
        ]
        if reverting:
            self._send(unit, reverting, "revert", requirement_of(record))
        after = self.records.get(unit, self._at())
        if after is not None and next_step(after) == "fail":
            self._fail(unit, after)

    # ----- the operator's brake --------------------------------------------------------------

    def _brake(self, unit: str) -> str | None:
        """Why the operator forbids writes to ``unit`` now (kill switch, pause tag), or None."""
        from proxymx.controls import halted

        halt = halted(self.settings, self.clients)
        if halt is not None:
            return halt
        return pause_reason(self._unit_tags(unit), self.now())

    def _unit_tags(self, unit: str) -> list[Mapping[str, str]]:
        """The unit's tags, and its NLBs' (a pause tag on the NLB pauses all its target groups)."""
        from proxymx.errors import NotReadyYet
        from proxymx.loadbalancer.classic import ClassicElb
        from proxymx.loadbalancer.nlb import NetworkLoadBalancers

        kind, _, name = unit.partition("/")
        try:
            # No backoff: the unit was read when the cutover started; not found now means deleted.
            if kind == "classic":
                return [ClassicElb(self.clients.elb, backoff=()).describe(name).tags]
            nlb = NetworkLoadBalancers(self.clients.elbv2, backoff=())
            group = nlb.target_group(name)
            return list(nlb.tags([name, *group.get("LoadBalancerArns", [])]).values())
        except NotReadyYet as exc:
            # A deleted unit carries no pause tag, and nothing sends the header any more: the
            # revert only restores agreement, so it is not held (the kill switch was asked first).
            log.warning("cutover %s: unit not found (%s): no pause tag", unit, exc)
            return []

    def _hold(self, unit: str, from_phase: str, resume: Resume, why: str, *, revert_reason: str = "") -> None:
        """``from_phase`` -> ``held``: one conditional write, nothing else. The slot is kept on
        purpose: releasing it would let another cutover start while the operator froze everything."""
        at = self._at()
        values: dict[str, Any] = {"held_at": at, "resume": resume, "reason": f"held: {why}"}
        if revert_reason:
            values["revert_reason"] = revert_reason
        if not self.records.transition(unit, from_phase, "held", values).won:
            return
        self.measured.append(count("CutoversHeld"))
        log.warning("cutover %s held before its %s: %s", unit, resume, why, extra={"load_balancer": unit})
        self._notify(
            f"proxymx: cutover HELD on {unit}",
            f"Unit: {unit}\nHeld before its {resume}: {why}\n"
            "Its configured targets answer 421 to clients without a header (senders retry) until the "
            "brake is off: `proxymx resume` / the pause tag's expiry; the next sweep then resumes it.",
        )

    def _resume(self, unit: str, record: Mapping[str, Any]) -> str | None:
        """A held cutover whose brake is off takes up the move it was held before; what it did."""
        brake = self._brake(unit)
        if brake is not None:
            return None
        if record.get("resume") == "revert":
            reason = str(record.get("revert_reason") or "resumed revert")
            self._revert(unit, "held", reason)
            return f"{unit}: held cutover resumed (revert: {reason})"
        # The switch, recomputed as at any switch (the interlock sees the targets as they are now).
        if not self.records.transition(unit, "held", "switching", {"switching_at": self._at()}).won:
            return None
        self._switch(unit, record)
        return f"{unit}: held cutover resumed (switch)"

    def _fail(self, unit: str, record: Mapping[str, Any]) -> None:
        at = self._at()
        retry_after = at + RETRY_AFTER_SECONDS
        if not self.records.transition(
            unit, "reverting", "failed", {"retry_after": retry_after, "failed_at": at}
        ).won:
            return
        self.records.release_slot(unit)
        self.measured.append(count("CutoversFailed"))
        reason = str(record.get("reason", ""))
        states = record.get("targets") or {}
        left = sorted(t for t, s in states.items() if s == "revert-failed")
        log.error("cutover failed on %s: %s", unit, reason, extra={"load_balancer": unit, "targets": states})
        when = datetime.fromtimestamp(retry_after, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._notify(
            f"proxymx: cutover FAILED on {unit}",
            f"Unit: {unit}\nReason: {reason}\nTargets: {dict(sorted(states.items()))}\n"
            + (
                f"NOT reverted (configured behind a unit without the header, 421): {', '.join(left)}\n"
                if left
                else ""
            )
            + f"The header stays off. Not retried before {when}; `proxymx cutover clear {unit}` to "
            "retry sooner. The command output (CloudWatch) has each target's stderr.",
        )

    def _notify(self, subject: str, message: str) -> None:
        if not self.settings.notification_topic_arn:
            return
        try:
            self.notifications.publish_failure(self.settings.notification_topic_arn, subject, message)
        except ProxymxError as exc:  # the cutover goes on; the log has everything
            log.error("cutover notice not published: %s", exc)
            self.measured.append(count("NotificationsFailed"))

    # ----- the safety net (Reconcile) --------------------------------------------------------

    def sweep(self) -> list[str]:
        """Advance cutovers whose status events were lost; release slots nothing holds. Returns
        one line per action taken."""
        from proxymx.launch.outcome import settled_status
        from proxymx.launch.readiness_tag import ReadinessTags
        from proxymx.loadbalancer.readiness import tag_value_from_summary
        from proxymx.models.ssm import TERMINAL_STATUSES
        from proxymx.postfix_summary import parse_summary

        at = self._at()
        done: list[str] = []
        overdue = self.settings.command_timeout_seconds + DOCUMENT_EXECUTION_SECONDS
        for unit in sorted(self.records.slot_holders(at)):
            record = self.records.get(unit, at)
            if record is None or record.get("phase") in TERMINAL_PHASES:
                if self.records.release_slot(unit):
                    done.append(f"{unit}: stale slot released")
                continue
            phase = record.get("phase")
            if phase == "held":
                resumed = self._resume(unit, record)
                if resumed is not None:
                    done.append(resumed)
                    continue
            if phase == "switching" and at - int(record.get("switching_at", at)) >= SWITCH_RETRY_SECONDS:
                done.append(f"{unit}: switch tried again")
                self._switch(unit, record)
                continue
            if at - int(record.get("started_at", at)) < overdue:
                continue
            commands = record.get("commands") or {}
            for target, state in sorted((record.get("targets") or {}).items()):
                command_id = commands.get(target)
                if state not in ("pending", "reverting") or not command_id:
                    continue
                invocation = self.runcommand.get_invocation(str(command_id), target)
                if invocation is None or invocation.status not in TERMINAL_STATUSES:
                    continue
                status = settled_status(invocation)
                summary = parse_summary(invocation.stdout) if status == "Success" else None
                value = tag_value_from_summary(summary) if summary is not None else None
                if value is not None:
                    try:
                        ReadinessTags(self.clients.ec2).record(target, value)
                    except ProxymxError as exc:
                        log.warning("readiness not recorded on %s: %s", target, exc)
                kind: CommentKind = "configure" if state == "pending" else "revert"
                progress = self.on_invocation(kind, digest(unit), target, status, value)
                done.append(f"{unit}: lost event of {target} replayed ({progress.reason})")
        return done


class _CaptureBlocked:
    """The cutover hook EnableProxyProtocol gets during a switch: it records what blocked the
    switch (the cutover decides: extend or revert) instead of starting another cutover."""

    def __init__(self) -> None:
        self.blocked: list[Blocked] = []
        self.measured: list[Metric] = []

    def start(self, blocked: Blocked) -> StartOutcome:
        self.blocked.append(blocked)
        return StartOutcome(False, "recomputed right before the switch")


def cutovers_for(settings: Settings, clients: Clients, **kwargs: Any) -> Cutovers | None:
    """The cutover engine, when the StateTable is configured (the template always sets it)."""
    if not settings.state_table_name:
        return None
    return Cutovers(settings, clients, **kwargs)
