"""Operators stay in control (issue 7.5): the kill switch and the flapping guard.

**The kill switch.** The template creates the SSM String parameter ``/proxymx/<stack>/enabled``
= ``true`` and passes its name as ``ENABLED_PARAMETER``. Every write path asks :func:`halted`
before it writes; a reason (not None) means *paused*: no load balancer write, no refresh or
cutover command, no drift repair; the outcome is ``paused`` with that reason (metric
``ProxymxPaused``). An operator flips it with ``proxymx pause`` / ``proxymx resume`` (or
``aws ssm put-parameter``): no stack update in an incident.

- Read on every invocation that would write, cached :data:`CACHE_SECONDS` in the process: a warm
  function under a burst of events reads it once per 30 s, and a flip takes effect within 30 s.
- Only the exact value ``true`` (spaces around it ignored) means enabled. Anything else, a
  missing parameter, or a read that still fails after botocore's retries means **paused**: the
  switch exists to stop proxymx, and a switch we cannot read must not be taken for "go" (fail
  safe). The reason says which, so an IAM or throttling problem is visible, not silent.
- Not halted: the launch flow. ConfigureInstance and CheckOutcome keep configuring launches for
  what their units send, and completing their lifecycle actions: they write nothing to a load
  balancer, an unproven launch is never put in service anyway, and leaving launches to the
  hook's DefaultResult (ABANDON) would shrink the fleet during the very incident that made the
  operator pull the switch. Reconcile's re-drive of stuck launches goes on for the same reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from proxymx.errors import aws_errors, error_code

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

    from proxymx.aws import Clients
    from proxymx.config import Settings

log = logging.getLogger(__name__)

ENABLED = "true"
CACHE_SECONDS = 30.0

Clock = Callable[[], float]


def judge(name: str, value: str | None, error: str | None = None) -> str | None:
    """The kill switch's verdict on what was read: None (enabled) or why proxymx is paused."""
    if error is not None:
        return f"kill switch {name} unreadable ({error}): paused (fail safe)"
    if value is None:
        return f"kill switch {name} not found: paused (fail safe)"
    if value.strip() == ENABLED:
        return None
    return f"kill switch {name} = {value.strip()[:40]!r}: proxymx is paused (`proxymx resume` ends it)"


@dataclass
class _Read:
    at: float
    reason: str | None


class KillSwitch:
    """The parameter's verdict, read at most once per :data:`CACHE_SECONDS` of ``clock``."""

    def __init__(self, name: str, *, clock: Clock = time.monotonic, ttl: float = CACHE_SECONDS) -> None:
        self.name = name
        self.clock = clock
        self.ttl = ttl
        self._last: _Read | None = None

    def halted(self, ssm: SSMClient) -> str | None:
        now = self.clock()
        if self._last is not None and now - self._last.at < self.ttl:
            return self._last.reason
        reason = self._read(ssm)
        if reason is not None:
            log.warning("%s", reason, extra={"kill_switch": self.name})
        self._last = _Read(now, reason)
        return reason

    def forget(self) -> None:
        self._last = None

    def _read(self, ssm: SSMClient) -> str | None:
        try:
            value = ssm.get_parameter(Name=self.name)["Parameter"].get("Value")
        except aws_errors() as exc:
            code = error_code(exc)
            if code == "ParameterNotFound":
                return judge(self.name, None)
            return judge(self.name, None, code or type(exc).__name__)
        return judge(self.name, value)


# One switch per parameter name for the process (a warm Lambda keeps it).
_switches: dict[str, KillSwitch] = {}


def halted(settings: Settings, clients: Clients, *, clock: Clock | None = None) -> str | None:
    """Why proxymx must not write now (the kill switch is off or unreadable), or None.

    Every write path calls this before it writes (load balancer flow, Reconcile, refresh, the
    cutover). Without a configured parameter (``ENABLED_PARAMETER`` = "") nothing is read.
    """
    name = settings.enabled_parameter
    if not name:
        return None
    switch = _switches.get(name)
    if switch is None or (clock is not None and switch.clock is not clock):
        switch = _switches[name] = KillSwitch(name, clock=clock or time.monotonic)
    return switch.halted(clients.ssm)


def forget() -> None:
    """Drop every cached verdict (tests; the CLI after it flips the switch)."""
    _switches.clear()


def set_enabled(ssm: SSMClient, name: str, enabled: bool) -> None:
    """``proxymx pause`` / ``resume``: overwrite the parameter (the template created it)."""
    ssm.put_parameter(Name=name, Value=ENABLED if enabled else "false", Type="String", Overwrite=True)
