"""What proxymx may touch: ONE scope module for every flow.

- Load balancers, by tags (:func:`load_balancer_out_of_scope`): the opt-out tag (any value but
  ``false``, so the tag can stay in an infrastructure template and be flipped) on the resource
  excludes it; the required tag, when set, must be on it. A target group counts its own tags
  and those of every load balancer it serves (a target group created before its listener has
  no load balancer yet, so its own tags count).
- Launches, by names (:func:`launch_out_of_scope`): only our lifecycle hooks, and only the
  groups of ``LaunchGroupNames`` when it is set. ConfigureInstance asks before it sends the
  document, CheckOutcome before it completes a lifecycle action (the comment of a command may
  name a group that left the scope meanwhile), the sweep before it re-drives an instance.
- Events, by origin (:class:`Home`): an event from another account or region than the
  function's own is forged or misrouted (a cross-account event bus); its instance and command
  ids mean nothing here, so it is rejected before any AWS call (issue 9, finding 6).
- The fleet (:func:`fleet_tag`): groups and instances tagged ``proxymx:fleet=<FleetTagValue>``.
  IAM enforces it on every write (SendCommand, CompleteLifecycleAction); the sweep lists only
  such groups.

Pure: tags and names in, a reason out (None means in scope).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from proxymx.config import FLEET_TAG_KEY, Settings
from proxymx.errors import MalformedEvent
from proxymx.frozen import frozen
from proxymx.models.envelope import EventBridgeEvent

Event = TypeVar("Event", bound=EventBridgeEvent)

Tags = Mapping[str, str]


def load_balancer_out_of_scope(tag_sets: Sequence[Tags], settings: Settings) -> str | None:
    """Why these tags put a load balancer (or target group) out of scope, or None."""
    for tags in tag_sets:
        value = tags.get(settings.opt_out_tag_key)
        if value is not None and value.strip().lower() != "false":
            return f"opted out by tag {settings.opt_out_tag_key}={value}"
    required = settings.required_tag_pair
    if required is not None:
        key, wanted = required
        if not any(key in tags and (wanted is None or tags[key] == wanted) for tags in tag_sets):
            return f"lacks the required tag {settings.required_tag}"
    return None


def launch_out_of_scope(group_name: str, hook_name: str, settings: Settings) -> str | None:
    """Why a launch held by ``hook_name`` in ``group_name`` is not ours to act on, or None."""
    if hook_name not in settings.lifecycle_hook_names:
        return f"hook {hook_name!r} is not one of ours {list(settings.lifecycle_hook_names)}"
    if settings.launch_group_names and group_name not in settings.launch_group_names:
        return f"group {group_name!r} is not in scope {list(settings.launch_group_names)}"
    return None


def fleet_tag(settings: Settings) -> tuple[str, str]:
    """The (key, value) of the tag that puts a group and its instances in the fleet."""
    return FLEET_TAG_KEY, settings.fleet_tag_value


@frozen
class Home:
    """The function's own account and region, from its ARN."""

    account: str
    region: str

    @classmethod
    def of(cls, context: Any) -> Home | None:
        """From ``context.invoked_function_arn`` (arn:aws:lambda:REGION:ACCOUNT:function:NAME);
        None without one (a test's or a tool's context): then nothing is foreign."""
        parts = str(getattr(context, "invoked_function_arn", "") or "").split(":")
        return cls(account=parts[4], region=parts[3]) if len(parts) > 5 and parts[4] else None

    def foreign(self, event: EventBridgeEvent) -> str | None:
        """Why the event is not from here, or None."""
        if (event.account, event.region) != (self.account, self.region):
            return (
                f"event from account {event.account} region {event.region}, "
                f"not this function's ({self.account} {self.region})"
            )
        return None


def from_home(event: Event, home: Home | None) -> Event:
    """The event, or MalformedEvent when it comes from another account or region."""
    reason = home.foreign(event) if home is not None else None
    if reason is not None:
        raise MalformedEvent(reason)
    return event
