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
from datetime import UTC, datetime
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from proxymx.errors import MalformedEvent

LAUNCH_DETAIL_TYPE = "EC2 Instance-launch Lifecycle Action"
LAUNCH_TRANSITION = "autoscaling:EC2_INSTANCE_LAUNCHING"

Origin = Literal["EC2", "WarmPool"]
Destination = Literal["AutoScalingGroup", "WarmPool"]


def malformed(exc: ValidationError, what: str) -> MalformedEvent:
    """One clear message naming the first bad field (``detail.EC2InstanceId: ...``)."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(event)"
    return MalformedEvent(f"malformed {what}: {field}: {first['msg']}")


class LifecycleLaunchDetail(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="allow")

    token: str = Field(alias="LifecycleActionToken", min_length=1, max_length=36)
    group_name: str = Field(alias="AutoScalingGroupName", min_length=1, max_length=255)
    hook_name: str = Field(alias="LifecycleHookName", min_length=1, max_length=255)
    instance_id: str = Field(alias="EC2InstanceId", pattern=r"^i-[0-9a-f]{8,17}$")
    transition: Literal["autoscaling:EC2_INSTANCE_LAUNCHING"] = Field(alias="LifecycleTransition")
    notification_metadata: str | None = Field(default=None, alias="NotificationMetadata")
    origin: Origin = Field(default="EC2", alias="Origin")
    destination: Destination = Field(default="AutoScalingGroup", alias="Destination")


class LifecycleLaunchEvent(EventBridgeModel):
    """``source: aws.autoscaling``, ``detail-type: EC2 Instance-launch Lifecycle Action``."""

    source: Literal["aws.autoscaling"]
    detail_type: Literal["EC2 Instance-launch Lifecycle Action"] = Field(alias="detail-type")
    detail: LifecycleLaunchDetail

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
    try:
        return LifecycleLaunchEvent.model_validate(event)
    except ValidationError as exc:
        raise malformed(exc, "lifecycle event") from exc


class LaunchQueueRecord(BaseModel):
    """One SQS record of the launch queue; the body is parsed separately (one bad record must not
    sink its batch)."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="allow")

    message_id: str = Field(alias="messageId", min_length=1)
    body: str
    attributes: dict[str, str] = Field(default_factory=dict)
    event_source: Literal["aws:sqs"] = Field(default="aws:sqs", alias="eventSource")

    @property
    def receive_count(self) -> int:
        try:
            return int(self.attributes.get("ApproximateReceiveCount", "1"))
        except ValueError:
            return 1

    @property
    def sent_at(self) -> datetime | None:
        raw = self.attributes.get("SentTimestamp")
        if raw is None or not raw.isdigit():
            return None
        return datetime.fromtimestamp(int(raw) / 1000, tz=UTC)

    def launch(self) -> LifecycleLaunchEvent:
        return parse_lifecycle_event(self.body)


class LaunchQueueBatch(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="allow")

    records: list[LaunchQueueRecord] = Field(alias="Records")


def parse_launch_batch(event: Any) -> LaunchQueueBatch:
    try:
        return LaunchQueueBatch.model_validate(event)
    except ValidationError as exc:
        raise malformed(exc, "SQS batch") from exc
