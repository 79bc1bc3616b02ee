"""Reconcile: EventBridge schedule -> the sweep that finds what the events missed (DESIGN flow 3).

Thin on purpose: parse the ``Scheduled Event`` at the edge, one call into
:mod:`proxymx.reconcile`, emit the summary's metrics, then fail the invocation if any load
balancer or instance failed (after the whole sweep, so one bad load balancer never stops the
others; the errors alarm fires and the summary log line says which).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from proxymx.config import settings
from proxymx.models.schedule import parse_scheduled_event
from proxymx.reconcile import reconcile

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process(event)


def process(event: dict[str, Any]) -> dict[str, Any]:
    try:
        parse_scheduled_event(event)
        summary = reconcile(settings())
    except Exception:
        # Not a sweep that ran and failed somewhere (that is raise_if_failed, below): no summary.
        metrics.add_metric(name="ReconcileFailures", unit=MetricUnit.Count, value=1)
        logger.exception("Reconcile failed before its summary")
        raise
    for metric in summary.metrics():
        metrics.add_metric(name=metric.name, unit=metric.unit, value=metric.value)
    summary.raise_if_failed()
    return summary.as_dict()
