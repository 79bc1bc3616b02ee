"""Seed the embedded AWS with the world a launch-flow event presumes.

``proxymx invoke --backend moto`` calls :func:`seed` before invoking an event, so that any
event from ``events/`` can be tried with no AWS account:

- a launch lifecycle event: the Auto Scaling group (with the fleet tag, propagated) and its launch
  hook, the event's instance in the group, held in ``Pending:Wait`` (``Warmed:Pending:Wait`` for
  a warm-pool destination) with the event's token, and registered ``Online`` with SSM;
- an SSM invocation status event: the same group/hook/instance, our document, and the command of
  that document (with the event's command id) whose invocation's status and output agree with
  the event: for ``Success`` a summary that proves the configuration, for ``Failed`` a failed
  summary and stderr, ``TimedOut``/``Undeliverable``/``Cancelled`` as SSM reports them;
- a command-level event or a malformed event: only what can be read from it (nothing breaks).

Seeding writes through moto directly (plain boto3 clients and moto's backends), so none of it
appears in the ``--json`` call list, which shows only what the handler did.
"""

from __future__ import annotations

import json
from typing import Any

from proxymx.config import load_settings
from proxymx.launch.context import encode_comment

from proxymx_tools.embedded import CommandOutcome, LaunchExtension, current_extension

DEFAULT_GROUP = "proxymx-mx-fleet"
FLEET_TAG_KEY = "proxymx:fleet"
FLEET_TAG_VALUE = "mx"
LAUNCH_TEMPLATE = "proxymx-seed-mx"
HEARTBEAT_TIMEOUT = 900
# An AMI moto ships (amzn2-ami-hvm-2.0.20180810-x86_64-gp2). Listing moto's images instead costs
# seconds of serialisation per seed.
SEED_IMAGE_ID = "ami-04681a1dbd79675a5"

_OUTCOMES = {
    "Success": CommandOutcome.configured,
    "Failed": lambda: CommandOutcome.failed("postfix check: fatal: bad master.cf entry; rolled back"),
    "TimedOut": CommandOutcome.timed_out,
    "DeliveryTimedOut": CommandOutcome.timed_out,
    "ExecutionTimedOut": CommandOutcome.timed_out,
    "Undeliverable": CommandOutcome.undeliverable,
    "Cancelled": CommandOutcome.cancelled,
    "Terminated": CommandOutcome.cancelled,
}


def _client(service: str, region: str) -> Any:
    import boto3

    return boto3.client(service, region_name=region)  # type: ignore[call-overload]


def ensure_group(group_name: str, hook_name: str, region: str = "us-east-1") -> None:
    """The group (no instances of its own yet), its fleet tag and its launch hook."""
    autoscaling = _client("autoscaling", region)
    ec2 = _client("ec2", region)
    if not autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])["AutoScalingGroups"]:
        templates = ec2.describe_launch_templates(
            Filters=[{"Name": "launch-template-name", "Values": [LAUNCH_TEMPLATE]}]
        )["LaunchTemplates"]
        if not templates:
            ec2.create_launch_template(
                LaunchTemplateName=LAUNCH_TEMPLATE,
                LaunchTemplateData={"ImageId": SEED_IMAGE_ID, "InstanceType": "t3.small"},
            )
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=group_name,
            LaunchTemplate={"LaunchTemplateName": LAUNCH_TEMPLATE, "Version": "$Latest"},
            MinSize=0,
            MaxSize=200,
            DesiredCapacity=0,
            AvailabilityZones=[f"{region}a"],
            Tags=[
                {
                    "Key": FLEET_TAG_KEY,
                    "Value": FLEET_TAG_VALUE,
                    "PropagateAtLaunch": True,
                    "ResourceId": group_name,
                    "ResourceType": "auto-scaling-group",
                }
            ],
        )
    hooks = autoscaling.describe_lifecycle_hooks(
        AutoScalingGroupName=group_name, LifecycleHookNames=[hook_name]
    )
    if not hooks["LifecycleHooks"]:
        autoscaling.put_lifecycle_hook(
            AutoScalingGroupName=group_name,
            LifecycleHookName=hook_name,
            LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
            HeartbeatTimeout=HEARTBEAT_TIMEOUT,
            DefaultResult="ABANDON",
        )


def ensure_instance(ext: LaunchExtension, group_name: str, instance_id: str) -> None:
    """Launch one instance into the group and give it the event's instance id."""
    backend = ext._autoscaling_backend()
    group = backend.autoscaling_groups[group_name]
    if any(state.instance.id == instance_id for state in group.instance_states):
        return
    before = {state.instance.id for state in group.instance_states}
    backend.set_desired_capacity(group_name, len(group.instance_states) + 1)
    state = next(state for state in group.instance_states if state.instance.id not in before)
    old_id = state.instance.id
    # moto picks random ids; the event names one. Rename the instance everywhere moto keys it.
    state.instance.id = instance_id
    state.instance_id = instance_id
    tags = ext._ec2_backend().tags
    if old_id in tags:
        tags[instance_id] = tags.pop(old_id)


