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

from proxymx.config import Settings
from proxymx.errors import MalformedEvent, ProxymxError
from proxymx.launch import autoscaling, ssm
from proxymx.launch.context import encode_comment
from proxymx.launch.sends import launch_decision
from proxymx.models.lifecycle import LaunchQueueBatch, LaunchQueueRecord, LifecycleLaunchEvent

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_ssm import SSMClient

logger = Logger(child=True)

# abandoned: the group's units contradict each other (issue 7.4); the lifecycle action is ABANDONed.
RecordStatus = Literal["sent", "ignored", "not-ready", "rejected", "failed", "abandoned"]
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
    # Launches ABANDONed because their group's units contradict each other (issue 7.4).
    conflicts: int = 0

    def add(self, outcome: RecordOutcome) -> None:
        self.outcomes[outcome.message_id] = outcome
        log = logger.warning if outcome.status in ("rejected", "failed", "abandoned") else logger.info
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
            "abandoned": "LaunchConflicts",
        }
        metrics = [Metric(names[status], "Count", count) for status, count in sorted(counts.items())]
        metrics.append(Metric("SendCommandCalls", "Count", len(self.commands)))
        return metrics


def out_of_scope(launch: LifecycleLaunchEvent, settings: Settings) -> str | None:
    detail = launch.detail
    if detail.hook_name not in settings.lifecycle_hook_names:
        return f"hook {detail.hook_name!r} is not one of ours {list(settings.lifecycle_hook_names)}"
    if settings.launch_group_names and detail.group_name not in settings.launch_group_names:
        return f"group {detail.group_name!r} is not in scope {list(settings.launch_group_names)}"
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
    ) -> None:
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
        age = (self.now - item.launch.time).total_seconds()
        return age >= self.settings.heartbeat_after_seconds

    def heartbeat(self, item: _Pending) -> bool:
        """Keep the action alive; False when it is gone (completed or expired meanwhile)."""
        detail = item.launch.detail
        try:
            alive = autoscaling.record_heartbeat(
                detail.group_name, detail.hook_name, detail.instance_id, client=self.autoscaling_client
            )
        except ProxymxError as exc:
            # A missed heartbeat is not fatal: the hook's HeartbeatTimeout still has slack.
            logger.warning(f"heartbeat failed: {exc}", extra={"instance_id": detail.instance_id})
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
            else:
                waiting.append(item)
        return waiting

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
            by_action[(item.launch.detail.group_name, item.launch.detail.hook_name)].append(item)
        for (group, hook), members in sorted(by_action.items()):
            members.sort(key=lambda item: item.instance_id)
            parameters = self.parameters_for(group, members)
            if parameters is None:
                continue
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
                if kept:
                    self.send_chunk(group, hook, kept, parameters)

    def parameters_for(self, group: str, members: list[_Pending]) -> dict[str, str] | None:
        """The run the group's units need (what they SEND NOW); None when they contradict."""
        try:
            decision = launch_decision(group, self.settings)
        except ProxymxError as exc:
            for item in members:
                self.outcome(item, "failed", f"cannot read what the group's load balancers send: {exc}")
            return None
        if decision.conflict is None:
            return decision.parameters(self.settings)
        self.report.conflicts += len(members)
        for item in members:
            detail = item.launch.detail
            try:
                autoscaling.complete_lifecycle_action(
                    detail.group_name,
                    detail.hook_name,
                    detail.instance_id,
                    "ABANDON",
                    client=self.autoscaling_client,
                )
            except ProxymxError as exc:
                self.outcome(item, "failed", f"{decision.conflict}; ABANDON failed: {exc}")
                continue
            logger.warning(
                f"launch abandoned: {decision.conflict}", extra={"instance_id": detail.instance_id}
            )
            self.outcome(item, "abandoned", f"ABANDON: {decision.conflict}")
        return None

    def send_chunk(self, group: str, hook: str, chunk: list[_Pending], parameters: dict[str, str]) -> None:
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
            for item in chunk:
                self.outcome(item, "not-ready", str(exc))
            return
        except ProxymxError as exc:
            for item in chunk:
                self.outcome(item, "failed", str(exc))
            return
        self.report.commands.append(SentCommand(command_id, group, hook, tuple(ids)))
        for item in chunk:
            self.outcome(item, "sent", f"document {self.settings.document_name} sent", command_id)


def configure_launches(
    batch: LaunchQueueBatch,
    settings: Settings,
    *,
    ssm_client: SSMClient | None = None,
    autoscaling_client: AutoScalingClient | None = None,
    now: datetime | None = None,
) -> LaunchBatchReport:
    """Decide and act for one SQS batch of launch lifecycle events; one outcome per record."""
    report = LaunchBatchReport()
    work = _Batch(settings, report, now or datetime.now(UTC), ssm_client, autoscaling_client)
    pending: dict[str, _Pending] = {}
    for record in batch.records:
        try:
            launch = record.launch()
        except MalformedEvent as exc:
            report.add(RecordOutcome(record.message_id, "rejected", str(exc)))
            continue
        item = _Pending(record, launch)
        reason = out_of_scope(launch, settings)
        if reason is not None:
            work.outcome(item, "ignored", f"out of scope: {reason}")
        elif item.instance_id in pending:
            first = pending[item.instance_id].record.message_id
            work.outcome(item, "ignored", f"duplicate of message {first} in this batch")
        else:
            pending[item.instance_id] = item
    if pending:
        waiting = work.still_waiting(list(pending.values()))
        if waiting:
            ready = work.online(waiting)
            if ready:
                work.send(ready)
    return report
