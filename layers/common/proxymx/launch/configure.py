"""ConfigureInstance: send the Postfix document to instances held by the launch lifecycle hook.

One SQS batch is handled as a whole, so that instances arriving together share commands (at
most 50 instances per ``SendCommand``, one command per group and hook). Per record:

- malformed body -> ``rejected`` (the record fails; after the queue's maxReceiveCount it lands
  in the DLQ where the operator sees it; no AWS write is made);
- hook or group out of scope, or a duplicate of an instance already in the batch -> ``ignored``;
- instance vanished (Auto Scaling no longer knows it: terminated) or no longer waiting
  (the action was completed or expired) -> ``ignored`` with a log line, never retried;
- SSM agent not registered/``Online`` yet -> ``not-ready``: the record fails and SQS brings it
  back after the visibility timeout (never sleep in the function). Once the event is older than
  ``heartbeat_after_seconds``, each retry records a lifecycle heartbeat so the hook's
  ``HeartbeatTimeout`` does not abandon an instance whose agent is merely slow;
- sent -> ``sent`` (the command id is logged; CheckOutcome takes it from there).
- already sent by another delivery of the same launch (another batch, a Reconcile re-drive, a
  redelivery) -> ``sent`` with that command's id, nothing sent again; another delivery is sending
  it right now -> ``not-ready`` (retried; it then finds the command). One command per launch is a
  conditional claim in the StateTable (:mod:`proxymx.launch.claims` says why it is race-free).

Warm pools: every launch transition is configured. ``EC2 -> WarmPool`` configures the instance
before it is stopped into the pool (the change lives on its disk), ``WarmPool ->
AutoScalingGroup`` runs the document again: it is idempotent, changes nothing, and its summary
re-proves (running, listening, verified) that Postfix speaks the PROXY protocol after the restart,
which is the gate before the instance takes traffic. ``EC2 -> AutoScalingGroup`` is the plain case.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel

from proxymx.config import Settings
from proxymx.errors import MalformedEvent, ProxymxError
from proxymx.launch import autoscaling, ssm
from proxymx.launch.claims import Claim, LaunchClaims
from proxymx.launch.context import encode_comment
from proxymx.models.lifecycle import LaunchQueueBatch, LaunchQueueRecord, LifecycleLaunchEvent
from proxymx.state import StateTable

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_ssm import SSMClient

logger = Logger(child=True)

RecordStatus = Literal["sent", "ignored", "not-ready", "rejected", "failed"]
RETRIED: frozenset[str] = frozenset({"not-ready", "rejected", "failed"})


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    value: float


@dataclass(frozen=True)
class RecordOutcome:
    message_id: str
    status: RecordStatus
    reason: str
    instance_id: str | None = None
    command_id: str | None = None

    @property
    def retry(self) -> bool:
        return self.status in RETRIED


@dataclass(frozen=True)
class SentCommand:
    command_id: str
    group_name: str
    hook_name: str
    instance_ids: tuple[str, ...]


class RecordNotSettled(ProxymxError):
    """Raised for a record that must come back (Powertools then reports it as a batch item failure)."""


@dataclass
class LaunchBatchReport:
    outcomes: dict[str, RecordOutcome] = field(default_factory=dict)
    commands: list[SentCommand] = field(default_factory=list)
    heartbeats: list[str] = field(default_factory=list)
    # Heartbeats that failed (AccessDenied, throttling past the budget): the alarm must see them,
    # since a missed heartbeat lets the hook's HeartbeatTimeout abandon a healthy instance.
    heartbeat_failures: list[str] = field(default_factory=list)

    def add(self, outcome: RecordOutcome) -> None:
        self.outcomes[outcome.message_id] = outcome
        log = logger.warning if outcome.status in ("rejected", "failed") else logger.info
        log(
            f"launch record {outcome.status}: {outcome.reason}",
            extra={
                "message_id": outcome.message_id,
                "instance_id": outcome.instance_id,
                "command_id": outcome.command_id,
                "outcome": outcome.status,
            },
        )

    def settle(self, record: Any) -> RecordOutcome:
        """Powertools ``record_handler``: raise for records that must be retried."""
        message_id = record["messageId"] if isinstance(record, Mapping) else record.message_id
        outcome = self.outcomes.get(message_id)
        if outcome is None:
            raise RecordNotSettled(f"record {message_id} was not processed")
        if outcome.retry:
            raise RecordNotSettled(f"{outcome.status}: {outcome.reason}")
        return outcome

    def raise_if_all_rejected(self) -> None:
        outcomes = list(self.outcomes.values())
        if outcomes and all(outcome.status == "rejected" for outcome in outcomes):
            raise MalformedEvent(outcomes[0].reason)

    @property
    def failed_message_ids(self) -> list[str]:
        return [mid for mid, outcome in self.outcomes.items() if outcome.retry]

    def metrics(self) -> list[Metric]:
        counts: dict[str, int] = defaultdict(int)
        for outcome in self.outcomes.values():
            counts[outcome.status] += 1
        names = {
            "sent": "InstancesSent",
            "ignored": "LaunchesIgnored",
            "not-ready": "AgentsNotReady",
            "rejected": "MalformedLaunchEvents",
            "failed": "LaunchesFailed",
        }
        metrics = [Metric(names[status], "Count", count) for status, count in sorted(counts.items())]
        metrics.append(Metric("SendCommandCalls", "Count", len(self.commands)))
        if self.heartbeat_failures:
            metrics.append(Metric("HeartbeatsFailed", "Count", len(self.heartbeat_failures)))
        return metrics


def out_of_scope(launch: LifecycleLaunchEvent, settings: Settings) -> str | None:
    detail = launch.detail
    if detail.hook_name not in settings.lifecycle_hook_names:
        return f"hook {detail.hook_name!r} is not one of ours {list(settings.lifecycle_hook_names)}"
    return out_of_scope_group(detail.group_name, settings)


def out_of_scope_group(group_name: str, settings: Settings) -> str | None:
    if settings.launch_group_names and group_name not in settings.launch_group_names:
        return f"group {group_name!r} is not in scope {list(settings.launch_group_names)}"
    return None


@dataclass(frozen=True)
class Home:
    """The function's own account and region: an event from anywhere else is forged or misrouted
    (a cross-account event bus), and its instance id means nothing here (issue 9, finding 6)."""

    account: str
    region: str

    @classmethod
    def of(cls, context: Any) -> Home | None:
        """From the function's own ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME)."""
        parts = str(getattr(context, "invoked_function_arn", "") or "").split(":")
        return cls(account=parts[4], region=parts[3]) if len(parts) > 5 and parts[4] else None

    def foreign(self, event: EventBridgeModel) -> str | None:
        if (event.account, event.region) != (self.account, self.region):
            return (
                f"event from account {event.account} region {event.region}, "
                f"not this function's ({self.account} {self.region})"
            )
        return None


