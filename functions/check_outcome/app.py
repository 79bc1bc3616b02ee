"""CheckOutcome: SSM invocation status-change event -> CompleteLifecycleAction (CONTINUE/ABANDON).

Thin on purpose: parse at the edge, one call into :mod:`proxymx.launch.outcome`. A malformed
event raises :class:`~proxymx.errors.MalformedEvent` naming the field (no AWS call is made) and,
like an invocation SSM cannot show yet, ends in the function's on-failure destination after
Lambda's asynchronous retries.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from proxymx.config import settings
from proxymx.errors import MalformedEvent
from proxymx.launch.configure import Home
from proxymx.launch.outcome import check_outcome
from proxymx.models.ssm import parse_ssm_event

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process(event, context)


def process(event: dict[str, Any], context: LambdaContext | None = None) -> dict[str, Any]:
    try:
        parsed = parse_ssm_event(event)
        # An event from another account or region is forged or misrouted: its instance and
        # command ids mean nothing here (issue 9, finding 6).
        home = Home.of(context)
        foreign = home.foreign(parsed) if home is not None else None
        if foreign is not None:
            raise MalformedEvent(foreign)
    except MalformedEvent:
        # Counted so that an alarm can see a producer sending garbage; the event itself goes
        # to the on-failure destination with the message naming the field.
        metrics.add_metric(name="EventsRejected", unit=MetricUnit.Count, value=1)
        raise
    report = check_outcome(parsed, settings())
    for metric in report.metrics:
        metrics.add_metric(name=metric.name, unit=metric.unit, value=metric.value)
    return report.as_dict()
