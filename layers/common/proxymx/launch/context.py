"""How CheckOutcome finds the lifecycle action that a command must finish.

Decision: the SendCommand ``Comment`` carries the Auto Scaling group and hook, as
``proxymx:["<group>","<hook>"]``. One command serves one (group, hook) pair, so that works for
50 instances at once, and it costs no extra state (no table, no tags on the instance). The
token is not carried: ``CompleteLifecycleAction`` accepts the instance id instead, and a
token is per instance anyway. The comment is limited to 100 characters; when the two names do
not fit, the comment is plain ``proxymx`` and CheckOutcome falls back to looking the group up
(``DescribeAutoScalingInstances``) and the hook (``DescribeLifecycleHooks``, our hook names).
"""

from __future__ import annotations

import json

from proxymx.frozen import frozen

COMMENT_PREFIX = "proxymx"
MAX_COMMENT = 100  # SendCommand Comment, botocore model


@frozen
class ActionContext:
    group_name: str
    hook_name: str


def encode_comment(group_name: str, hook_name: str) -> str:
    encoded = f"{COMMENT_PREFIX}:" + json.dumps([group_name, hook_name], separators=(",", ":"))
    return encoded if len(encoded) <= MAX_COMMENT else COMMENT_PREFIX


def decode_comment(comment: str) -> ActionContext | None:
    if not comment.startswith(f"{COMMENT_PREFIX}:"):
        return None
    try:
        data = json.loads(comment[len(COMMENT_PREFIX) + 1 :])
    except json.JSONDecodeError:
        return None
    if isinstance(data, list) and len(data) == 2 and all(isinstance(item, str) and item for item in data):
        return ActionContext(group_name=data[0], hook_name=data[1])
    return None
