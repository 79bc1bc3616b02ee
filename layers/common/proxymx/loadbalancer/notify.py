"""Tell the operator that a unit is blocked (SNS, when NotificationTopicArn is set).

Only the event path notifies: the sweep finds the same blocked unit every 5 minutes, and a
notice per sweep is spam. "At most once per unit per state change" for the sweep needs the
state table's ``NOTICE#<unit>`` item (the cutover work, docs/agreement.md); until then the sweep's
blocked units reach the operator through the LoadBalancersBlocked alarm.
"""

from __future__ import annotations

from proxymx.launch.sns import Notifications
from proxymx.loadbalancer.plan import Blocked


class SnsBlockedNotifier:
    def __init__(self, topic_arn: str, notifications: Notifications) -> None:
        self.topic_arn = topic_arn
        self.notifications = notifications

    def blocked(self, blocked: list[Blocked], *, sweep: bool) -> None:
        if sweep:
            return
        for unit in blocked:
            outside = unit.outside_fleet
            action = (
                f"{len(outside)} target(s) are outside the fleet (tag proxymx:fleet): proxymx never "
                "touches them; configure them, tag them ready, or deregister them."
                if outside
                else "Every unready target is in the fleet: run the document on them (Mode=configure) "
                "or let the cutover do it."
            )
            self.notifications.publish_failure(
                self.topic_arn,
                f"proxymx: PROXY protocol blocked on {unit.unit}"[:100],
                f"{unit.describe()}\n\nThe header stays off (no mail bounced). {action}",
            )
