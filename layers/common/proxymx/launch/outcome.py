"""CheckOutcome: read the invocation of our document, judge it, finish the lifecycle action.

- Only our document, only the invocation-level event, only terminal statuses (the rule pattern
  filters the same; the code does not rely on it).
- ``GetCommandInvocation`` is eventually consistent right after the status event: it may answer
  ``InvocationDoesNotExist`` or a non-terminal status for a moment. A few short, bounded re-reads,
  then :class:`~proxymx.errors.NotReadyYet` (the asynchronous invocation is retried by Lambda,
  then lands in the on-failure destination).
- ``CONTINUE`` only when the script's summary proves the configuration
  (:attr:`PostfixConfigResult.proves_configuration`); anything else is ``ABANDON`` with the reason,
  or nothing at all when ``FAILURE_RESULT=HOOK_DEFAULT`` (the hook's DefaultResult decides when
  its heartbeat times out: useful while investigating a failing fleet).
- Dry run: the document ran with ``DryRun=true`` and changed nothing, so nothing can be proven.
  We release the instance with ``CONTINUE`` (exactly what happens without proxymx) and log the
  verdict we would have applied: a dry run must never shrink the fleet.
- An action that is already completed or expired is an idempotent success (``already-over``).
- Failures are published to the notification topic, when one is configured, with the instance,
  the reason and the tail of the script's stderr.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools import Logger

from proxymx.config import Settings
from proxymx.errors import NotReadyYet, ProxymxError
from proxymx.launch import autoscaling, sns, ssm
from proxymx.launch.autoscaling import LifecycleResult
from proxymx.launch.configure import Metric
from proxymx.launch.context import ActionContext, decode_comment
from proxymx.models.ssm import TERMINAL_STATUSES, TIMED_OUT_STATUSES, CommandStatusChange, SsmStatusEvent
from proxymx.postfix_summary import PostfixConfigResult, parse_summary

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_ssm import SSMClient

logger = Logger(child=True)

OutcomeStatus = Literal["continued", "abandoned", "left-to-hook-default", "already-over", "ignored"]
SHARED_OUTCOME: dict[str, str] = {
    "continued": "changed",
    "abandoned": "changed",
    "left-to-hook-default": "compliant",
    "already-over": "compliant",
    "ignored": "ignored",
}
STDERR_TAIL = 2000
READ_ATTEMPTS = 4
READ_BACKOFF_SECONDS = 0.5  # 0.5, 1, 2: about 3.5 s at most, well inside the function timeout


@dataclass(frozen=True)
class Verdict:
    result: LifecycleResult
    reason: str
    summary: PostfixConfigResult | None = None


@dataclass
class OutcomeReport:
    outcome: OutcomeStatus
    reason: str
    instance_id: str | None = None
    command_id: str | None = None
    status: str | None = None
    action: LifecycleResult | None = None
    group_name: str | None = None
    hook_name: str | None = None
    notified: bool = False
    metrics: list[Metric] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """``outcome`` in the vocabulary every proxymx handler shares (changed, compliant, ignored);
        ``decision`` says exactly what happened to the lifecycle action."""
        data = asdict(self)
        data.pop("metrics")
        data["decision"] = data.pop("outcome")
        data["outcome"] = SHARED_OUTCOME[self.outcome]
        return data


def judge(status: str, invocation: ssm.Invocation | None) -> Verdict:
    """CONTINUE only when a successful run's summary proves the configuration."""
    stdout = invocation.stdout if invocation else ""
    summary = parse_summary(stdout)
    if status == "Success":
        if summary is None:
            return Verdict("ABANDON", "the document succeeded but printed no summary line")
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


def settled_status(invocation: ssm.Invocation) -> str:
    """The invocation's final status as the status event names it: GetCommandInvocation's Status has
    no Undeliverable or DeliveryTimedOut (they are its StatusDetails, under Failed / TimedOut)."""
    details = invocation.status_details
    return details if details in TERMINAL_STATUSES else invocation.status


def _read_invocation(
    command_id: str, instance_id: str, client: SSMClient | None, sleep: Callable[[float], None]
) -> ssm.Invocation:
    invocation: ssm.Invocation | None = None
    for attempt in range(READ_ATTEMPTS):
        invocation = ssm.get_invocation(command_id, instance_id, client=client)
        if invocation is not None and invocation.status in TERMINAL_STATUSES:
            return invocation
        if attempt < READ_ATTEMPTS - 1:
            sleep(READ_BACKOFF_SECONDS * 2**attempt)
    if invocation is None:
        raise NotReadyYet(f"GetCommandInvocation {command_id}/{instance_id}: InvocationDoesNotExist (yet)")
    return invocation  # still not terminal there: a failure event's status is authority enough


def _action_context(
    instance_id: str, comment: str, settings: Settings, client: AutoScalingClient | None
) -> ActionContext | None:
    context = decode_comment(comment)
    if context is not None:
        return context
    states = autoscaling.lifecycle_states([instance_id], client=client)
    state = states.get(instance_id)
    # Not sent by ConfigureInstance (e.g. an operator's run on the in-service fleet, the cutover
    # in docs/postfix.md): only an instance a hook still holds has an action for us to complete.
    if state is None or not state.waiting:
        return None
    hooks = autoscaling.launch_hook_names(state.group_name, settings.lifecycle_hook_names, client=client)
    return ActionContext(state.group_name, hooks[0]) if hooks else None


def _duration_seconds(invocation: ssm.Invocation, requested: datetime | None, at: datetime) -> float | None:
    if invocation.started and invocation.ended and invocation.ended >= invocation.started:
        return (invocation.ended - invocation.started).total_seconds()
    if requested is not None and at >= requested:
        return (at - requested).total_seconds()
    return None


