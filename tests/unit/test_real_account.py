"""What a real account enforces and moto forgives, read from template.yaml (issue 10)."""

from __future__ import annotations

import math
from typing import Any

from proxymx_tools.template import load_template
from support import DOCUMENT

TEMPLATE = load_template()
RES: dict[str, Any] = TEMPLATE["Resources"]

# The two constants of LaunchQueue's maxReceiveCount formula (template.yaml states it):
# the agent's budget to come Online, in HeartbeatTimeouts, and the receives throttling may cost.
AGENT_WAIT_HEARTBEATS = 2
THROTTLED_RECEIVE_ALLOWANCE = 5


def _configure_instance() -> dict[str, Any]:
    properties: dict[str, Any] = RES["ConfigureInstanceFunction"]["Properties"]
    return properties


def test_launch_queue_visibility_is_six_function_timeouts_plus_the_batching_window() -> None:
    # Given ConfigureInstance's timeout and its SQS batching window
    function = _configure_instance()
    window = RES["ConfigureInstanceLaunchQueueMapping"]["Properties"]["MaximumBatchingWindowInSeconds"]
    # When the queue's visibility timeout is read
    visibility = RES["LaunchQueue"]["Properties"]["VisibilityTimeout"]
    # Then it is at least what Lambda's SQS guidance asks, and not absurdly more (it is the retry pace)
    floor = 6 * function["Timeout"] + window
    assert floor <= visibility <= floor + 60


def test_max_receive_count_follows_the_hooks_heartbeat_budget() -> None:
    # Given the hook's HeartbeatTimeout and the queue's visibility timeout
    heartbeat = RES["LaunchLifecycleHook1"]["Properties"]["HeartbeatTimeout"]
    queue = RES["LaunchQueue"]["Properties"]
    # When maxReceiveCount is derived as template.yaml's comment states
    expected = (
        math.ceil(AGENT_WAIT_HEARTBEATS * heartbeat / queue["VisibilityTimeout"])
        + THROTTLED_RECEIVE_ALLOWANCE
    )
    # Then the template carries exactly that
    assert queue["RedrivePolicy"]["maxReceiveCount"] == expected
    # And every hook the template can create shares the same HeartbeatTimeout
    hooks = [r for r in RES.values() if r["Type"] == "AWS::AutoScaling::LifecycleHook"]
    assert hooks and {h["Properties"]["HeartbeatTimeout"] for h in hooks} == {heartbeat}


def test_the_document_keeps_its_name_across_updates() -> None:
    # Given the SSM document resource
    document = RES["PostfixProxyProtocolDocument"]["Properties"]
    # Then a content change is a new version of the same name, not a replacement
    assert document["UpdateMethod"] == "NewVersion"
    # And the name is per stack (no collision between stacks), and for the stack "proxymx" the
    # name the local tooling and the tests use
    name = document["Name"]["Fn::Sub"]
    assert "${AWS::StackName}" in name
    assert name.replace("${AWS::StackName}", "proxymx") == DOCUMENT
