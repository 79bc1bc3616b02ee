"""ConfigureInstance: SQS batch of launch lifecycle events -> SendCommand (our Postfix document).

Thin by design, the shape of every proxymx handler: Powertools decorators, then
:func:`proxymx.handler.handle` (parse the batch at the edge, ONE domain call into
:mod:`proxymx.launch.configure`, the report's metrics). The records that must come back (agent
not Online yet, AWS error, malformed body) are reported as partial batch failures; SQS redelivers
them after the visibility timeout, and after the queue's maxReceiveCount they land in the DLQ.
A batch of nothing but malformed records counts ``EventsRejected`` and raises MalformedEvent (for
SQS the effect is the same as reporting every record: they all come back, then go to the DLQ).

The SQS answer is built by :func:`proxymx.handler.partial_batch_response` in a few lines rather
than by Powertools' Batch utility: measured the Lambda way (``make bench``: python3.13 -B,
bytecode shipped), importing the utility alone cost ~60 ms of CPU at every cold start, for a loop
over the records.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext
from proxymx.aws import Clients
from proxymx.config import Settings
from proxymx.handler import SQS_CORRELATION_ID, handle, partial_batch_response
from proxymx.launch.configure import LaunchBatchReport, configure_batch
from proxymx.models.lifecycle import LaunchQueueBatch, parse_launch_batch
from proxymx.scope import Home

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path=SQS_CORRELATION_ID, clear_state=True)
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

    def configure(batch: LaunchQueueBatch, settings: Settings, clients: Clients) -> LaunchBatchReport:
        # A record from another account or region is rejected alone (issue 9, finding 6).
        return configure_batch(batch, settings, clients, home=home)

    report = handle(event, parse_launch_batch, configure, metrics, settings=settings, clients=clients)
    return partial_batch_response(event, report, context)
