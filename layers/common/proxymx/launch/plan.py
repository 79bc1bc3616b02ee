"""What the launch flow decides: pure decisions, no AWS (the launch flow's twin of
:mod:`proxymx.loadbalancer.plan`). :mod:`proxymx.launch.configure` and
:mod:`proxymx.launch.outcome` apply them through the adapters.

ConfigureInstance (one SQS batch, or the sweep's stuck instances, as typed :class:`Launch`):

- Scope (:func:`proxymx.scope.launch_out_of_scope`): only our hooks, only the groups of
  ``LaunchGroupNames`` when set. Out of scope is ``ignored``: no AWS call at all.
- De-duplication: EventBridge and SQS deliver at least once, so one instance may come twice in
  a batch; the first one is acted on, the others are ``ignored`` (naming the first).
- Commands: one per (group, hook) pair, because the command's comment carries that pair for
  CheckOutcome (:mod:`proxymx.launch.context`), and at most 50 instances each (SendCommand's
  ``InstanceIds`` limit): instances arriving together share commands.
- Heartbeat: a launch older than ``heartbeat_after_seconds`` gets a lifecycle heartbeat before
  each retry and before its command, so that the hook's ``HeartbeatTimeout`` does not abandon an
  instance whose agent is merely slow, and the command gets a full timeout. The sweep hands
  launches dated at the instance's launch time, so they always get one.

CheckOutcome (the verdict on one invocation of our document):

- ``CONTINUE`` only when a successful run's summary proves the configuration
  (:attr:`PostfixConfigResult.proves_configuration`); anything else is ``ABANDON`` with the reason.
- ``FailureResult=HOOK_DEFAULT``: a failed run completes nothing (the hook's DefaultResult decides
  when its heartbeat times out: useful while investigating a failing fleet).
- Dry run: the document ran with ``DryRun=true`` and changed nothing, so nothing can be proven;
  the instance is released with ``CONTINUE`` (exactly what happens without proxymx) and counted
  as ``DryRunReleased``, never as ``ConfigurationFailed``: a dry run must never shrink the fleet
  nor fire the alarm that says instances were abandoned.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from proxymx.batching import chunked
from proxymx.config import Settings
from proxymx.errors import MalformedEvent
from proxymx.frozen import frozen
from proxymx.scope import Home, from_home, launch_out_of_scope

if TYPE_CHECKING:
    # Annotations only: CheckOutcome, which uses this plan's verdict, never parses a lifecycle event.
    from proxymx.models.lifecycle import LaunchQueueBatch, LifecycleLaunchEvent
    from proxymx.postfix_summary import PostfixConfigResult

# SendCommand accepts at most 50 InstanceIds (botocore model: InstanceIds max 50).
MAX_INSTANCES_PER_COMMAND = 50

LifecycleResult = Literal["CONTINUE", "ABANDON"]

# ----- ConfigureInstance ---------------------------------------------------------------------


@frozen
class Launch:
    """An instance held by a launch lifecycle hook, whoever found it: the lifecycle event (through
    the launch queue) or the sweep."""

    instance_id: str
    group_name: str
    hook_name: str
    # When the launch began: the event's time, or the instance's launch time for the sweep.
    time: datetime
    origin: str = "EC2"
    destination: str = "AutoScalingGroup"
    # None when the sweep found it: heartbeats and completion go by instance id anyway.
    token: str | None = None
    # The SQS record that carried it (None from the sweep).
    message_id: str | None = None

    @classmethod
    def from_event(cls, event: LifecycleLaunchEvent, message_id: str | None = None) -> Launch:
        detail = event.detail
        return cls(
            instance_id=detail.instance_id,
            group_name=detail.group_name,
            hook_name=detail.hook_name,
            time=event.time,
            origin=detail.origin,
            destination=detail.destination,
            token=detail.token,
            message_id=message_id,
        )

    @property
    def key(self) -> str:
        """What the launch's outcome is filed under: its SQS message, or the instance."""
        return self.message_id or f"sweep-{self.instance_id}"


@frozen
class RejectedRecord:
    message_id: str
    reason: str


def launches_of(
    batch: LaunchQueueBatch, home: Home | None = None
) -> tuple[list[Launch], list[RejectedRecord]]:
    """The batch's records as launches; a malformed body, or an event from another account or
    region than ``home`` (issue 9, finding 6), rejects its record alone (one bad record must not
    sink its batch)."""
    launches: list[Launch] = []
    rejected: list[RejectedRecord] = []
    for record in batch.records:
        try:
            launches.append(Launch.from_event(from_home(record.launch(), home), record.message_id))
        except MalformedEvent as exc:
            rejected.append(RejectedRecord(record.message_id, str(exc)))
    return launches, rejected


@frozen
class Ignored:
    launch: Launch
    reason: str


@frozen
class Intake:
    """What a batch asks for: the launches to act on (one per instance) and the rest, with why."""

    pending: tuple[Launch, ...]
    ignored: tuple[Ignored, ...]


def admit(launches: Iterable[Launch], settings: Settings) -> Intake:
    """Scope and de-duplication, in arrival order."""
    pending: dict[str, Launch] = {}
    ignored: list[Ignored] = []
    for launch in launches:
        reason = launch_out_of_scope(launch.group_name, launch.hook_name, settings)
        if reason is not None:
            ignored.append(Ignored(launch, f"out of scope: {reason}"))
        elif launch.instance_id in pending:
            first = pending[launch.instance_id].message_id
            earlier = f"message {first}" if first else "an earlier launch"
            ignored.append(Ignored(launch, f"duplicate of {earlier} in this batch"))
        else:
            pending[launch.instance_id] = launch
    return Intake(tuple(pending.values()), tuple(ignored))


