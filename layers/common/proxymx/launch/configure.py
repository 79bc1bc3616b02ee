"""ConfigureInstance: send the Postfix document to instances held by the launch lifecycle hook.

Applies :mod:`proxymx.launch.plan` (scope, de-duplication, heartbeat, chunks of 50) through the
adapters. Launches arrive together (one SQS batch, or the sweep's stuck instances) and are
handled as a whole, so that they share commands. One outcome per launch:

- malformed record body -> ``rejected`` (the record fails; after the queue's maxReceiveCount it
  lands in the DLQ where the operator sees it; no AWS write is made);
- hook or group out of scope, or a duplicate of an instance already in the batch -> ``ignored``;
- instance vanished (Auto Scaling no longer knows it: terminated) or no longer waiting
  (the action was completed or expired) -> ``ignored`` with a log line, never retried;
- SSM agent not registered/``Online`` yet -> ``not-ready``: the record fails and SQS brings it
  back after the visibility timeout (never sleep in the function), with a lifecycle heartbeat
  once the launch is old (see the plan);
- an AWS error -> ``failed`` (the record comes back);
- sent -> ``sent`` (the command id is logged; CheckOutcome takes it from there).
- already sent by another delivery of the same launch (another batch, a Reconcile re-drive, a
  redelivery) -> ``sent`` with that command's id, nothing sent again; another delivery is sending
  it right now -> ``not-ready`` (retried; it then finds the command). One command per launch is a
  conditional claim in the StateTable (:mod:`proxymx.launch.claims` says why it is race-free).
- the instance is in another group than the event names -> the instance's real group
  (DescribeAutoScalingInstances) names the command's context and decides the scope.
- an unexpected error (a bug) -> the launches already settled keep their outcome (a command sent
  is never sent again by a redelivery); only the unsettled ones fail and come back.

Warm pools: every launch transition is configured. ``EC2 -> WarmPool`` configures the instance
before it is stopped into the pool (the change lives on its disk), ``WarmPool ->
AutoScalingGroup`` runs the document again: it is idempotent, changes nothing, and its summary
re-proves (running, listening, verified) that Postfix speaks the PROXY protocol after the restart,
which is the gate before the instance takes traffic. ``EC2 -> AutoScalingGroup`` is the plain case.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal

from aws_lambda_powertools import Logger

from proxymx.aws import Clients
from proxymx.config import Settings
from proxymx.errors import ProxymxError
from proxymx.frozen import frozen
from proxymx.launch.autoscaling import AutoScaling
from proxymx.launch.claims import Claim, LaunchClaims
from proxymx.launch.context import encode_comment
from proxymx.launch.plan import (
    CommandChunk,
    Launch,
    admit,
    command_chunks,
    launches_of,
    needs_heartbeat,
)
from proxymx.launch.runcommand import InstancesNotReady, RunCommand
from proxymx.launch.sends import launch_decision
from proxymx.models.lifecycle import LaunchQueueBatch
from proxymx.results import Metric, count
from proxymx.scope import Home, launch_out_of_scope
from proxymx.state import StateTable

logger = Logger(child=True)

# abandoned: the group's units contradict each other (issue 7.4); the lifecycle action is ABANDONed.
LaunchStatus = Literal["sent", "ignored", "not-ready", "rejected", "failed", "abandoned"]
RETRIED: frozenset[str] = frozenset({"not-ready", "rejected", "failed"})
STATUS_METRICS = {
    "sent": "InstancesSent",
    "ignored": "LaunchesIgnored",
    "not-ready": "AgentsNotReady",
    "rejected": "MalformedLaunchEvents",
    "failed": "LaunchesFailed",
    "abandoned": "LaunchConflicts",
}


@frozen
class LaunchOutcome:
    """What became of one launch; ``key`` is its SQS message id (or ``sweep-<instance>``)."""

    key: str
    status: LaunchStatus
    reason: str
    instance_id: str | None = None
    command_id: str | None = None

    @property
    def retry(self) -> bool:
        return self.status in RETRIED


@frozen
class SentCommand:
    command_id: str
    group_name: str
    hook_name: str
    instance_ids: tuple[str, ...]


class RecordNotSettled(ProxymxError):
    """Raised for a record that must come back (the handler reports it as a batch item failure)."""


@dataclass
class LaunchBatchReport:
    outcomes: dict[str, LaunchOutcome] = field(default_factory=dict)
    commands: list[SentCommand] = field(default_factory=list)
    heartbeats: list[str] = field(default_factory=list)
    # Launches ABANDONed because their group's units contradict each other (issue 7.4).
    conflicts: int = 0
    # Heartbeats that failed (AccessDenied, throttling past the budget): the alarm must see them,
    # since a missed heartbeat lets the hook's HeartbeatTimeout abandon a healthy instance.
    heartbeat_failures: list[str] = field(default_factory=list)

    def add(self, outcome: LaunchOutcome) -> None:
        self.outcomes[outcome.key] = outcome
        log = logger.warning if outcome.status in ("rejected", "failed", "abandoned") else logger.info
        log(
            f"launch {outcome.status}: {outcome.reason}",
            extra={
                "message_id": outcome.key,
                "instance_id": outcome.instance_id,
                "command_id": outcome.command_id,
                "outcome": outcome.status,
            },
        )

    # ----- the result every flow shares (proxymx.results) -----------------------------------

    @property
    def outcome(self) -> str:
        statuses = [outcome.status for outcome in self.outcomes.values()]
        if statuses and all(status == "rejected" for status in statuses):
            return "rejected"
        if any(status in ("failed", "rejected") for status in statuses):
            return "failed"
        # An ABANDON on a contradiction (issue 7.4) is a write, like a command sent.
        if "sent" in statuses or "abandoned" in statuses:
            return "changed"
        if statuses and all(status == "ignored" for status in statuses):
            return "ignored"
        # Nothing to send yet: late agents come back with their records.
        return "compliant"

    @property
    def reason(self) -> str:
        if self.outcome == "rejected":
            return next(iter(self.outcomes.values())).reason
        counts = Counter(outcome.status for outcome in self.outcomes.values())
        parts = [f"{number} {status}" for status, number in sorted(counts.items())]
        return f"{', '.join(parts) or 'no launch'}; {len(self.commands)} command(s) sent"

    def metrics(self) -> list[Metric]:
        counts = Counter(outcome.status for outcome in self.outcomes.values())
        found = [count(STATUS_METRICS[status], number) for status, number in sorted(counts.items())]
        found.append(count("SendCommandCalls", len(self.commands)))
        if self.heartbeat_failures:
            found.append(count("HeartbeatsFailed", len(self.heartbeat_failures)))
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "launches": [asdict(outcome) for outcome in self.outcomes.values()],
            "commands": [asdict(command) for command in self.commands],
            "heartbeats": list(self.heartbeats),
        }

    # ----- the SQS answer ---------------------------------------------------------------------

    def settle(self, record: Any) -> LaunchOutcome:
        """Per record, for the batch response: raise for records that must be retried."""
        message_id = record["messageId"] if isinstance(record, Mapping) else record.message_id
        outcome = self.outcomes.get(message_id)
        if outcome is None:
            raise RecordNotSettled(f"record {message_id} was not processed")
        if outcome.retry:
            raise RecordNotSettled(f"{outcome.status}: {outcome.reason}")
        return outcome

    @property
    def retried(self) -> list[LaunchOutcome]:
        return [outcome for outcome in self.outcomes.values() if outcome.retry]


class _Apply:
    """Applies the plan for one set of launches; every AWS error becomes the launches' outcome."""

    def __init__(
        self,
        settings: Settings,
        clients: Clients,
        report: LaunchBatchReport,
        now: datetime,
        claims: LaunchClaims | None,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.report = report
        self.now = now
        # Group -> (status, reason) of the launches that get no command (issue 7.4).
        self.conflicts: dict[str, tuple[LaunchStatus, str]] = {}
        self.claims = claims

    @cached_property
    def autoscaling(self) -> AutoScaling:
        return AutoScaling(self.clients.autoscaling)

    @cached_property
    def runcommand(self) -> RunCommand:
        return RunCommand(self.clients.ssm)

    def outcome(
        self, launch: Launch, status: LaunchStatus, reason: str, command_id: str | None = None
    ) -> None:
        self.report.add(LaunchOutcome(launch.key, status, reason, launch.instance_id, command_id))

    def _each(self, launches: Iterable[Launch], status: LaunchStatus, reason: str) -> None:
        for launch in launches:
            self.outcome(launch, status, reason)

    def heartbeat(self, launch: Launch) -> bool:
        """Keep the action alive; False when it is gone (completed or expired meanwhile)."""
        try:
            alive = self.autoscaling.record_heartbeat(launch.group_name, launch.hook_name, launch.instance_id)
        except ProxymxError as exc:
            # A missed heartbeat is not fatal: the hook's HeartbeatTimeout still has slack.
            logger.warning(f"heartbeat failed: {exc}", extra={"instance_id": launch.instance_id})
            self.report.heartbeat_failures.append(launch.instance_id)
            return True
        if alive:
            self.report.heartbeats.append(launch.instance_id)
        return alive

    def kept_alive(self, launch: Launch) -> bool:
        return not needs_heartbeat(launch, self.now, self.settings) or self.heartbeat(launch)

    def still_waiting(self, launches: list[Launch]) -> list[Launch]:
        try:
            states = self.autoscaling.lifecycle_states(launch.instance_id for launch in launches)
        except ProxymxError as exc:
            self._each(launches, "failed", f"cannot read lifecycle state: {exc}")
            return []
        waiting = []
        for launch in launches:
            state = states.get(launch.instance_id)
            if state is None:
                self.outcome(
                    launch, "ignored", "vanished: Auto Scaling no longer knows the instance (terminated)"
                )
            elif not state.waiting:
                self.outcome(
                    launch, "ignored", f"not waiting ({state.state}): the lifecycle action is already over"
                )
            elif state.group_name != launch.group_name:
                # The instance's real group decides (issue 9, finding 6): with the event's group the
                # command's context would name a group that holds no action for it, and the verdict
                # would find "No active Lifecycle Action" while the instance waited for the default.
                reason = launch_out_of_scope(state.group_name, launch.hook_name, self.settings)
                if reason is not None:
                    self.outcome(launch, "ignored", f"out of scope (the instance's real group): {reason}")
                    continue
                logger.warning(
                    f"launch names group {launch.group_name!r}, the instance is in "
                    f"{state.group_name!r}: using the instance's group",
                    extra={"instance_id": launch.instance_id},
                )
                waiting.append(replace(launch, group_name=state.group_name))
            else:
                waiting.append(launch)
        return waiting

    def online(self, launches: list[Launch]) -> list[Launch]:
        try:
            online = self.runcommand.online_instances(launch.instance_id for launch in launches)
        except ProxymxError as exc:
            self._each(launches, "failed", f"cannot read SSM registration: {exc}")
            return []
        ready = []
        for launch in launches:
            if launch.instance_id in online:
                ready.append(launch)
            elif not self.kept_alive(launch):
                self.outcome(launch, "ignored", "the lifecycle action expired while the agent was late")
            else:
                self.outcome(launch, "not-ready", "SSM agent not registered/Online yet: retried later")
        return ready

    def send(self, launches: list[Launch]) -> None:
        parameters_of: dict[str, dict[str, str] | None] = {}
        for chunk in command_chunks(launches):
            if chunk.group_name not in parameters_of:
                parameters_of[chunk.group_name] = self.parameters_for(chunk.group_name)
            parameters = parameters_of[chunk.group_name]
            if parameters is None:
                self.abandon(chunk)
                continue
            # Give the command a full HeartbeatTimeout when the wait so far has eaten into it.
            kept = []
            for launch in chunk.launches:
                if self.kept_alive(launch):
                    kept.append(launch)
                else:
                    self.outcome(launch, "ignored", "the lifecycle action ended before the command was sent")
            claimed = self.claim(kept)
            if claimed:
                self.send_chunk(
                    CommandChunk(chunk.group_name, chunk.hook_name, tuple(claimed)),
                    parameters,
                    claimed,
                )

    def parameters_for(self, group_name: str) -> dict[str, str] | None:
        """The run the group's units need (what they SEND NOW); None when they contradict or
        cannot be read (``self.conflicts`` says which)."""
        try:
            decision = launch_decision(group_name, self.settings, self.clients)
        except ProxymxError as exc:
            self.conflicts[group_name] = (
                "failed",
                f"cannot read what the group's load balancers send: {exc}",
            )
            return None
        if decision.conflict is not None:
            self.conflicts[group_name] = ("abandoned", decision.conflict)
            return None
        return decision.parameters(self.settings)

    def abandon(self, chunk: CommandChunk) -> None:
        status, reason = self.conflicts[chunk.group_name]
        if status == "failed":
            self._each(chunk.launches, "failed", reason)
            return
        self.report.conflicts += len(chunk.launches)
        for launch in chunk.launches:
            try:
                self.autoscaling.complete_lifecycle_action(
                    launch.group_name, launch.hook_name, launch.instance_id, "ABANDON"
                )
            except ProxymxError as exc:
                self.outcome(launch, "failed", f"{reason}; ABANDON failed: {exc}")
                continue
            self.outcome(launch, "abandoned", f"ABANDON: {reason}")

    def claim(self, launches: list[Launch]) -> dict[Launch, Claim | None]:
        """The launches this delivery may send (their claims won); the others get their outcome."""
        if self.claims is None:
            return dict.fromkeys(launches)
        won: dict[Launch, Claim | None] = {}
        for launch in launches:
            try:
                claim = self.claims.claim(launch.instance_id, launch.destination, self.now)
            except ProxymxError as exc:
                self.outcome(launch, "failed", f"cannot claim the launch (one command per launch): {exc}")
                continue
            if claim.won:
                won[launch] = claim
            elif claim.state == "sent" and claim.command_id:
                self.outcome(
                    launch,
                    "sent",
                    f"command {claim.command_id} already sent for this launch by another delivery: reused",
                    claim.command_id,
                )
            else:
                self.outcome(
                    launch,
                    "not-ready",
                    "another delivery of this launch is sending its command: retried later",
                )
        return won

    def release(self, claimed: Mapping[Launch, Claim | None]) -> None:
        for launch, claim in claimed.items():
            if claim is None or self.claims is None:
                continue
            try:
                self.claims.release(claim, self.now)
            except ProxymxError as exc:
                # The claim then goes stale and a later delivery takes it over (claims.py).
                logger.warning(f"claim not released: {exc}", extra={"instance_id": launch.instance_id})

    def send_chunk(
        self, chunk: CommandChunk, parameters: dict[str, str], claimed: Mapping[Launch, Claim | None]
    ) -> None:
        try:
            command_id = self.runcommand.send_command(
                chunk.instance_ids,
                document_name=self.settings.document_name,
                parameters=parameters,
                comment=encode_comment(chunk.group_name, chunk.hook_name),
                timeout_seconds=self.settings.command_timeout_seconds,
                log_group=self.settings.command_log_group,
            )
        except InstancesNotReady as exc:
            self.release(claimed)
            self._each(chunk.launches, "not-ready", str(exc))
            return
        except ProxymxError as exc:
            self.release(claimed)
            self._each(chunk.launches, "failed", str(exc))
            return
        self.report.commands.append(
            SentCommand(command_id, chunk.group_name, chunk.hook_name, tuple(chunk.instance_ids))
        )
        for launch in chunk.launches:
            claim = claimed.get(launch)
            if claim is not None and self.claims is not None:
                try:
                    self.claims.sent(claim, command_id)
                except ProxymxError as exc:
                    # The command is out: never fail the record (its redelivery would find the claim
                    # "claiming" and wait until it goes stale). Other deliveries wait meanwhile.
                    logger.warning(
                        f"command {command_id} sent but not recorded on its claim: {exc}",
                        extra={"instance_id": launch.instance_id, "command_id": command_id},
                    )
            self.outcome(launch, "sent", f"document {self.settings.document_name} sent", command_id)


def launch_claims(settings: Settings, clients: Clients) -> LaunchClaims | None:
    """The claims of the StateTable (none without a table: then only a batch's own duplicates are
    removed; the template always sets STATE_TABLE)."""
    if not settings.state_table_name:
        return None
    return LaunchClaims(
        StateTable(settings.state_table_name, clients.dynamodb),
        command_timeout_seconds=settings.command_timeout_seconds,
    )


def configure(
    launches: Iterable[Launch],
    settings: Settings,
    clients: Clients,
    *,
    now: datetime | None = None,
    report: LaunchBatchReport | None = None,
    claims: LaunchClaims | None = None,
) -> LaunchBatchReport:
    """Decide and act for launches found together (a batch, or the sweep's); one outcome each.
    ``claims``: one command per launch (default: the StateTable's, when STATE_TABLE is set)."""
    report = report if report is not None else LaunchBatchReport()
    work = _Apply(
        settings,
        clients,
        report,
        now or datetime.now(UTC),
        claims if claims is not None else launch_claims(settings, clients),
    )
    intake = admit(launches, settings)
    for ignored in intake.ignored:
        work.outcome(ignored.launch, "ignored", ignored.reason)
    pending = list(intake.pending)
    try:
        if pending:
            waiting = work.still_waiting(pending)
            if waiting:
                ready = work.online(waiting)
                if ready:
                    work.send(ready)
    except Exception as exc:
        # A bug's path: the launches already settled (a command sent) keep their outcome, so the
        # queue does not bring them back; only the unsettled ones fail and come back.
        logger.exception("launch batch: unexpected error; the unsettled launches are retried")
        for launch in pending:
            if launch.key not in report.outcomes:
                work.outcome(launch, "failed", f"unexpected {type(exc).__name__}: {exc}")
    return report


def configure_batch(
    batch: LaunchQueueBatch,
    settings: Settings,
    clients: Clients,
    *,
    now: datetime | None = None,
    sleep: Callable[[float], Any] | None = None,
    claims: LaunchClaims | None = None,
    home: Home | None = None,
) -> LaunchBatchReport:
    """The one domain call of the ConfigureInstance handler: one SQS batch of launch events.
    (``sleep`` is never used: a late agent is retried by SQS, never waited for.)"""
    launches, rejected = launches_of(batch, home)
    report = LaunchBatchReport()
    for record in rejected:
        report.add(LaunchOutcome(record.message_id, "rejected", record.reason))
    return configure(launches, settings, clients, now=now, report=report, claims=claims)
