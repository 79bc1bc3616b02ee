"""EnableProxyProtocol: CloudTrail ELB API call (via EventBridge) -> PROXY protocol on the load balancer.

Thin by design: Powertools decorators, parse at the edge, one call into the domain
(proxymx.loadbalancer.service). A malformed event raises MalformedEvent before any AWS call;
any other failure raises too, so the asynchronous invocation is retried and then lands in the
on-failure destination (the DLQ) with the reason.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from proxymx.config import settings
from proxymx.loadbalancer.service import emit_failure_metric, emit_metrics, enable_proxy_protocol
from proxymx.models.cloudtrail import parse_elb_event

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        parsed = parse_elb_event(event)
        result = enable_proxy_protocol(parsed, settings())
    except Exception:
        emit_failure_metric(metrics)
        logger.exception("EnableProxyProtocol failed")
        raise
    emit_metrics(result, metrics)
    logger.info("outcome %s: %s", result.outcome, result.reason, extra={"result": result.to_dict()})
    return result.to_dict()
