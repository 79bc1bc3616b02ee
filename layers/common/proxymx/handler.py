"""The plumbing the four handlers share, so that each ``app.py`` is decorators, parse, ONE call.

:func:`handle` takes the raw event through the same steps in every function:

1. settings and clients: the injected ones (tests, ``proxymx invoke``), else the process-wide
   ones (:func:`proxymx.config.settings`, :func:`proxymx.aws.default_clients`);
2. parse at the edge: a malformed event counts ``EventsRejected`` and raises
   :class:`~proxymx.errors.MalformedEvent` (naming the field) before any AWS call;
3. the domain call; anything unexpected counts ``Failures``, is logged with its traceback and
   raised (Lambda retries, then the on-failure destination or the DLQ gets the event);
4. the result's metrics (:meth:`FlowResult.metrics`) go to Powertools Metrics; a
   :class:`~proxymx.results.FailedResult` (a sweep that ran to its end with failures) emits
   its result's metrics before it is raised; a ``rejected`` result (every record of a batch
   malformed) counts ``EventsRejected`` and raises MalformedEvent.

The SQS partial batch response is behind :func:`partial_batch_response` alone (Powertools' Batch
utility today), so that it can be swapped without touching the handler.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from aws_lambda_powertools import Logger

from proxymx.aws import Clients, default_clients
from proxymx.config import Settings
from proxymx.config import settings as process_settings
from proxymx.errors import MalformedEvent
from proxymx.results import FailedResult, FlowResult

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(child=True)

# Powertools has no built-in SQS path: the batch's message ids, which name its records in the
# batch item failures, in the logs of each record and in the DLQ.
SQS_CORRELATION_ID = "Records[*].messageId"

Parsed = TypeVar("Parsed")
Result = TypeVar("Result", bound=FlowResult)


class MetricsSink(Protocol):
    """What :func:`handle` needs of Powertools ``Metrics``."""

    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


def _count(metrics: MetricsSink, name: str) -> None:
    metrics.add_metric(name=name, unit="Count", value=1)


def emit(result: FlowResult, metrics: MetricsSink) -> None:
    for metric in result.metrics():
        metrics.add_metric(name=metric.name, unit=metric.unit, value=metric.value)


def handle(
    event: Any,
    parse: Callable[[Any], Parsed],
    decide: Callable[[Parsed, Settings, Clients], Result],
    metrics: MetricsSink,
    *,
    settings: Settings | None = None,
    clients: Clients | None = None,
) -> Result:
    """Parse ``event``, run the domain call ``decide``, emit the result's metrics; the result."""
    try:
        parsed = parse(event)
    except MalformedEvent:
        _count(metrics, "EventsRejected")
        raise
    try:
        result = decide(parsed, settings or process_settings(), clients or default_clients())
    except FailedResult as failed:
        emit(failed.result, metrics)
        raise
    except Exception:
        _count(metrics, "Failures")
        logger.exception("the invocation failed")
        raise
    emit(result, metrics)
    if result.outcome == "rejected":
        _count(metrics, "EventsRejected")
        raise MalformedEvent(result.reason)
    return result


class SettlesRecords(Protocol):
    """A batch result that says, per SQS record, whether it must come back."""

    def settle(self, record: Any) -> Any: ...


def partial_batch_response(
    event: Mapping[str, Any], result: SettlesRecords, context: LambdaContext | None = None
) -> dict[str, Any]:
    """The SQS answer ``{"batchItemFailures": [...]}``: the records that must come back (SQS
    redelivers them after the visibility timeout; after maxReceiveCount they go to the DLQ)."""
    # Built here rather than by Powertools' Batch utility: importing it costs ~60 ms of CPU at
    # every cold start (make bench, measured the Lambda way) for this loop. A batch where every
    # record fails is normal (every agent still booting): all are item failures, nothing raises.
    # In the records' order, as SQS gave them.
    failures: list[dict[str, str]] = []
    for record in event.get("Records", []):
        try:
            result.settle(record)
        except Exception:
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
