"""Drive a cutover's chain on the embedded AWS (tests, the wire test, the demo).

A cutover is started by EnableProxyProtocol or Reconcile; it then advances only on the SSM status
events of its commands. The embedded SSM queues those events (``LaunchExtension.status_events``)
instead of publishing them: :func:`deliver_status_events` hands each to CheckOutcome's domain call,
as EventBridge would, until none is left (handling one may send more commands: the revert of a
failed cutover, the document for a target registered meanwhile). With ``RealDocument`` outcomes the
document's real script runs against a local Postfix, so the cutover is real end to end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from proxymx.aws import Clients
from proxymx.config import Settings
from proxymx.launch.outcome import OutcomeReport, check_outcome
from proxymx.models.ssm import parse_ssm_event

from proxymx_tools.embedded import LaunchExtension


def deliver_status_events(
    extension: LaunchExtension,
    settings: Settings,
    *,
    clients: Callable[[], Clients] = Clients,
    sleep: Callable[[float], Any] = lambda _s: None,
) -> list[OutcomeReport]:
    """Every queued status event through CheckOutcome (each with fresh clients, as a separate
    Lambda invocation has), in order; the reports."""
    reports: list[OutcomeReport] = []
    while events := extension.drain_status_events():
        for event in events:
            reports.append(check_outcome(parse_ssm_event(event), settings, clients(), sleep=sleep))
    return reports
