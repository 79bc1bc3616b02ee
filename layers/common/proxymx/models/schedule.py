"""The ``Scheduled Event`` an EventBridge schedule (``Type: Schedule`` in template.yaml) sends.

It carries nothing the sweep needs beyond its id (the log's correlation id); it is validated
at the edge anyway, so that an event of another shape sent to Reconcile by mistake is rejected
with one message naming the field instead of starting a sweep.

``version`` may be absent: EventBridge always sends ``"0"``, but the SAM CLI's
``sam local generate-event cloudwatch scheduled-event`` omits it, and a sweep's trigger is
no reason to refuse a user's first ``sam local invoke``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from proxymx.models.envelope import EventBridgeEvent, malformed
from proxymx.models.reader import Invalid, Obj

SCHEDULED_SOURCE = "aws.events"
SCHEDULED_DETAIL_TYPE = "Scheduled Event"
# What EventBridge itself puts in every event's version.
EVENTBRIDGE_VERSION = "0"


class ScheduledEvent(EventBridgeEvent):
    """``source: aws.events``, ``detail-type: Scheduled Event``, ``detail: {}``; ``resources``
    names the rule."""

    detail: dict[str, Any]

    SOURCE: ClassVar[str] = SCHEDULED_SOURCE
    DETAIL_TYPE: ClassVar[str] = SCHEDULED_DETAIL_TYPE


def parse_scheduled_event(event: Any) -> ScheduledEvent:
    try:
        root = Obj(event)
        envelope = ScheduledEvent.envelope(root, version_default=EVENTBRIDGE_VERSION)
        return ScheduledEvent(**envelope, detail=root.obj("detail").fields())
    except Invalid as exc:
        raise malformed(exc, "scheduled event") from exc
