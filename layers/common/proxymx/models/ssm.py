"""SSM Run Command status-change events (EventBridge, ``source: aws.ssm``).

CheckOutcome acts on ``EC2 Command Invocation Status-change Notification`` (one per instance).
The command-level ``EC2 Command Status-change Notification`` is recognised so that it can be
ignored cleanly (the rule pattern already excludes it; the code does not trust that alone).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from proxymx.errors import MalformedEvent
from proxymx.models.lifecycle import malformed

INVOCATION_DETAIL_TYPE = "EC2 Command Invocation Status-change Notification"
COMMAND_DETAIL_TYPE = "EC2 Command Status-change Notification"

# Terminal invocation statuses (SSM "Understanding command statuses"). Anything else
# (Pending, InProgress, Delayed, Cancelling) means the verdict is still to come.
TERMINAL_STATUSES = frozenset(
    {
        "Success",
        "Failed",
        "TimedOut",
        "Cancelled",
        "Undeliverable",
        "Terminated",
        "DeliveryTimedOut",
        "ExecutionTimedOut",
    }
)
TIMED_OUT_STATUSES = frozenset({"TimedOut", "DeliveryTimedOut", "ExecutionTimedOut"})


class InvocationStatusDetail(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="allow")

    command_id: str = Field(alias="command-id", min_length=36, max_length=36)
    document_name: str = Field(alias="document-name", min_length=1)
    instance_id: str = Field(alias="instance-id", pattern=r"^(i|mi)-[0-9a-f]{8,17}$")
    requested_date_time: datetime | None = Field(default=None, alias="requested-date-time")
    status: str = Field(min_length=1)


class InvocationStatusChange(EventBridgeModel):
    source: Literal["aws.ssm"]
    detail_type: Literal["EC2 Command Invocation Status-change Notification"] = Field(alias="detail-type")
    detail: InvocationStatusDetail

    @property
    def is_terminal(self) -> bool:
        return self.detail.status in TERMINAL_STATUSES


class CommandStatusDetail(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="allow")

    command_id: str = Field(alias="command-id", min_length=1)
    document_name: str = Field(alias="document-name", min_length=1)
    status: str = Field(min_length=1)


class CommandStatusChange(EventBridgeModel):
    source: Literal["aws.ssm"]
    detail_type: Literal["EC2 Command Status-change Notification"] = Field(alias="detail-type")
    detail: CommandStatusDetail


SsmStatusEvent = InvocationStatusChange | CommandStatusChange


def parse_ssm_event(event: Any) -> SsmStatusEvent:
    """The status-change event, or :class:`MalformedEvent` naming the bad field."""
    if not isinstance(event, dict):
        raise MalformedEvent("malformed SSM event: (event): not a JSON object")
    detail_type = event.get("detail-type")
    model: type[InvocationStatusChange] | type[CommandStatusChange]
    if detail_type == INVOCATION_DETAIL_TYPE:
        model = InvocationStatusChange
    elif detail_type == COMMAND_DETAIL_TYPE:
        model = CommandStatusChange
    else:
        raise MalformedEvent(
            f"malformed SSM event: detail-type: expected {INVOCATION_DETAIL_TYPE!r} or "
            f"{COMMAND_DETAIL_TYPE!r}, got {detail_type!r}"
        )
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        raise malformed(exc, "SSM event") from exc
