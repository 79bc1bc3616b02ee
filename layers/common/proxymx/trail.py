"""Is the load-balancer event path blind? (issue 10)

EventBridge receives ``AWS API Call via CloudTrail`` events only while a CloudTrail trail with
logging on covers the region (EventBridge user guide, "Events from AWS services"); without one,
EnableProxyProtocol's rules never fire and only the Reconcile sweep switches load balancers on.
Auto Scaling and SSM events need no trail. CloudTrail Lake event data stores do not feed
EventBridge, so only trails count.

The check: ``DescribeTrails(includeShadowTrails=True)`` lists every trail that applies to this
region (its own, multi-region trails homed elsewhere, organization trails), then
``GetTrailStatus`` by ARN until one is logging. A trail whose status cannot be read (an
organization trail seen from a member account) is assumed to log: only its owner can stop it,
and a false "blind" alarm is worse than none.
"""

from __future__ import annotations

from typing import Any

from proxymx.errors import aws_errors, error_code, translate
from proxymx.frozen import frozen


@frozen
class EventPathCheck:
    blind: bool
    reason: str


# Any: the project pins no mypy-boto3-cloudtrail stubs for two read calls.
def check_event_path(cloudtrail: Any) -> EventPathCheck:
    """Whether a logging trail covers this region (so the ELB rules can fire)."""
    try:
        trails = cloudtrail.describe_trails(includeShadowTrails=True).get("trailList", [])
    except aws_errors() as exc:
        raise translate(exc, "DescribeTrails") from exc
    unreadable: list[str] = []
    for trail in trails:
        name = trail.get("TrailARN") or trail.get("Name") or "?"
        try:
            status = cloudtrail.get_trail_status(Name=name)
        except aws_errors() as exc:
            unreadable.append(f"{name} ({error_code(exc)})")
            continue
        if status.get("IsLogging"):
            return EventPathCheck(False, f"trail {name} is logging")
    if unreadable:
        return EventPathCheck(False, f"status unreadable, assumed logging: {', '.join(unreadable)}")
    return EventPathCheck(
        True,
        "no CloudTrail trail is logging in this region: EventBridge gets no load balancer API "
        "calls, only the sweep switches load balancers on (README, Deploy: CreateTrail)",
    )