def _failure_message(report: OutcomeReport, invocation: ssm.Invocation, settings: Settings) -> str:
    tail = invocation.stderr[-STDERR_TAIL:] if invocation.stderr else "(empty)"
    return "\n".join(
        [
            f"Postfix was not configured on instance {report.instance_id}.",
            f"Auto Scaling group: {report.group_name}  hook: {report.hook_name}",
            f"Command: {report.command_id}  status: {report.status}  exit code: {invocation.response_code}",
            f"Reason: {report.reason}",
            f"Lifecycle action: {report.action or 'left to the hook default result'}"
            + (" (dry run)" if settings.dry_run else ""),
            "",
            "Tail of stderr:",
            tail,
        ]
    )


def check_outcome(
    event: SsmStatusEvent,
    settings: Settings,
    *,
    ssm_client: SSMClient | None = None,
    autoscaling_client: AutoScalingClient | None = None,
    sns_client: SNSClient | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> OutcomeReport:
    if isinstance(event, CommandStatusChange):
        return OutcomeReport(
            "ignored",
            "command-level status event (we act per instance)",
            metrics=[Metric("StatusEventsIgnored", "Count", 1)],
        )
    detail = event.detail
    base = OutcomeReport("ignored", "", detail.instance_id, detail.command_id, detail.status)

    def about(outcome: OutcomeStatus, reason: str) -> OutcomeReport:
        metrics = [Metric("StatusEventsIgnored", "Count", 1)] if outcome == "ignored" else []
        return replace(base, outcome=outcome, reason=reason, metrics=metrics)

    if detail.document_name != settings.document_name:
        return about("ignored", f"foreign document {detail.document_name!r}")
    if not event.is_terminal:
        return about("ignored", f"status {detail.status} is not terminal")

    invocation = _read_invocation(detail.command_id, detail.instance_id, ssm_client, sleep)
    # The verdict comes from the invocation read back, never from the event (issue 9, finding 4):
    # the event only says where to look. A Failed event ahead of (or forged over) a run still in
    # progress must not ABANDON a healthy instance, and a Success event must not prove a run that
    # failed. A lagging read is retried (Lambda retries the event), as is a lagging Success.
    if invocation.status not in TERMINAL_STATUSES:
        raise NotReadyYet(
            f"GetCommandInvocation {detail.command_id}/{detail.instance_id}: still {invocation.status} "
            f"after the {detail.status} event"
        )
    if invocation.document_name and invocation.document_name != settings.document_name:
        return about(
            "ignored",
            f"the invocation runs document {invocation.document_name!r}, not ours "
            f"(the event said {detail.document_name!r})",
        )
    status = settled_status(invocation)
    context = _action_context(detail.instance_id, invocation.comment, settings, autoscaling_client)
    if context is None:
        return about(
            "ignored", "no lifecycle action of ours for this instance (vanished, or not launched by a hook)"
        )
    if context.hook_name not in settings.lifecycle_hook_names or (
        settings.launch_group_names and context.group_name not in settings.launch_group_names
    ):
        return about("ignored", f"group {context.group_name!r} / hook {context.hook_name!r} out of scope")
    verdict = judge(status, invocation)
    report = about("continued" if verdict.result == "CONTINUE" else "abandoned", verdict.reason)
    report.group_name, report.hook_name = context.group_name, context.hook_name
    configured = verdict.result == "CONTINUE"
    # A dry run releases the instance: counting it as ConfigurationFailed would fire the alarm
    # that says instances were abandoned, on every launch.
    failed_metric = "DryRunReleased" if settings.dry_run else "ConfigurationFailed"
    report.metrics.append(Metric("InstancesConfigured" if configured else failed_metric, "Count", 1))
    report.status = status
    if status in TIMED_OUT_STATUSES:
        report.metrics.append(Metric("ConfigurationTimedOut", "Count", 1))
    duration = _duration_seconds(invocation, detail.requested_date_time, event.time)
    if duration is not None:
        report.metrics.append(Metric("ConfigurationDuration", "Seconds", duration))

    action: LifecycleResult | None = verdict.result
    if not configured and settings.dry_run:
        logger.warning(f"dry run: would ABANDON ({verdict.reason}); releasing with CONTINUE")
        action = "CONTINUE"
        report.outcome = "continued"
    elif not configured and settings.failure_result == "HOOK_DEFAULT":
        action = None
        report.outcome = "left-to-hook-default"
    report.action = action

    if action is not None:
        completion = autoscaling.complete_lifecycle_action(
            context.group_name, context.hook_name, detail.instance_id, action, client=autoscaling_client
        )
        if completion == "no-active-action":
            report.outcome = "already-over"
            report.reason = f"lifecycle action already completed or expired ({verdict.reason})"
            report.metrics.append(Metric("LifecycleActionAlreadyOver", "Count", 1))

    if not configured and settings.notification_topic_arn:
        subject = f"proxymx: Postfix not configured on {detail.instance_id} ({report.status})"
        try:
            sns.publish_failure(
                settings.notification_topic_arn,
                subject,
                _failure_message(report, invocation, settings),
                client=sns_client,
            )
            report.notified = True
        except ProxymxError as exc:  # the lifecycle decision stands; the log has everything
            logger.error(f"failure notification not published: {exc}")
            # The operator relies on that notification: a lost one must reach an alarm.
            report.metrics.append(Metric("NotificationsFailed", "Count", 1))
    log = logger.info if configured else logger.warning
    log(f"outcome {report.outcome}: {report.reason}", extra=report.as_dict())
    return report
