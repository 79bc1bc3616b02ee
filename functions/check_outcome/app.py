"""CheckOutcome: SSM invocation status-change event -> CompleteLifecycleAction (CONTINUE/ABANDON).

Thin by design, the shape of every proxymx handler: Powertools decorators, then
:func:`proxymx.handler.handle` (parse at the edge, ONE domain call into
:mod:`proxymx.launch.outcome`, the result's metrics). A malformed event counts ``EventsRejected``
and raises MalformedEvent naming the field (no AWS call is made), as does an event from another
account or region than the function's own; like an invocation SSM cannot
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
from proxymx.models.ssm import SsmStatusEvent, parse_ssm_event
from proxymx.scope import Home, from_home

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
    return process(event, settings, clients, context)


def process(
    event: dict[str, Any],
    settings: Settings | None = None,
    clients: Clients | None = None,
    context: LambdaContext | None = None,
) -> dict[str, Any]:
    home = Home.of(context)

    def parse(raw: Any) -> SsmStatusEvent:
        # An event from another account or region is rejected at the edge, like a malformed one:
        # its instance and command ids mean nothing here (issue 9, finding 6).
        return from_home(parse_ssm_event(raw), home)

    return handle(event, parse, check_outcome, metrics, settings=settings, clients=clients).to_dict()
