"""Refresh: configure fleet targets that sit unready behind a unit that already sends the header
(issue 7.2, registration is a write too).

Such a target answers every SMTP command with ``500 5.5.2`` (docs/postfix.md): the header
reaches a Postfix that does not expect it. Configuring it can only restore agreement (the unit
already sends; it is never a mismatch to create), so proxymx does it at once, without asking:

- who: fleet instances only (tag ``proxymx:fleet``, the operator's opt-in); a target outside the
  fleet, or an IP target mapped to no instance, is never touched: metric
  ``UnreadyTargetsBehindHeader``, its alarm, one SNS notice per state (proxymx.loadbalancer.notify);
- what: our document, ``Mode=configure``, ``SmtpPorts`` = the instance ports the unit forwards
  to, ``ProxyProtocol`` = what it sends (Classic v1, NLB v2), Comment ``proxymx:refresh:<16-hex
  digest of the unit key>``: not a lifecycle action's comment, so CheckOutcome records what the
  run proved (the readiness tag) and completes nothing;
- at most one command in flight per instance: a ``REFRESH#<instance>`` claim (conditional put)
  that lives as long as the command can run (delivery timeout + the document's own timeout);
  a registration event and a sweep, or two events, racing for one instance send once. A failed
  SendCommand gives the claims back (expires them) and fails the invocation (retried);
- when: on a registration event (RegisterTargets, RegisterInstancesWithLoadBalancer, the Auto
  Scaling Attach* calls), and in the sweep for units that send and have stale fleet targets (a
  tag for other ports, an older level), readiness read in account-wide pages
  (:class:`proxymx.loadbalancer.targets.SweepReadiness`);
- not while the kill switch is off (outcome ``paused``), never in a dry run (the plan is shown).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence

from proxymx.aws import Clients
from proxymx.batching import chunked
from proxymx.config import Settings
from proxymx.errors import ProxymxError
from proxymx.frozen import frozen
from proxymx.launch.claims import DOCUMENT_EXECUTION_SECONDS
from proxymx.launch.runcommand import RunCommand
from proxymx.loadbalancer.readiness import Requirement
from proxymx.loadbalancer.targets import Unready
from proxymx.state import StateTable

# SendCommand takes at most 50 instance ids.
INSTANCES_PER_COMMAND = 50


def refresh_key(instance_id: str) -> str:
    return f"REFRESH#{instance_id}"


def refresh_comment(unit: str) -> str:
    """``proxymx:refresh:<16 hex>`` (SendCommand's Comment holds 100 characters; a unit key may not)."""
    return f"proxymx:refresh:{hashlib.sha256(unit.encode()).hexdigest()[:16]}"


@frozen
class RefreshPlan:
    """What to do about a unit's unready targets (pure: :func:`plan_refresh`)."""

    unit: str
    requirement: Requirement
    # Fleet instances proxymx configures now.
    fleet: tuple[str, ...]
    # Targets proxymx never touches: outside the fleet, or IP targets mapped to no instance.
    outside: tuple[Unready, ...]

    def parameters(self, settings: Settings) -> dict[str, str]:
        return {
            "SmtpPorts": ",".join(str(p) for p in self.requirement.ports),
            "ProxyProtocol": self.requirement.version,
            "UpstreamProxyTimeout": settings.upstream_proxy_timeout,
            "DryRun": "false",
            "Mode": "configure",
        }

    def describe(self) -> list[str]:
        return [f"refresh {i}: document Mode=configure for {self.requirement.describe()}" for i in self.fleet]


def plan_refresh(unit: str, requirement: Requirement, unready: Sequence[Unready]) -> RefreshPlan:
    fleet = tuple(sorted({u.target_id for u in unready if u.in_fleet and u.target_id.startswith("i-")}))
    outside = tuple(u for u in unready if u.target_id not in fleet)
    return RefreshPlan(unit, requirement, fleet, outside)


class Refresher:
    """Claims, then sends the document to the plan's fleet instances (the adapters' caller)."""

    def __init__(
        self, settings: Settings, clients: Clients, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.clock = clock

    def refresh(self, plan: RefreshPlan) -> tuple[list[str], list[str], int]:
        """The changes made (one line per instance: sent, or already in flight), the instances
        not refreshed because their SSM agent is not Online (reported; the sweep tries again), and
        how many were sent a command by this call."""
        now = int(self.clock())
        table = (
            StateTable(self.settings.state_table_name, self.clients.dynamodb)
            if self.settings.state_table_name
            else None
        )
        expires = now + self.settings.command_timeout_seconds + DOCUMENT_EXECUTION_SECONDS
        changes: list[str] = []
        claimed: list[str] = []
        for instance_id in plan.fleet:
            if table is None:
                claimed.append(instance_id)
                continue
            written = table.put_if_absent(
                refresh_key(instance_id), {"unit": plan.unit, "command": ""}, now=now, expires_at=expires
            )
            if written.won:
                claimed.append(instance_id)
            else:
                command = (written.existing or {}).get("command") or "being sent"
                changes.append(f"refresh {instance_id}: a command is already in flight ({command})")
        run = RunCommand(self.clients.ssm)
        # One agent that is not Online would make SendCommand refuse its whole batch.
        online = run.online_instances(claimed) if claimed else set()
        offline = [i for i in claimed if i not in online]
        if table is not None:
            for instance_id in offline:
                self._give_back(table, instance_id, now)
        for chunk in chunked([i for i in claimed if i in online], INSTANCES_PER_COMMAND):
            try:
                command_id = run.send_command(
                    chunk,
                    document_name=self.settings.document_name,
                    parameters=plan.parameters(self.settings),
                    comment=refresh_comment(plan.unit),
                    timeout_seconds=self.settings.command_timeout_seconds,
                    log_group=self.settings.command_log_group,
                )
            except ProxymxError:
                if table is not None:
                    for instance_id in chunk:
                        self._give_back(table, instance_id, now)
                raise
            for instance_id in chunk:
                if table is not None:
                    table.update_if(
                        refresh_key(instance_id), {"command": command_id}, condition="attribute_exists(pk)"
                    )
                changes.append(
                    f"refresh {instance_id}: document Mode=configure for "
                    f"{plan.requirement.describe()} (command {command_id})"
                )
        return changes, offline, len(claimed) - len(offline)

    @staticmethod
    def _give_back(table: StateTable, instance_id: str, now: int) -> None:
        # Expired rather than deleted: an update, so the role needs no DeleteItem.
        table.update_if(refresh_key(instance_id), {"expires_at": now}, condition="attribute_exists(pk)")
