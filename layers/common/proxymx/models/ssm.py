"""SSM Run Command status-change events (EventBridge, ``source: aws.ssm``).

CheckOutcome acts on ``EC2 Command Invocation Status-change Notification`` (one per instance).
The command-level ``EC2 Command Status-change Notification`` is recognised so that it can be
ignored cleanly (the rule pattern already excludes it; the code does not trust that alone).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, ClassVar, Final

from proxymx.errors import MalformedEvent
from proxymx.models.envelope import EventBridgeEvent, malformed
from proxymx.models.reader import ARN_MAX, Invalid, Obj, show
from proxymx.models.record import Record

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

# SSM API reference: a CommandId is 36 characters; a managed instance is mi-, an EC2 one i-.
COMMAND_ID_LENGTH: Final = 36
_TARGET_ID = re.compile(r"(i|mi)-[0-9a-f]{8,17}")
STATUS_MAX: Final = 64


class InvocationStatusDetail(Record):
    command_id: str
    document_name: str
    instance_id: str
    requested_date_time: datetime | None = None
    status: str

    @classmethod
    def read(cls, o: Obj) -> InvocationStatusDetail:
        return cls(
            command_id=o.text("command-id", min_len=COMMAND_ID_LENGTH, max_len=COMMAND_ID_LENGTH),
            # A name (3-128 characters) or, for a shared document, its ARN.
            document_name=o.text("document-name", max_len=ARN_MAX),
            instance_id=o.text("instance-id", max_len=20, pattern=_TARGET_ID),
            requested_date_time=o.opt_time("requested-date-time"),
            status=o.text("status", max_len=STATUS_MAX),
        )


class InvocationStatusChange(EventBridgeEvent):
    detail: InvocationStatusDetail

    SOURCE: ClassVar[str] = "aws.ssm"
    DETAIL_TYPE: ClassVar[str] = INVOCATION_DETAIL_TYPE

    @property
    def is_terminal(self) -> bool:
        return self.detail.status in TERMINAL_STATUSES


class CommandStatusDetail(Record):
    command_id: str
    document_name: str
    status: str

    @classmethod
    def read(cls, o: Obj) -> CommandStatusDetail:
        return cls(
            command_id=o.text("command-id", max_len=COMMAND_ID_LENGTH),
            document_name=o.text("document-name", max_len=ARN_MAX),
            status=o.text("status", max_len=STATUS_MAX),
        )


class CommandStatusChange(EventBridgeEvent):
    detail: CommandStatusDetail

    SOURCE: ClassVar[str] = "aws.ssm"
    DETAIL_TYPE: ClassVar[str] = COMMAND_DETAIL_TYPE


SsmStatusEvent = InvocationStatusChange | CommandStatusChange


def parse_ssm_event(event: Any) -> SsmStatusEvent:
    """The status-change event, or :class:`MalformedEvent` naming the bad field."""
    if not isinstance(event, dict):
        raise MalformedEvent("malformed SSM event: (event): not a JSON object")
    detail_type = event.get("detail-type")
    try:
        root = Obj(event)
        if detail_type == INVOCATION_DETAIL_TYPE:
            envelope = InvocationStatusChange.envelope(root)
            return InvocationStatusChange(**envelope, detail=InvocationStatusDetail.read(root.obj("detail")))
        if detail_type == COMMAND_DETAIL_TYPE:
            envelope = CommandStatusChange.envelope(root)
            return CommandStatusChange(**envelope, detail=CommandStatusDetail.read(root.obj("detail")))
    except Invalid as exc:
        raise malformed(exc, "SSM event") from exc
    raise MalformedEvent(
        f"malformed SSM event: detail-type: expected {INVOCATION_DETAIL_TYPE!r} or "
        f"{COMMAND_DETAIL_TYPE!r}, got {show(detail_type)}"
    )