def document_parameters(settings: Settings) -> dict[str, str]:
    """The document's parameters (names and patterns: PostfixProxyProtocolDocument in template.yaml)."""
    return {
        "SmtpPorts": ",".join(str(port) for port in settings.smtp_ports),
        "ProxyProtocol": settings.proxy_protocol,
        "UpstreamProxyTimeout": settings.upstream_proxy_timeout,
        "DryRun": "true" if settings.dry_run else "false",
    }


@dataclass(frozen=True)
class _Pending:
    record: LaunchQueueRecord
    launch: LifecycleLaunchEvent

    @property
    def instance_id(self) -> str:
        return self.launch.detail.instance_id


class _Batch:
    def __init__(
        self,
        settings: Settings,
        report: LaunchBatchReport,
        now: datetime,
        ssm_client: SSMClient | None,
        autoscaling_client: AutoScalingClient | None,
        *,
        claims: LaunchClaims | None,
    ) -> None:
        self.claims = claims
        # The instance's real group where the event named another (still_waiting).
        self.groups: dict[str, str] = {}
        self.settings = settings
        self.report = report
        self.now = now
        self.ssm_client = ssm_client
        self.autoscaling_client = autoscaling_client

    def outcome(
        self, item: _Pending, status: RecordStatus, reason: str, command_id: str | None = None
    ) -> None:
        self.report.add(RecordOutcome(item.record.message_id, status, reason, item.instance_id, command_id))

    def waited_long(self, item: _Pending) -> bool:
        launched = item.launch.time
        # EventBridge always writes UTC; a time without an offset (a hand-made event) is read as
        # UTC rather than raising TypeError for the whole batch (issue 9, finding 2).
        if launched.tzinfo is None:
            launched = launched.replace(tzinfo=UTC)
        age = (self.now - launched).total_seconds()
        return age >= self.settings.heartbeat_after_seconds

    def heartbeat(self, item: _Pending) -> bool:
        """Keep the action alive; False when it is gone (completed or expired meanwhile)."""
        detail = item.launch.detail
        try:
            alive = autoscaling.record_heartbeat(
                self.group(item), detail.hook_name, detail.instance_id, client=self.autoscaling_client
            )
        except ProxymxError as exc:
            # A missed heartbeat is not fatal: the hook's HeartbeatTimeout still has slack.
            logger.warning(f"heartbeat failed: {exc}", extra={"instance_id": detail.instance_id})
            self.report.heartbeat_failures.append(detail.instance_id)
            return True
        if alive:
            self.report.heartbeats.append(detail.instance_id)
        return alive

    def still_waiting(self, items: list[_Pending]) -> list[_Pending]:
        try:
            states = autoscaling.lifecycle_states(
                [item.instance_id for item in items], client=self.autoscaling_client
            )
        except ProxymxError as exc:
            for item in items:
                self.outcome(item, "failed", f"cannot read lifecycle state: {exc}")
            return []
        waiting = []
        for item in items:
            state = states.get(item.instance_id)
            if state is None:
                self.outcome(
                    item, "ignored", "vanished: Auto Scaling no longer knows the instance (terminated)"
                )
            elif not state.waiting:
                self.outcome(
                    item, "ignored", f"not waiting ({state.state}): the lifecycle action is already over"
                )
            elif state.group_name != item.launch.detail.group_name:
                # The instance's real group decides (issue 9, finding 6): with the event's group the
                # command's context would name a group that holds no action for it, and the verdict
                # would find "No active Lifecycle Action" while the instance waited for the default.
                reason = out_of_scope_group(state.group_name, self.settings)
                if reason is not None:
                    self.outcome(item, "ignored", f"out of scope (the instance's real group): {reason}")
                    continue
                logger.warning(
                    f"launch event names group {item.launch.detail.group_name!r}, the instance is in "
                    f"{state.group_name!r}: using the instance's group",
                    extra={"instance_id": item.instance_id},
                )
                self.groups[item.instance_id] = state.group_name
                waiting.append(item)
            else:
                waiting.append(item)
        return waiting

    def group(self, item: _Pending) -> str:
        return self.groups.get(item.instance_id, item.launch.detail.group_name)

    def online(self, items: list[_Pending]) -> list[_Pending]:
        try:
            online = ssm.online_instances([item.instance_id for item in items], client=self.ssm_client)
        except ProxymxError as exc:
            for item in items:
                self.outcome(item, "failed", f"cannot read SSM registration: {exc}")
            return []
        ready = []
        for item in items:
            if item.instance_id in online:
                ready.append(item)
            elif self.waited_long(item) and not self.heartbeat(item):
                self.outcome(item, "ignored", "the lifecycle action expired while the agent was late")
            else:
                self.outcome(item, "not-ready", "SSM agent not registered/Online yet: retried later")
        return ready

    def send(self, items: list[_Pending]) -> None:
        by_action: dict[tuple[str, str], list[_Pending]] = defaultdict(list)
        for item in items:
            by_action[(self.group(item), item.launch.detail.hook_name)].append(item)
        parameters = document_parameters(self.settings)
        for (group, hook), members in sorted(by_action.items()):
            members.sort(key=lambda item: item.instance_id)
            for start in range(0, len(members), ssm.MAX_INSTANCES_PER_COMMAND):
                chunk = members[start : start + ssm.MAX_INSTANCES_PER_COMMAND]
                # Give the command a full HeartbeatTimeout when the wait so far has eaten into it.
                kept = []
                for item in chunk:
                    if self.waited_long(item) and not self.heartbeat(item):
                        self.outcome(
                            item, "ignored", "the lifecycle action ended before the command was sent"
                        )
                    else:
                        kept.append(item)
                claimed = self.claim(kept)
                if claimed:
                    self.send_chunk(group, hook, claimed, parameters)

    def claim(self, items: list[_Pending]) -> list[tuple[_Pending, Claim | None]]:
        """The items this delivery may send (their claims won); the others get their outcome."""
        if self.claims is None:
            return [(item, None) for item in items]
        won: list[tuple[_Pending, Claim | None]] = []
        for item in items:
            try:
                claim = self.claims.claim(item.instance_id, item.launch.detail.destination, self.now)
            except ProxymxError as exc:
                self.outcome(item, "failed", f"cannot claim the launch (one command per launch): {exc}")
                continue
            if claim.won:
                won.append((item, claim))
            elif claim.state == "sent" and claim.command_id:
                self.outcome(
                    item,
                    "sent",
                    f"command {claim.command_id} already sent for this launch by another delivery: reused",
                    claim.command_id,
                )
            else:
                self.outcome(
                    item, "not-ready", "another delivery of this launch is sending its command: retried later"
                )
        return won

    def send_chunk(
        self,
        group: str,
        hook: str,
        claimed: list[tuple[_Pending, Claim | None]],
        parameters: dict[str, str],
    ) -> None:
        chunk = [item for item, _ in claimed]
        ids = [item.instance_id for item in chunk]
        try:
            command_id = ssm.send_command(
                ids,
                document_name=self.settings.document_name,
                parameters=parameters,
                comment=encode_comment(group, hook),
                timeout_seconds=self.settings.command_timeout_seconds,
                log_group=self.settings.command_log_group,
                client=self.ssm_client,
            )
        except ssm.InstancesNotReady as exc:
            self.release(claimed)
            for item in chunk:
                self.outcome(item, "not-ready", str(exc))
            return
        except ProxymxError as exc:
            self.release(claimed)
            for item in chunk:
                self.outcome(item, "failed", str(exc))
            return
        self.report.commands.append(SentCommand(command_id, group, hook, tuple(ids)))
        for item, claim in claimed:
            if claim is not None and self.claims is not None:
                try:
                    self.claims.sent(claim, command_id)
                except ProxymxError as exc:
                    # The command is out: never fail the record (its redelivery would find the claim
                    # "claiming" and wait until it goes stale). Other deliveries wait meanwhile.
                    logger.warning(
                        f"command {command_id} sent but not recorded on its claim: {exc}",
                        extra={"instance_id": item.instance_id, "command_id": command_id},
                    )
            self.outcome(item, "sent", f"document {self.settings.document_name} sent", command_id)

    def release(self, claimed: list[tuple[_Pending, Claim | None]]) -> None:
        for item, claim in claimed:
            if claim is None or self.claims is None:
                continue
            try:
                self.claims.release(claim, self.now)
            except ProxymxError as exc:
                # The claim then goes stale and a later delivery takes it over (claims.py).
                logger.warning(f"claim not released: {exc}", extra={"instance_id": item.instance_id})


