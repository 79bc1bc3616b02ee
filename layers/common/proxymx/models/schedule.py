"""The ``Scheduled Event`` an EventBridge schedule (``Type: Schedule`` in template.yaml) sends.

It carries nothing the sweep needs beyond its id (the log's correlation id); it is validated
at the edge anyway, so that an event of another shape sent to Reconcile by mistake is rejected
with one message naming the field instead of starting a sweep.
"""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import Field, ValidationError

from proxymx.models.lifecycle import malformed

SCHEDULED_SOURCE = "aws.events"
SCHEDULED_DETAIL_TYPE = "Scheduled Event"


class ScheduledEvent(EventBridgeModel):
    """``source: aws.events``, ``detail-type: Scheduled Event``, ``detail: {}``; ``resources``
    names the rule."""

    # `sam local generate-event cloudwatch scheduled-event` has no version (issue 10); the sweep
    # needs nothing from it, so its absence is no reason to refuse a sweep.
    version: str = "0"
    source: Literal["aws.events"]
    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")
    detail: dict[str, Any]


def parse_scheduled_event(event: Any) -> ScheduledEvent:
    try:
        return ScheduledEvent.model_validate(event)
    except ValidationError as exc:
        raise malformed(exc, "scheduled event") from exc
