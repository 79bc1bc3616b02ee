"""The EventBridge envelope every event of proxymx arrives in (what Powertools' ``EventBridgeModel``
validated before, without pydantic).

Each event class names its ``SOURCE`` and ``DETAIL_TYPE``; those two are checked first, so that
an event of another kind is rejected by what it is, not by some field it lacks.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, ClassVar

from proxymx.errors import MalformedEvent
from proxymx.models.reader import ARN_MAX, SHORT_MAX, Invalid, Obj
from proxymx.models.record import Record

_ACCOUNT = re.compile(r"[0-9]{12}")
_REGION = re.compile(r"[a-z0-9-]{1,32}")
# EventBridge puts at most a few ARNs in resources; PutEvents allows at most 10 per entry, AWS
# services a few more (an Auto Scaling group, its instances).
RESOURCES_MAX = 100


def malformed(exc: Invalid, what: str) -> MalformedEvent:
    """One clear message naming the bad field (``malformed lifecycle event: detail.EC2InstanceId: ...``)."""
    return MalformedEvent(f"malformed {what}: {exc}")


class EventBridgeEvent(Record):
    version: str
    id: str
    source: str
    account: str
    time: datetime
    region: str
    resources: list[str]
    detail_type: str
    replay_name: str | None = None

    SOURCE: ClassVar[str]
    DETAIL_TYPE: ClassVar[str]

    @classmethod
    def envelope(cls, o: Obj, *, version_default: str | None = None) -> dict[str, Any]:
        """The envelope's fields, checked (``version_default``: for producers that omit it)."""
        source = o.const("source", cls.SOURCE)
        detail_type = o.const("detail-type", cls.DETAIL_TYPE)
        absent = version_default is not None and o.raw("version") is None
        return {
            "version": version_default if absent else o.text("version", max_len=16),
            "id": o.text("id", max_len=SHORT_MAX),
            "source": source,
            "account": o.text("account", max_len=12, pattern=_ACCOUNT),
            "time": o.time("time"),
            "region": o.text("region", max_len=32, pattern=_REGION),
            "resources": o.texts("resources", max_len=ARN_MAX, max_items=RESOURCES_MAX, required=True),
            "detail_type": detail_type,
            "replay_name": o.opt_text("replay-name", max_len=SHORT_MAX),
        }