def ensure_document(name: str, region: str = "us-east-1") -> None:
    """Our document as the template declares it (or, for a foreign name, a minimal one)."""
    ssm = _client("ssm", region)
    try:
        ssm.describe_document(Name=name)
        return
    except ssm.exceptions.InvalidDocument:
        pass
    content: dict[str, Any]
    try:
        from proxymx_tools.template import document, load_template

        content = document(load_template())
    except (KeyError, OSError, ValueError):
        content = {
            "schemaVersion": "2.2",
            "description": "stand-in",
            "mainSteps": [
                {"action": "aws:runShellScript", "name": "run", "inputs": {"runCommand": ["true"]}}
            ],
        }
    ssm.create_document(Name=name, Content=json.dumps(content), DocumentType="Command", DocumentFormat="JSON")


def seed_instance_waiting(
    ext: LaunchExtension,
    group_name: str,
    hook_name: str,
    instance_id: str,
    *,
    token: str | None = None,
    warm: bool = False,
) -> None:
    ensure_group(group_name, hook_name, ext.region)
    ensure_instance(ext, group_name, instance_id)
    ext.hold_in_wait(group_name, instance_id, hook_name, warm=warm, token=token)
    ext.register_instance(instance_id)


def seed_command(
    ext: LaunchExtension,
    command_id: str,
    document_name: str,
    instance_id: str,
    status: str,
    *,
    group_name: str,
    hook_name: str,
) -> None:
    """The command of ``document_name`` on the instance, renamed to ``command_id``."""
    ensure_document(document_name, ext.region)
    ext.script_outcome(_OUTCOMES.get(status, CommandOutcome.cancelled)(), instance_id)
    ssm = _client("ssm", ext.region)
    ext.attach(ssm)
    sent = ssm.send_command(
        InstanceIds=[instance_id],
        DocumentName=document_name,
        Comment=encode_comment(group_name, hook_name),
        TimeoutSeconds=600,
    )
    generated = sent["Command"]["CommandId"]
    command = ext._ssm_backend().get_command_by_id(generated)
    command.command_id = command_id
    for invocation in command.invocations:
        invocation["CommandId"] = command_id
    ext.sent_commands = [command_id if c == generated else c for c in ext.sent_commands]
    ext.drain_status_events()  # the event being invoked IS that status event


def seed(event: dict[str, Any]) -> None:
    """Seed the current embedded AWS for ``event`` (a launch or SSM status event); never raises
    on an event it cannot read (malformed events are the handler's to reject)."""
    ext = current_extension()
    if ext is None:
        raise RuntimeError("seed() needs the embedded AWS (inside proxymx_tools.embedded.embedded_aws())")
    if not isinstance(event, dict):
        return
    settings = load_settings()
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    assert isinstance(detail, dict)
    detail_type = event.get("detail-type")
    if detail_type == "EC2 Instance-launch Lifecycle Action":
        group, hook, instance = (
            detail.get("AutoScalingGroupName"),
            detail.get("LifecycleHookName"),
            detail.get("EC2InstanceId"),
        )
        if not all(isinstance(v, str) and v for v in (group, hook, instance)):
            return
        assert isinstance(group, str) and isinstance(hook, str) and isinstance(instance, str)
        if not instance.startswith("i-"):
            return
        token = detail.get("LifecycleActionToken")
        seed_instance_waiting(
            ext,
            group,
            hook,
            instance,
            token=token if isinstance(token, str) and token else None,
            warm=detail.get("Destination") == "WarmPool",
        )
        ensure_document(settings.document_name, ext.region)
    elif detail_type == "EC2 Command Invocation Status-change Notification":
        command_id, document_name, instance, status = (
            detail.get("command-id"),
            detail.get("document-name"),
            detail.get("instance-id"),
            detail.get("status"),
        )
        values = (command_id, document_name, instance, status)
        if not all(isinstance(v, str) and v for v in values):
            return
        assert isinstance(command_id, str) and isinstance(document_name, str)
        assert isinstance(instance, str) and isinstance(status, str)
        if not instance.startswith("i-"):
            return
        group = settings.launch_group_names[0] if settings.launch_group_names else DEFAULT_GROUP
        hook = settings.lifecycle_hook_names[0]
        seed_instance_waiting(ext, group, hook, instance)
        seed_command(ext, command_id, document_name, instance, status, group_name=group, hook_name=hook)
    elif detail_type == "EC2 Command Status-change Notification":
        name = detail.get("document-name")
        if isinstance(name, str) and name:
            ensure_document(name, ext.region)
