"""``proxymx cutover list`` / ``proxymx cutover clear UNIT``: an operator's view of the cutovers.

A failed cutover is not retried before its ``retry_after`` (6 h: no tight loop against a fleet that
cannot be configured). Once the operator fixed the cause, ``clear`` deletes its ``CUTOVER#<unit>``
record so that the next event or sweep may start a new one. The delete is conditional on a
terminal phase (``switched``, ``failed``, ``cancelled``): a cutover in flight (``configuring``,
``switching``, ``reverting``, ``held``) is never cut from under its flow, and nothing else is
released (the sweep releases the slot of a cutover that is over).

The StateTable is found from the stack (CloudFormation ``DescribeStackResource`` of the logical id
``StateTable``) unless ``--table`` names it. Never imported by a Lambda handler.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from proxymx.frozen import frozen

STATE_TABLE_LOGICAL_ID = "StateTable"
COLUMNS = ("unit", "phase", "started", "reason", "retry_after")


def unit_key(unit: str) -> str:
    """The unit key of what an operator types: ``classic/<name>`` or ``tg/<arn>`` as they are, a
    target group ARN, else a Classic ELB name."""
    if unit.startswith(("classic/", "tg/")):
        return unit
    if unit.startswith("arn:") and ":targetgroup/" in unit:
        return f"tg/{unit}"
    return f"classic/{unit}"


def stack_table(cloudformation: Any, stack: str) -> str:
    """The physical name of the stack's StateTable (raises the AWS error when there is none)."""
    response = cloudformation.describe_stack_resource(
        StackName=stack, LogicalResourceId=STATE_TABLE_LOGICAL_ID
    )
    return str(response["StackResourceDetail"]["PhysicalResourceId"])


def _when(epoch: Any) -> str:
    if not isinstance(epoch, int) or epoch <= 0:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rows(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One row per cutover record, the columns of :data:`COLUMNS`."""
    from proxymx.loadbalancer.cutover import CUTOVER_PREFIX

    return [
        {
            "unit": str(r.get("unit") or str(r["pk"]).removeprefix(CUTOVER_PREFIX)),
            "phase": str(r.get("phase", "?")),
            "started": _when(r.get("started_at")),
            "reason": " ".join(str(r.get("reason") or "-").split()),
            # retry_after is meaningful only once a cutover is over (a failed one waits for it).
            "retry_after": _when(r.get("retry_after")),
        }
        for r in records
    ]


def table_text(found: list[dict[str, str]]) -> str:
    if not found:
        return "no cutover records"
    widths = {c: max(len(c), *(len(row[c]) for row in found)) for c in COLUMNS if c != "reason"}
    lines = []
    for row in [dict(zip(COLUMNS, COLUMNS, strict=True)), *found]:
        lines.append("  ".join([*(row[c].ljust(widths[c]) for c in COLUMNS if c != "reason"), row["reason"]]))
    return "\n".join(line.rstrip() for line in lines)


@frozen
class Cleared:
    ok: bool
    message: str


def clear(records: Any, unit: str) -> Cleared:
    """Delete a terminal cutover's record; refuse (with the reason) anything else."""
    from proxymx.loadbalancer.cutover import CUTOVER_PREFIX, TERMINAL_PHASES

    key = unit_key(unit)
    written = records.clear(key)
    if written.won:
        return Cleared(
            True,
            f"cleared    {CUTOVER_PREFIX}{key}: the next event or Reconcile sweep may start a new cutover",
        )
    if written.existing is None:
        return Cleared(False, f"no cutover record {CUTOVER_PREFIX}{key} (nothing to clear)")
    phase = str(written.existing.get("phase", "?"))
    hint = (
        " (held by the kill switch or a pause tag: `proxymx resume` / remove the tag, the sweep resumes it)"
        if phase == "held"
        else ""
    )
    return Cleared(
        False,
        f"refused    {CUTOVER_PREFIX}{key} is in flight ({phase}){hint}; only a cutover that is over "
        f"({', '.join(sorted(TERMINAL_PHASES))}) can be cleared",
    )