def launch_claims(settings: Settings) -> LaunchClaims | None:
    """The claims of the StateTable (none without a table: then only a batch's own duplicates are
    removed; the template always sets STATE_TABLE)."""
    if not settings.state_table_name:
        return None
    return LaunchClaims(
        StateTable(settings.state_table_name), command_timeout_seconds=settings.command_timeout_seconds
    )


def configure_launches(
    batch: LaunchQueueBatch,
    settings: Settings,
    *,
    ssm_client: SSMClient | None = None,
    autoscaling_client: AutoScalingClient | None = None,
    claims: LaunchClaims | None = None,
    home: Home | None = None,
    now: datetime | None = None,
) -> LaunchBatchReport:
    """Decide and act for one SQS batch of launch lifecycle events; one outcome per record."""
    report = LaunchBatchReport()
    work = _Batch(
        settings,
        report,
        now or datetime.now(UTC),
        ssm_client,
        autoscaling_client,
        claims=claims if claims is not None else launch_claims(settings),
    )
    pending: dict[str, _Pending] = {}
    for record in batch.records:
        try:
            launch = record.launch()
        except MalformedEvent as exc:
            report.add(RecordOutcome(record.message_id, "rejected", str(exc)))
            continue
        item = _Pending(record, launch)
        foreign = home.foreign(launch) if home is not None else None
        reason = out_of_scope(launch, settings)
        if foreign is not None:
            work.outcome(item, "rejected", foreign)
        elif reason is not None:
            work.outcome(item, "ignored", f"out of scope: {reason}")
        elif item.instance_id in pending:
            first = pending[item.instance_id].record.message_id
            work.outcome(item, "ignored", f"duplicate of message {first} in this batch")
        else:
            pending[item.instance_id] = item
    try:
        if pending:
            waiting = work.still_waiting(list(pending.values()))
            if waiting:
                ready = work.online(waiting)
                if ready:
                    work.send(ready)
    except Exception as exc:
        # A bug's path: the records already settled (a command sent) keep their outcome, so the
        # queue does not bring them back; only the unsettled ones fail and come back.
        logger.exception("launch batch: unexpected error; the unsettled records are retried")
        for item in pending.values():
            if item.record.message_id not in report.outcomes:
                work.outcome(item, "failed", f"unexpected {type(exc).__name__}: {exc}")
    return report