def needs_heartbeat(launch: Launch, now: datetime, settings: Settings) -> bool:
    """True once the launch has waited long enough to eat into the hook's HeartbeatTimeout."""
    return (now - launch.time).total_seconds() >= settings.heartbeat_after_seconds


@frozen
class CommandChunk:
    """One SendCommand: one (group, hook) pair, at most 50 instances, sorted by instance id."""

    group_name: str
    hook_name: str
    launches: tuple[Launch, ...]

    @property
    def instance_ids(self) -> list[str]:
        return [launch.instance_id for launch in self.launches]


def command_chunks(launches: Iterable[Launch]) -> list[CommandChunk]:
    by_action: dict[tuple[str, str], list[Launch]] = defaultdict(list)
    for launch in launches:
        by_action[(launch.group_name, launch.hook_name)].append(launch)
    chunks: list[CommandChunk] = []
    for (group, hook), members in sorted(by_action.items()):
        ordered = sorted(members, key=lambda launch: launch.instance_id)
        chunks.extend(
            CommandChunk(group, hook, tuple(chunk)) for chunk in chunked(ordered, MAX_INSTANCES_PER_COMMAND)
        )
    return chunks


def document_parameters(settings: Settings) -> dict[str, str]:
    """The document's parameters (names and patterns: PostfixProxyProtocolDocument in template.yaml)."""
    return {
        "SmtpPorts": ",".join(str(port) for port in settings.smtp_ports),
        "ProxyProtocol": settings.proxy_protocol,
        "UpstreamProxyTimeout": settings.upstream_proxy_timeout,
        "DryRun": "true" if settings.dry_run else "false",
    }


# ----- CheckOutcome --------------------------------------------------------------------------


@frozen
class Invocation:
    """One instance's run of a command, as GetCommandInvocation shows it."""

    command_id: str
    instance_id: str
    document_name: str
    status: str
    status_details: str
    response_code: int
    stdout: str
    stderr: str
    comment: str
    started: datetime | None = None
    ended: datetime | None = None


@frozen
class Verdict:
    result: LifecycleResult
    reason: str
    summary: PostfixConfigResult | None = None

    @property
    def configured(self) -> bool:
        return self.result == "CONTINUE"


def judge(status: str, invocation: Invocation | None) -> Verdict:
    """CONTINUE only when a successful run's summary proves the configuration."""
    # Here, not at the top: ConfigureInstance and Reconcile import this module too, and only
    # CheckOutcome needs the status and summary models (a cold start pays for every import).
    from proxymx.models.ssm import TIMED_OUT_STATUSES
    from proxymx.postfix_summary import parse_summary

    stdout = invocation.stdout if invocation else ""
    summary = parse_summary(stdout)
    if status == "Success":
        if summary is None:
            return Verdict("ABANDON", "the document succeeded but printed no summary line")
        if summary.mode == "revert":
            # A launch behind units that send no header (issue 7.4): proven plain is what it must be.
            if summary.proves_plain:
                return Verdict("CONTINUE", f"Postfix {summary.postfix_version or '?'} proven plain", summary)
            return Verdict(
                "ABANDON", f"the revert run does not prove Postfix plain (result={summary.result})", summary
            )
        if summary.proves_configuration:
            version = summary.postfix_version or "?"
            return Verdict("CONTINUE", f"Postfix {version} {summary.result} and verified", summary)
        return Verdict(
            "ABANDON",
            f"the summary does not prove the configuration (result={summary.result}, "
            f"running={summary.running}, listening={summary.listening}, dry_run={summary.dry_run}"
            + (f", reason={summary.reason}" if summary.reason else "")
            + ")",
            summary,
        )
    if status in TIMED_OUT_STATUSES:
        return Verdict("ABANDON", f"the document timed out ({status})", summary)
    if status == "Undeliverable":
        return Verdict("ABANDON", "undeliverable: the SSM agent could not be reached", summary)
    if summary is not None and summary.reason:
        return Verdict("ABANDON", f"{status}: {summary.reason}", summary)
    code = invocation.response_code if invocation else -1
    return Verdict("ABANDON", f"{status} (exit code {code})", summary)


Decision = Literal["continued", "abandoned", "left-to-hook-default"]


@frozen
class Release:
    """What to do with the lifecycle action after a verdict."""

    decision: Decision
    # None: complete nothing (HOOK_DEFAULT).
    action: LifecycleResult | None
    # InstancesConfigured, ConfigurationFailed, or DryRunReleased (see the module docstring).
    metric: str
    # The verdict would have been ABANDON: in a dry run only, logged and not applied.
    dry_run_override: bool = False
    notify: bool = False


def release(verdict: Verdict, settings: Settings) -> Release:
    if verdict.configured:
        return Release("continued", "CONTINUE", "InstancesConfigured")
    notify = bool(settings.notification_topic_arn)
    if settings.dry_run:
        return Release("continued", "CONTINUE", "DryRunReleased", dry_run_override=True, notify=notify)
    if settings.failure_result == "HOOK_DEFAULT":
        return Release("left-to-hook-default", None, "ConfigurationFailed", notify=notify)
    return Release("abandoned", "ABANDON", "ConfigurationFailed", notify=notify)


def configuration_seconds(invocation: Invocation, requested: datetime | None, at: datetime) -> float | None:
    """How long the configuration took: the run itself, else from the request to the event."""
    if invocation.started and invocation.ended and invocation.ended >= invocation.started:
        return (invocation.ended - invocation.started).total_seconds()
    if requested is not None and at >= requested:
        return (at - requested).total_seconds()
    return None
