"""One command per launch: a conditional claim in the StateTable before every SendCommand.

Why (issue 9, finding 1): a launch reaches ConfigureInstance at least once — two SQS batches, eight
concurrent deliveries, a Reconcile re-drive plus a late SQS message. Each used to send the document
again; two runs on one instance then raced, and a late rollback undid a configuration the first
run had proved.

The key is ``LAUNCH#<instance>#<destination>``:

- the lifecycle token is NOT in it: a Reconcile re-drive has no token (it cannot know it), and it
  must collide with the SQS delivery of the same launch;
- the destination IS in it: a warm-pool instance launches twice (``EC2 -> WarmPool``, then
  ``WarmPool -> AutoScalingGroup``), and the second launch must run the document again.

Why it is race-free enough: the claim is one DynamoDB ``PutItem`` with
``attribute_not_exists(pk)``; DynamoDB evaluates the condition and the write atomically, so of any
number of concurrent deliveries exactly one wins and sends. The losers get the claim that stood in
their way in the same atomic step (``ReturnValuesOnConditionCheckFailure``, no separate read):

- ``sent`` (the winner's command id is recorded) -> the command is reused: the record is settled
  as sent, nothing is sent again;
- ``claiming`` (the winner is between its claim and SendCommand) -> the record is retried by the
  queue (``not-ready``): when it comes back it finds ``sent``, or no claim when the winner failed
  and released it.

A winner that fails to send releases its claim (a conditional update that expires it, on its own
owner token, so it never touches a newer claim; an update, not a delete, so that the role needs
only PutItem and UpdateItem, both on the normal path). A winner that dies between claim and
SendCommand (Lambda timeout, crash) leaves a ``claiming`` record: after ``stale_after_seconds``
(longer than any function run) a later delivery takes it over with the same atomic condition.

A claim lives as long as the command it stands for can matter (the command's delivery timeout plus
the document's execution timeout, plus a margin); after that the same key can be claimed again, so
that a warm-pool instance reused later (back to the pool, then in service again) is configured
again, and Reconcile may re-drive an instance whose command's verdict was lost.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from proxymx.frozen import frozen
from proxymx.state import StateTable

ClaimState = Literal["claiming", "sent"]

# The document's own timeoutSeconds (aws:runShellScript in template.yaml): 300 s.
DOCUMENT_EXECUTION_SECONDS = 300
# Longer than any ConfigureInstance (30 s) or Reconcile (240 s) run: a "claiming" record older than
# this belongs to a run that died before it could send or release.
STALE_CLAIM_SECONDS = 300


def launch_key(instance_id: str, destination: str) -> str:
    return f"LAUNCH#{instance_id}#{destination}"


@frozen
class Claim:
    """The answer to a claim: ``won`` (send now), else what the other delivery recorded."""

    won: bool
    key: str
    owner: str
    state: ClaimState | None = None
    command_id: str | None = None


class LaunchClaims:
    def __init__(
        self,
        table: StateTable,
        *,
        command_timeout_seconds: int,
        stale_after_seconds: int = STALE_CLAIM_SECONDS,
    ) -> None:
        self.table = table
        self.lifetime_seconds = command_timeout_seconds + DOCUMENT_EXECUTION_SECONDS + STALE_CLAIM_SECONDS
        self.stale_after_seconds = stale_after_seconds

    def claim(self, instance_id: str, destination: str, now: datetime) -> Claim:
        key = launch_key(instance_id, destination)
        owner = uuid.uuid4().hex
        at = int(now.timestamp())
        written = self.table.put_if_absent(
            key,
            {"kind": "launch", "state": "claiming", "owner": owner, "claimed_at": at},
            now=at,
            expires_at=at + self.lifetime_seconds,
            # A claim whose run died before sending (see the module docstring).
            or_if="#state = :claiming AND claimed_at <= :stale",
            names={"#state": "state"},
            bindings={":claiming": "claiming", ":stale": at - self.stale_after_seconds},
        )
        if written.won:
            return Claim(True, key, owner, "claiming")
        record = written.existing or {}
        state: ClaimState = "sent" if record.get("state") == "sent" else "claiming"
        command_id = record.get("command_id")
        return Claim(False, key, owner, state, str(command_id) if command_id else None)

    def sent(self, claim: Claim, command_id: str) -> None:
        """Record the command of a won claim (losers then reuse it). Unconditional on state: only
        the owner ever writes ``sent`` for its claim."""
        self.table.update_if(
            claim.key,
            {"state": "sent", "command_id": command_id},
            condition="#owner = :owner",
            names={"#owner": "owner"},
            bindings={":owner": claim.owner},
        )

    def release(self, claim: Claim, now: datetime) -> None:
        """Give a won claim back after a failed send (only our own: never a newer owner's)."""
        self.table.update_if(
            claim.key,
            {"state": "released", "expires_at": int(now.timestamp())},
            condition="#owner = :owner AND #state = :claiming",
            names={"#owner": "owner", "#state": "state"},
            bindings={":owner": claim.owner, ":claiming": "claiming"},
        )
