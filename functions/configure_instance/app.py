"""ConfigureInstance: SQS batch of launch lifecycle events -> SendCommand (our Postfix document).

Thin on purpose: parse at the edge, one call into :mod:`proxymx.launch.configure`, then Powertools
reports the records that must come back (agent not Online yet, AWS error, malformed body) as
partial batch failures; SQS redelivers them after the visibility timeout, and after the
queue's maxReceiveCount they land in the DLQ.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext
from proxymx.config import settings
from proxymx.launch.configure import Home, configure_launches
from proxymx.models.lifecycle import parse_launch_batch

logger = Logger()
metrics = Metrics()
# A batch where every record fails is normal here (every agent still booting): report them
# all as item failures instead of raising.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process(event, context)


def process(event: dict[str, Any], context: LambdaContext | None = None) -> dict[str, Any]:
    report = configure_launches(parse_launch_batch(event), settings(), home=Home.of(context))
    for metric in report.metrics():
        metrics.add_metric(name=metric.name, unit=metric.unit, value=metric.value)
    # A batch of nothing but malformed records is rejected loudly (for SQS the effect is the same
    # as reporting every record: they all come back, then go to the DLQ).
    report.raise_if_all_rejected()
    response: dict[str, Any] = dict(
        process_partial_response(
            event=event, record_handler=report.settle, processor=processor, context=context
        )
    )
    return response
