"""EnableProxyProtocol: CloudTrail ELB API call, or Auto Scaling attach call (via EventBridge) ->
PROXY protocol on the load balancer, agreement with the targets behind it.

Thin by design, the shape of every proxymx handler: Powertools decorators, then
:func:`proxymx.handler.handle` (parse at the edge, ONE domain call into
:mod:`proxymx.loadbalancer.service`, the result's metrics). A malformed event counts
``EventsRejected`` and raises MalformedEvent before any AWS call; any other failure counts
``Failures`` and raises too, so the asynchronous invocation is retried and then lands in the
on-failure destination (the DLQ) with the reason.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from proxymx.aws import Clients
from proxymx.config import Settings
from proxymx.handler import handle
from proxymx.loadbalancer.service import enable_proxy_protocol
from proxymx.models.attach import parse_load_balancer_event

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
        event, parse_load_balancer_event, enable_proxy_protocol, metrics, settings=settings, clients=clients
    ).to_dict()
