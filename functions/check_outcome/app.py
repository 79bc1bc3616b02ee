"""CheckOutcome: SSM invocation status-change event -> CompleteLifecycleAction (CONTINUE/ABANDON).

Thin by design, the shape of every proxymx handler: Powertools decorators, then
:func:`proxymx.handler.handle` (parse at the edge, ONE domain call into
:mod:`proxymx.launch.outcome`, the result's metrics). A malformed event counts ``EventsRejected``
and raises MalformedEvent naming the field (no AWS call is made); like an invocation SSM cannot
show yet, it ends in the function's on-failure destination after Lambda's asynchronous retries.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from proxymx.aws import Clients
from proxymx.config import Settings
from proxymx.handler import handle
from proxymx.launch.outcome import check_outcome
from proxymx.models.ssm import parse_ssm_event

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
        event, parse_ssm_event, check_outcome, metrics, settings=settings, clients=clients
    ).to_dict()
