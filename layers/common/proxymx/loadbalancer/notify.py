"""Tell the operator (SNS, when NotificationTopicArn is set): a unit blocked, a unit whose repairs
are suspended (flapping), targets registered unready behind a header, an NLB header placement
that hangs SMTP (broken) and that AWS refused to repair.

**At most once per unit per state change** (issue 7.5): the sweep finds the same blocked unit
every 5 minutes, and a notice per sweep is spam. The StateTable item ``NOTICE#<unit key>``
remembers the state last notified; a notice is published only when one conditional put wins
(no item, an expired one, or another state), so concurrent events and sweeps notify once. The
item is cleared when proxymx switches the unit (the problem is over: a later one is news), and
it expires after :data:`NOTICE_TTL_SECONDS` (a week: a problem nobody fixed is told again). A
state is the kind of notice and what it names (``blocked`` + the unready targets), so a
different set of unready targets is a new state. A publish that fails gives the item back, so
the next event or sweep tries again.

Without a StateTable (local runs) only the event path notifies, as before the table existed;
the alarms carry the sweep's findings.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable

from proxymx.controls import Flapping
from proxymx.launch.sns import Notifications
from proxymx.loadbalancer.plan import Blocked
from proxymx.state import StateTable

NOTICE_TTL_SECONDS = 7 * 24 * 3600


def notice_key(unit: str) -> str:
    return f"NOTICE#{unit}"


def state_of(kind: str, names: Iterable[str]) -> str:
    """A notice's state: its kind and a short digest of what it names (order-free)."""
    digest = hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:16]
    return f"{kind}:{digest}"


class NoticeLedger:
    """``NOTICE#<unit>`` items: the state last notified per unit."""

    def __init__(self, table: StateTable, clock: Callable[[], float] = time.time) -> None:
        self.table = table
        self.clock = clock

    def first(self, unit: str, state: str) -> bool:
        """True for exactly one caller per unit and state (the one that must publish)."""
        now = int(self.clock())
        written = self.table.put_if_absent(
            notice_key(unit),
            {"unit": unit, "state": state, "at": now},
            now=now,
            expires_at=now + NOTICE_TTL_SECONDS,
            or_if="#state <> :state",
            names={"#state": "state"},
            bindings={":state": state},
        )
        return written.won

    def give_back(self, unit: str, state: str) -> None:
        """Undo :meth:`first` (the publish failed): the next caller tries again."""
        self.table.delete(
            notice_key(unit),
            condition="#state = :state",
            names={"#state": "state"},
            bindings={":state": state},
        )

    def clear(self, unit: str) -> None:
        """The unit is switched: whatever was notified is over."""
        self.table.delete(notice_key(unit), condition="attribute_exists(pk)")


class SnsBlockedNotifier:
    def __init__(
        self, topic_arn: str, notifications: Notifications, ledger: NoticeLedger | None = None
    ) -> None:
        self.topic_arn = topic_arn
        self.notifications = notifications
        self.ledger = ledger

    def _publish(self, unit: str, state: str, subject: str, message: str, *, sweep: bool = False) -> None:
        if self.ledger is None:
            if sweep:
                return
            self.notifications.publish_failure(self.topic_arn, subject[:100], message)
            return
        if not self.ledger.first(unit, state):
            return
        try:
            self.notifications.publish_failure(self.topic_arn, subject[:100], message)
        except Exception:
            self.ledger.give_back(unit, state)
            raise

    def blocked(self, blocked: list[Blocked], *, sweep: bool) -> None:
        for unit in blocked:
            outside = unit.outside_fleet
            action = (
                f"{len(outside)} target(s) are outside the fleet (tag proxymx:fleet): proxymx never "
                "touches them; configure them, tag them ready, or deregister them."
                if outside
                else "Every unready target is in the fleet: run the document on them (Mode=configure) "
                "or let the cutover do it."
            )
            self._publish(
                unit.unit,
                state_of("blocked", (f"{u.target_id} {u.why}" for u in unit.unready)),
                f"proxymx: PROXY protocol blocked on {unit.unit}",
                f"{unit.describe()}\n\nThe header stays off (no mail bounced). {action}",
                sweep=sweep,
            )

    def flapping(self, flapping: list[Flapping]) -> None:
        for flap in flapping:
            self._publish(
                flap.unit,
                state_of("suspended", [flap.actor, str(flap.until)]),
                f"proxymx: repairs suspended on {flap.unit} (flapping)",
                f"{flap.describe()}\n\nActor: {flap.actor}\nThe PROXY setting stays as that actor left it: "
                "make the tool and proxymx agree (or opt the unit out).",
            )

    def unready(self, unit: str, described: list[str], *, sweep: bool) -> None:
        self._publish(
            unit,
            state_of("unready", described),
            f"proxymx: unready targets behind the PROXY header on {unit}",
            f"{unit} sends the PROXY header; these targets are not ready for it, so their SMTP "
            "sessions get 500 5.5.2: " + "; ".join(described) + "\n\nFleet targets are configured "
            "by proxymx (refresh); configure the others, or deregister them.",
            sweep=sweep,
        )

    def broken(self, arns: list[str], request: Callable[[str], str], *, sweep: bool) -> None:
        for arn in arns:
            self._publish(
                f"tg/{arn}",
                state_of("broken", [arn]),
                "proxymx: NLB header placement hangs SMTP (broken)",
                f"The PROXY header is ON on {arn} with a placement other than on_first_ack: every SMTP "
                f"session through it hangs, and AWS refused proxymx's repair.\n\n{request(arn)}",
                sweep=sweep,
            )

    def settled(self, unit: str) -> None:
        if self.ledger is not None:
            self.ledger.clear(unit)
