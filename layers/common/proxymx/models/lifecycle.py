"""The Auto Scaling ``EC2 Instance-launch Lifecycle Action`` event, and the SQS record that carries it.

EventBridge delivers the lifecycle event to the launch queue; the queue's message body is the
EventBridge event itself. Every field the launch flow needs is validated here, so a bad event
fails with one :class:`~proxymx.errors.MalformedEvent` naming the field, before any AWS call.

Warm pools (``Origin``/``Destination``): a launch into the warm pool is ``EC2 -> WarmPool``,
a pooled instance entering service is ``WarmPool -> AutoScalingGroup``, a plain launch is
``EC2 -> AutoScalingGroup``. Events from before warm pools existed carry neither field.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal, cast

from proxymx.errors import MalformedEvent
from proxymx.models.envelope import EventBridgeEvent, malformed
from proxymx.models.reader import SHORT_MAX, Invalid, Obj
from proxymx.models.record import Record

LAUNCH_DETAIL_TYPE = "EC2 Instance-launch Lifecycle Action"
LAUNCH_TRANSITION = "autoscaling:EC2_INSTANCE_LAUNCHING"

Origin = Literal["EC2", "WarmPool"]
Destination = Literal["AutoScalingGroup", "WarmPool"]
ORIGINS: Final = ("EC2", "WarmPool")
DESTINATIONS: Final = ("AutoScalingGroup", "WarmPool")

# Auto Scaling API reference: LifecycleActionToken is a UUID (36), group and hook names 1-255,
# NotificationMetadata 1-1023; hook names are [A-Za-z0-9\-_\/]+.
TOKEN_MAX: Final = 36
NAME_MAX: Final = 255
_HOOK_NAME = re.compile(r"[A-Za-z0-9_/-]{1,255}")
INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,17}")
# SQS: a message (its body) is at most 256 KiB; its id is at most 100 characters.
BODY_MAX: Final = 262144
MESSAGE_ID_MAX: Final = 100


class LifecycleLaunchDetail(Record):
    token: str
    group_name: str
    hook_name: str
    instance_id: str
    transition: str
    notification_metadata: str | None = None
    origin: Origin = "EC2"
    destination: Destination = "AutoScalingGroup"

    @classmethod
    def read(cls, o: Obj) -> LifecycleLaunchDetail:
        origin = cast(Origin, o.choice("Origin", ORIGINS, default="EC2"))
        destination = cast(Destination, o.choice("Destination", DESTINATIONS, default="AutoScalingGroup"))
        return cls(
            token=o.text("LifecycleActionToken", max_len=TOKEN_MAX),
            group_name=o.text("AutoScalingGroupName", max_len=NAME_MAX),
            hook_name=o.text("LifecycleHookName", max_len=NAME_MAX, pattern=_HOOK_NAME),
            instance_id=o.text("EC2InstanceId", max_len=19, pattern=INSTANCE_ID),
            transition=o.const("LifecycleTransition", LAUNCH_TRANSITION),
            notification_metadata=o.opt_text("NotificationMetadata", max_len=1023),
            origin=origin,
            destination=destination,
        )


class LifecycleLaunchEvent(EventBridgeEvent):
    """``source: aws.autoscaling``, ``detail-type: EC2 Instance-launch Lifecycle Action``."""

    detail: LifecycleLaunchDetail

    SOURCE: ClassVar[str] = "aws.autoscaling"
    DETAIL_TYPE: ClassVar[str] = LAUNCH_DETAIL_TYPE

    @property
    def instance_id(self) -> str:
        return self.detail.instance_id

    @property
    def into_warm_pool(self) -> bool:
        return self.detail.destination == "WarmPool"


def parse_lifecycle_event(event: Any) -> LifecycleLaunchEvent:
    if isinstance(event, str | bytes):
        try:
            event = json.loads(event)
        except json.JSONDecodeError as exc:
            raise MalformedEvent(f"malformed lifecycle event: not JSON ({exc.msg})") from exc
        except UnicodeDecodeError as exc:
            raise MalformedEvent(f"malformed lifecycle event: not JSON ({exc.reason})") from exc
    try:
        root = Obj(event)
        envelope = LifecycleLaunchEvent.envelope(root)
        return LifecycleLaunchEvent(**envelope, detail=LifecycleLaunchDetail.read(root.obj("detail")))
    except Invalid as exc:
        raise malformed(exc, "lifecycle event") from exc


class LaunchQueueRecord(Record):
    """One SQS record of the launch queue; the body is parsed separately (one bad record must not
    sink its batch)."""

    message_id: str
    body: str
    attributes: dict[str, str]
    event_source: str = "aws:sqs"

    @classmethod
    def read(cls, o: Obj) -> LaunchQueueRecord:
        source = o.raw("eventSource")
        return cls(
            message_id=o.text("messageId", max_len=MESSAGE_ID_MAX),
            body=o.text("body", max_len=BODY_MAX, min_len=0),
            attributes=o.text_map("attributes", max_len=SHORT_MAX, max_items=64),
            event_source="aws:sqs" if source is None else o.const("eventSource", "aws:sqs"),
        )

    @property
    def receive_count(self) -> int:
        raw = self.attributes.get("ApproximateReceiveCount", "1")
        return int(raw) if raw.isascii() and raw.isdigit() else 1

    @property
    def sent_at(self) -> datetime | None:
        raw = self.attributes.get("SentTimestamp")
        if raw is None or not (raw.isascii() and raw.isdigit()) or len(raw) > 15:
            return None
        return datetime.fromtimestamp(int(raw) / 1000, tz=UTC)

    def launch(self) -> LifecycleLaunchEvent:
        return parse_lifecycle_event(self.body)


class LaunchQueueBatch(Record):
    records: list[LaunchQueueRecord]

    @classmethod
    def read(cls, o: Obj) -> LaunchQueueBatch:
        # Lambda hands at most 10,000 records to one invocation (SQS event source BatchSize).
        records = o.objs("Records", max_items=10000, required=True)
        return cls(records=[LaunchQueueRecord.read(r) for r in records])


def parse_launch_batch(event: Any) -> LaunchQueueBatch:
    try:
        return LaunchQueueBatch.read(Obj(event))
    except Invalid as exc:
        raise malformed(exc, "SQS batch") from exc
