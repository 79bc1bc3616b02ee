"""CheckOutcome: read the invocation of our document, judge it, finish the lifecycle action.

The verdict and what to do with the action are :mod:`proxymx.launch.plan`'s (``judge``,
``release``: CONTINUE only on proof, ABANDON or HOOK_DEFAULT otherwise, the dry run); this module
reads what they need and applies them:

- Only our document, only the invocation-level event, only terminal statuses (the rule pattern
  filters the same; the code does not rely on it).
- ``GetCommandInvocation`` is eventually consistent right after the status event: it may answer
  ``InvocationDoesNotExist`` or a non-terminal status for a moment. A few short, bounded re-reads,
  then :class:`~proxymx.errors.NotReadyYet` (the asynchronous invocation is retried by Lambda,
  then lands in the on-failure destination).
- The verdict comes from the invocation read back (its status, StatusDetails, document name and
  summary), never from the event, which only says where to look (issue 9, finding 4): a run still
  in progress is retried whatever the event says; an invocation of another document is ignored.
- The lifecycle action is found from the command's comment (:mod:`proxymx.launch.context`), or
  looked up; it must be in scope (:func:`proxymx.scope.launch_out_of_scope`).
- An action that is already completed or expired is an idempotent success (``already-over``).
- Readiness (issue 7.1): a run that proved its configuration (``Mode=configure``) or proved
  Postfix plain (``Mode=revert``) is recorded on the instance as the tag
  ``proxymx:proxy-protocol`` BEFORE the lifecycle action is completed, so that a load balancer
  switch never sees an in-service instance without its proof. Runs outside a lifecycle action
  (a refresh, an operator's run) are recorded too: the tag states what the instance speaks.
- Failures are published to the notification topic, when one is configured, with the instance,
  the reason and the tail of the script's stderr; a publish that fails counts
  ``NotificationsFailed`` (SilentFailuresAlarm).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

from aws_lambda_powertools import Logger

from proxymx.aws import Clients
from proxymx.config import Settings
from proxymx.errors import NotReadyYet, ProxymxError
from proxymx.launch.autoscaling import AutoScaling
from proxymx.launch.context import ActionContext, decode_comment
from proxymx.launch.plan import Invocation, LifecycleResult, configuration_seconds, judge, release
from proxymx.launch.readiness_tag import ReadinessTags
from proxymx.launch.runcommand import RunCommand
from proxymx.launch.sns import Notifications
from proxymx.loadbalancer.cutover import CommentKind, parse_comment
from proxymx.loadbalancer.readiness import tag_value_from_summary
from proxymx.models.ssm import TERMINAL_STATUSES, TIMED_OUT_STATUSES, CommandStatusChange, SsmStatusEvent
from proxymx.postfix_summary import parse_summary
from proxymx.results import Metric, count
from proxymx.scope import launch_out_of_scope

logger = Logger(child=True)

# cutover-progress: a run of a cutover command (issue 7.3), which has no lifecycle action: its
# target's entry in the cutover was updated (proxymx.loadbalancer.cutover_flow).
Decision = Literal[
    "continued", "abandoned", "left-to-hook-default", "already-over", "ignored", "cutover-progress"
]
# The decision in the vocabulary every flow shares (proxymx.results).
SHARED_OUTCOME: dict[str, str] = {
    "continued": "changed",
    "abandoned": "changed",
    "left-to-hook-default": "compliant",
    "already-over": "compliant",
    "ignored": "ignored",
    "cutover-progress": "changed",
}
STDERR_TAIL = 2000
READ_ATTEMPTS = 4
READ_BACKOFF_SECONDS = 0.5  # 0.5, 1, 2: about 3.5 s at most, well inside the function timeout


@dataclass
class OutcomeReport:
    decision: Decision
    reason: str
    instance_id: str | None = None
    command_id: str | None = None
    status: str | None = None
    action: LifecycleResult | None = None
    group_name: str | None = None
    hook_name: str | None = None
    notified: bool = False
    # The proxymx:proxy-protocol value recorded on the instance (None: nothing proven or written).
    readiness_tag: str | None = None
    measured: list[Metric] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        return SHARED_OUTCOME[self.decision]

    def metrics(self) -> list[Metric]:
        return list(self.measured)

    def to_dict(self) -> dict[str, Any]:
        """``outcome`` in the vocabulary every proxymx handler shares (changed, compliant, ignored);
        ``decision`` says exactly what happened to the lifecycle action."""
        data = asdict(self)
        data.pop("measured")
        data["outcome"] = self.outcome
        return data


class _Apply:
    """Reads what the verdict needs and applies it, through adapters built at first use."""

    def __init__(self, settings: Settings, clients: Clients, sleep: Callable[[float], Any]) -> None:
        self.settings = settings
        self.clients = clients
        self.sleep = sleep

    @cached_property
    def runcommand(self) -> RunCommand:
        return RunCommand(self.clients.ssm)

    @cached_property
    def autoscaling(self) -> AutoScaling:
        return AutoScaling(self.clients.autoscaling)

    @cached_property
    def notifications(self) -> Notifications:
        return Notifications(self.clients.sns)

    def read_invocation(self, command_id: str, instance_id: str) -> Invocation:
        invocation: Invocation | None = None
        for attempt in range(READ_ATTEMPTS):
            invocation = self.runcommand.get_invocation(command_id, instance_id)
            if invocation is not None and invocation.status in TERMINAL_STATUSES:
                return invocation
            if attempt < READ_ATTEMPTS - 1:
                self.sleep(READ_BACKOFF_SECONDS * 2**attempt)
        if invocation is None:
            raise NotReadyYet(
                f"GetCommandInvocation {command_id}/{instance_id}: InvocationDoesNotExist (yet)"
            )
        # Still not terminal: _check retries the event whatever it says (the verdict is the run's).
        return invocation

    def action_context(self, instance_id: str, comment: str) -> ActionContext | None:
        context = decode_comment(comment)
        if context is not None:
            return context
        state = self.autoscaling.lifecycle_states([instance_id]).get(instance_id)
        # Not sent by ConfigureInstance (e.g. an operator's run on the in-service fleet, the cutover
        # in docs/postfix.md): only an instance a hook still holds has an action for us to complete.
        if state is None or not state.waiting:
            return None
        hooks = self.autoscaling.launch_hook_names(state.group_name, self.settings.lifecycle_hook_names)
        return ActionContext(state.group_name, hooks[0]) if hooks else None

    def notify(self, report: OutcomeReport, invocation: Invocation) -> None:
        subject = f"proxymx: Postfix not configured on {report.instance_id} ({report.status})"
        try:
            self.notifications.publish_failure(
                self.settings.notification_topic_arn,
                subject,
                _failure_message(report, invocation, self.settings),
            )
            report.notified = True
        except ProxymxError as exc:  # the lifecycle decision stands; the log has everything
            logger.error(f"failure notification not published: {exc}")
            # The operator relies on that notification: a lost one must reach an alarm.
            report.measured.append(count("NotificationsFailed"))

    @cached_property
    def readiness_tags(self) -> ReadinessTags:
        return ReadinessTags(self.clients.ec2)

    def record_readiness(self, instance_id: str, status: str, invocation: Invocation) -> str | None:
        """Tag what a successful run proved; None when it proved nothing (or a dry run)."""
        summary = parse_summary(invocation.stdout) if status == "Success" else None
        value = tag_value_from_summary(summary) if summary is not None and not self.settings.dry_run else None
        if value is None:
            return None
        try:
            self.readiness_tags.record(instance_id, value)
        except ProxymxError as exc:
            # IAM allows the tag on fleet instances only: an operator's run elsewhere is not ours to
            # record. Unrecorded, the instance counts as unready -- the safe side.
            logger.warning(f"readiness not recorded on {instance_id}: {exc}")
            return None
        return value

    def cutover_progress(
        self, comment: tuple[CommentKind, str], instance_id: str, status: str, base: OutcomeReport
    ) -> OutcomeReport:
        """A run of a cutover command: advance its cutover (the proof is already tagged)."""
        kind, digest_hex = comment
        tag = base.readiness_tag
        if kind == "off":
            # The way back: the unit is already off; the plain tag above is all there is to do.
            plain = tag is not None and tag.startswith("plain")
            why = "tagged plain" if plain else f"not proven plain ({status}); it stays unready"
            return replace(
                base, decision="cutover-progress", reason=f"way back: {instance_id} {why}", status=status
            )
        from proxymx.loadbalancer.cutover_flow import cutovers_for

        engine = cutovers_for(self.settings, self.clients, sleep=self.sleep)
        if engine is None:
            return replace(
                base,
                reason="a cutover command, but no StateTable is configured",
                measured=[count("StatusEventsIgnored")],
            )
        progress = engine.on_invocation(kind, digest_hex, instance_id, status, tag)
        return replace(
            base,
            decision="cutover-progress",
            reason=progress.reason,
            status=status,
            measured=[count("CutoverProgress"), *progress.measured],
        )


def settled_status(invocation: Invocation) -> str:
    """The invocation's final status as the status event names it: GetCommandInvocation's Status has
    no Undeliverable or DeliveryTimedOut (they are its StatusDetails, under Failed / TimedOut)."""
    details = invocation.status_details
    return details if details in TERMINAL_STATUSES else invocation.status


def _failure_message(report: OutcomeReport, invocation: Invocation, settings: Settings) -> str:
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
    clients: Clients,
    *,
    now: datetime | None = None,
    sleep: Callable[[float], Any] | None = None,
) -> OutcomeReport:
    """The one domain call of the CheckOutcome handler (the event's own time dates it: ``now``
    is not needed)."""
    report = _check(event, settings, _Apply(settings, clients, sleep or time.sleep))
    quiet = ("continued", "already-over", "ignored", "cutover-progress")
    log = logger.info if report.decision in quiet else logger.warning
    log(f"outcome {report.decision}: {report.reason}", extra=report.to_dict())
    return report


def _check(event: SsmStatusEvent, settings: Settings, work: _Apply) -> OutcomeReport:
    if isinstance(event, CommandStatusChange):
        return OutcomeReport(
            "ignored",
            "command-level status event (we act per instance)",
            measured=[count("StatusEventsIgnored")],
        )
    detail = event.detail
    base = OutcomeReport("ignored", "", detail.instance_id, detail.command_id, detail.status)

    def ignored(reason: str) -> OutcomeReport:
        return replace(base, reason=reason, measured=[count("StatusEventsIgnored")])

    if detail.document_name != settings.document_name:
        return ignored(f"foreign document {detail.document_name!r}")
    if not event.is_terminal:
        return ignored(f"status {detail.status} is not terminal")

    invocation = work.read_invocation(detail.command_id, detail.instance_id)
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
        return ignored(
            f"the invocation runs document {invocation.document_name!r}, not ours "
            f"(the event said {detail.document_name!r})"
        )
    status = settled_status(invocation)
    base = replace(base, readiness_tag=work.record_readiness(detail.instance_id, status, invocation))
    cutover = parse_comment(invocation.comment)
    if cutover is not None:
        # No lifecycle action to complete: the launch verdict below is for launches only.
        return work.cutover_progress(cutover, detail.instance_id, status, base)
    context = work.action_context(detail.instance_id, invocation.comment)
    if context is None:
        return ignored("no lifecycle action of ours for this instance (vanished, or not launched by a hook)")
    out_of_scope = launch_out_of_scope(context.group_name, context.hook_name, settings)
    if out_of_scope is not None:
        return ignored(f"out of scope: {out_of_scope}")

    verdict = judge(status, invocation)
    plan = release(verdict, settings)
    report = replace(
        base,
        decision=plan.decision,
        reason=verdict.reason,
        status=status,
        group_name=context.group_name,
        hook_name=context.hook_name,
        action=plan.action,
        measured=[count(plan.metric)],
    )
    if status in TIMED_OUT_STATUSES:
        report.measured.append(count("ConfigurationTimedOut"))
    duration = configuration_seconds(invocation, detail.requested_date_time, event.time)
    if duration is not None:
        report.measured.append(Metric("ConfigurationDuration", "Seconds", duration))
    if plan.dry_run_override:
        logger.warning(f"dry run: would ABANDON ({verdict.reason}); releasing with CONTINUE")

    if plan.action is not None:
        completion = work.autoscaling.complete_lifecycle_action(
            context.group_name, context.hook_name, detail.instance_id, plan.action
        )
        if completion == "no-active-action":
            report.decision = "already-over"
            report.reason = f"lifecycle action already completed or expired ({verdict.reason})"
            report.measured.append(count("LifecycleActionAlreadyOver"))
    if plan.notify:
        work.notify(report, invocation)
    return report
