"""Auto Scaling adapter (the only Auto Scaling boto3 code of the launch flow): lifecycle state,
heartbeat, completion, and the launch hooks of a group."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from proxymx.batching import chunked
from proxymx.errors import aws_errors, error_code, translate
from proxymx.frozen import frozen
from proxymx.launch.plan import LifecycleResult

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient

# The states in which a launch lifecycle action is waiting for us (warm-pool launches included).
WAITING_STATES = frozenset({"Pending:Wait", "Warmed:Pending:Wait"})
# DescribeAutoScalingInstances takes at most 50 InstanceIds per call.
INSTANCES_PER_CALL = 50
LAUNCH_TRANSITION = "autoscaling:EC2_INSTANCE_LAUNCHING"

Completion = Literal["completed", "no-active-action"]


@frozen
class InstanceLifecycle:
    instance_id: str
    group_name: str
    state: str

    @property
    def waiting(self) -> bool:
        return self.state in WAITING_STATES


def _no_active_action(exc: Exception) -> bool:
    # Auto Scaling answers ValidationError "No active Lifecycle Action found with instance ID ..."
    # when the action was already completed, or expired (heartbeat timeout): nothing left to do.
    return error_code(exc) == "ValidationError" and "No active Lifecycle Action" in str(exc)


class AutoScaling:
    def __init__(self, client: AutoScalingClient) -> None:
        self.client = client

    def lifecycle_states(self, instance_ids: Iterable[str]) -> dict[str, InstanceLifecycle]:
        """Lifecycle state of each instance Auto Scaling still knows (absent = terminated and gone)."""
        found: dict[str, InstanceLifecycle] = {}
        for chunk in chunked(sorted(set(instance_ids)), INSTANCES_PER_CALL):
            kwargs: dict[str, Any] = {"InstanceIds": chunk, "MaxRecords": INSTANCES_PER_CALL}
            while True:
                try:
                    page = self.client.describe_auto_scaling_instances(**kwargs)
                except aws_errors() as exc:
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

    def complete_lifecycle_action(
        self, group_name: str, hook_name: str, instance_id: str, result: LifecycleResult
    ) -> Completion:
        """Complete the launch action by instance id (no token needed); idempotent."""
        try:
            self.client.complete_lifecycle_action(
                AutoScalingGroupName=group_name,
                LifecycleHookName=hook_name,
                InstanceId=instance_id,
                LifecycleActionResult=result,
            )
        except aws_errors() as exc:
            if _no_active_action(exc):
                return "no-active-action"
            raise translate(exc, "CompleteLifecycleAction") from exc
        return "completed"

    def record_heartbeat(self, group_name: str, hook_name: str, instance_id: str) -> bool:
        """Restart the hook's heartbeat timer; False when there is no action left to keep alive."""
        try:
            self.client.record_lifecycle_action_heartbeat(
                AutoScalingGroupName=group_name, LifecycleHookName=hook_name, InstanceId=instance_id
            )
        except aws_errors() as exc:
            if _no_active_action(exc):
                return False
            raise translate(exc, "RecordLifecycleActionHeartbeat") from exc
        return True

    def launch_hook_names(self, group_name: str, candidates: Iterable[str]) -> list[str]:
        """Which of our hook names exist on the group as launch hooks (CheckOutcome's fallback when
        a command's comment could not carry the hook; the sweep's hook of a group)."""
        try:
            hooks = self.client.describe_lifecycle_hooks(AutoScalingGroupName=group_name)
        except aws_errors() as exc:
            raise translate(exc, "DescribeLifecycleHooks") from exc
        wanted = set(candidates)
        return [
            hook["LifecycleHookName"]
            for hook in hooks.get("LifecycleHooks", [])
            if hook.get("LifecycleHookName") in wanted
            and hook.get("LifecycleTransition") == LAUNCH_TRANSITION
        ]
