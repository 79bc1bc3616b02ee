"""Auto Scaling adapter (the only Auto Scaling boto3 code): lifecycle state, heartbeat, completion."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from proxymx import aws
from proxymx.launch.awserrors import call_errors, error_code, translate
from proxymx.launch.ssm import chunked

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient

# The states in which a launch lifecycle action is waiting for us (warm-pool launches included).
WAITING_STATES = frozenset({"Pending:Wait", "Warmed:Pending:Wait"})

LifecycleResult = Literal["CONTINUE", "ABANDON"]
Completion = Literal["completed", "no-active-action"]


def _client(client: AutoScalingClient | None) -> AutoScalingClient:
    return client if client is not None else aws.client("autoscaling")


@dataclass(frozen=True)
class InstanceLifecycle:
    instance_id: str
    group_name: str
    state: str

    @property
    def waiting(self) -> bool:
        return self.state in WAITING_STATES


def lifecycle_states(
    instance_ids: Iterable[str], *, client: AutoScalingClient | None = None
) -> dict[str, InstanceLifecycle]:
    """Lifecycle state of each instance Auto Scaling still knows (absent = terminated and gone)."""
    asg = _client(client)
    found: dict[str, InstanceLifecycle] = {}
    for chunk in chunked(sorted(set(instance_ids))):
        kwargs: dict[str, Any] = {"InstanceIds": chunk, "MaxRecords": 50}
        while True:
            try:
                page = asg.describe_auto_scaling_instances(**kwargs)
            except call_errors() as exc:
                raise translate(exc, "DescribeAutoScalingInstances") from exc
            for item in page.get("AutoScalingInstances", []):
                found[item["InstanceId"]] = InstanceLifecycle(
                    item["InstanceId"], item["AutoScalingGroupName"], item["LifecycleState"]
                )
            token = page.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
    return found


def _no_active_action(exc: Exception) -> bool:
    # Auto Scaling answers ValidationError "No active Lifecycle Action found with instance ID ..."
    # when the action was already completed, or expired (heartbeat timeout): nothing left to do.
    return error_code(exc) == "ValidationError" and "No active Lifecycle Action" in str(exc)


def complete_lifecycle_action(
    group_name: str,
    hook_name: str,
    instance_id: str,
    result: LifecycleResult,
    *,
    client: AutoScalingClient | None = None,
) -> Completion:
    """Complete the launch action by instance id (no token needed); idempotent."""
    try:
        _client(client).complete_lifecycle_action(
            AutoScalingGroupName=group_name,
            LifecycleHookName=hook_name,
            InstanceId=instance_id,
            LifecycleActionResult=result,
        )
    except call_errors() as exc:
        if _no_active_action(exc):
            return "no-active-action"
        raise translate(exc, "CompleteLifecycleAction") from exc
    return "completed"


def record_heartbeat(
    group_name: str, hook_name: str, instance_id: str, *, client: AutoScalingClient | None = None
) -> bool:
    """Restart the hook's heartbeat timer; False when there is no action left to keep alive."""
    try:
        _client(client).record_lifecycle_action_heartbeat(
            AutoScalingGroupName=group_name, LifecycleHookName=hook_name, InstanceId=instance_id
        )
    except call_errors() as exc:
        if _no_active_action(exc):
            return False
        raise translate(exc, "RecordLifecycleActionHeartbeat") from exc
    return True


def launch_hook_names(
    group_name: str, candidates: Iterable[str], *, client: AutoScalingClient | None = None
) -> list[str]:
    """Which of our hook names exist on the group as launch hooks (fallback when a command's
    comment could not carry the hook)."""
    try:
        hooks = _client(client).describe_lifecycle_hooks(AutoScalingGroupName=group_name)
    except call_errors() as exc:
        raise translate(exc, "DescribeLifecycleHooks") from exc
    wanted = set(candidates)
    return [
        hook["LifecycleHookName"]
        for hook in hooks.get("LifecycleHooks", [])
        if hook.get("LifecycleHookName") in wanted
        and hook.get("LifecycleTransition") == "autoscaling:EC2_INSTANCE_LAUNCHING"
    ]
