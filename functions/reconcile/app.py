"""Reconcile: EventBridge schedule -> the sweep that finds what the events missed (DESIGN flow 3).

Thin by design, the shape of every proxymx handler: Powertools decorators, then
:func:`proxymx.handler.handle` (parse the ``Scheduled Event`` at the edge, ONE domain call into
:mod:`proxymx.reconcile`, the summary's metrics). The sweep fails the invocation if any load
balancer or instance failed, after the whole sweep and its metrics (one bad load balancer never
stops the others; the errors alarm fires and the summary log line says which).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from proxymx.aws import Clients
from proxymx.config import Settings
from proxymx.handler import handle
from proxymx.models.schedule import parse_scheduled_event
from proxymx.reconcile import reconcile

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, clear_state=True)
@metrics.log_metrics
def lambda_handler(
    event: dict[str, Any],
    context: LambdaContext,
    settings: Settings | None = None,
    clients: Clients | None = None,
) -> dict[str, Any]:
    return process(event, settings, clients)


def process(
    event: dict[str, Any], settings: Settings | None = None, clients: Clients | None = None
) -> dict[str, Any]:
    return handle(
        event, parse_scheduled_event, reconcile, metrics, settings=settings, clients=clients
    ).to_dict()
