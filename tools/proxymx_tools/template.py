"""Read ``template.yaml``: the single source of truth for rules, functions and the SSM document.

Used by the command line (``proxymx invoke`` routes events through the template's real
EventBridge patterns), by the tests and by ``make lint`` (``python -m proxymx_tools.template
document-script`` prints the document's shell script for shellcheck). Never imported by
a Lambda handler: PyYAML is not in the layer.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
DOCUMENT_LOGICAL_ID = "PostfixProxyProtocolDocument"


def _cfn_loader() -> Any:
    import yaml

    class CfnLoader(yaml.SafeLoader):
        pass

    def construct(loader: Any, tag_suffix: str, node: Any) -> dict[str, Any]:
        name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "Fn::GetAtt" and isinstance(value, str):
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    CfnLoader.add_multi_constructor("!", construct)
    return CfnLoader


@lru_cache(maxsize=8)
def _load(path: str) -> dict[str, Any]:
    import yaml

    with open(path, encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=_cfn_loader())  # noqa: S506 - SafeLoader subclass
    if not isinstance(data, dict) or "Resources" not in data:
        raise ValueError(f"{path} is not a CloudFormation/SAM template")
    return data


def load_template(path: str | Path | None = None) -> dict[str, Any]:
    return _load(str(Path(path or DEFAULT_TEMPLATE).resolve()))


@dataclass(frozen=True)
class RuleTarget:
    kind: str  # "function" or "queue"
    logical_id: str


@dataclass(frozen=True)
class EventRule:
    logical_id: str
    pattern: dict[str, Any]
    targets: tuple[RuleTarget, ...] = field(default_factory=tuple)


def _ref_id(value: Any) -> str | None:
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


# A schedule has no pattern: it sends a "Scheduled Event" whose resources name the rule's ARN,
# unknown before deployment, so locally it is the rule matching any scheduled event.
SCHEDULE_PATTERN: dict[str, Any] = {"source": ["aws.events"], "detail-type": ["Scheduled Event"]}


def event_rules(template: dict[str, Any]) -> list[EventRule]:
    """Every EventBridge rule of the template with what it targets.

    Covers both spellings: an ``EventBridgeRule`` event source on a SAM function, and a
    plain ``AWS::Events::Rule`` targeting a function or an SQS queue; a ``Schedule`` event
    source becomes a rule with :data:`SCHEDULE_PATTERN`.
    """
    rules: list[EventRule] = []
    for logical_id, resource in template["Resources"].items():
        rtype = resource.get("Type")
        props = resource.get("Properties", {}) or {}
        if rtype == "AWS::Serverless::Function":
            for event_id, event in (props.get("Events") or {}).items():
                if event.get("Type") in ("EventBridgeRule", "CloudWatchEvent"):
                    pattern = event["Properties"]["Pattern"]
                    rules.append(
                        EventRule(f"{logical_id}{event_id}", pattern, (RuleTarget("function", logical_id),))
                    )
                elif event.get("Type") == "Schedule":
                    rules.append(
                        EventRule(
                            f"{logical_id}{event_id}", SCHEDULE_PATTERN, (RuleTarget("function", logical_id),)
                        )
                    )
        elif rtype == "AWS::Events::Rule" and "EventPattern" in props:
            targets = []
            for target in props.get("Targets", []):
                target_id = _ref_id(target.get("Arn"))
                if target_id is None:
                    continue
                target_type = template["Resources"].get(target_id, {}).get("Type", "")
                kind = "queue" if target_type == "AWS::SQS::Queue" else "function"
                targets.append(RuleTarget(kind, target_id))
            rules.append(EventRule(logical_id, props["EventPattern"], tuple(targets)))
    return rules


def queue_consumers(template: dict[str, Any], queue_logical_id: str) -> list[str]:
    """Functions that consume an SQS queue: an SAM ``SQS`` event source, or a plain
    ``AWS::Lambda::EventSourceMapping`` (what LaunchQueue uses, to keep SAM's broad SQS policy off)."""
    consumers = []
    for logical_id, resource in template["Resources"].items():
        rtype = resource.get("Type")
        props = resource.get("Properties", {}) or {}
        if rtype == "AWS::Lambda::EventSourceMapping":
            function_id = _ref_id(props.get("FunctionName"))
            if function_id and _ref_id(props.get("EventSourceArn")) == queue_logical_id:
                consumers.append(function_id)
        elif rtype == "AWS::Serverless::Function":
            for event in (props.get("Events") or {}).values():
                queue_id = _ref_id(event.get("Properties", {}).get("Queue"))
                if event.get("Type") == "SQS" and queue_id == queue_logical_id:
                    consumers.append(logical_id)
    return consumers


@dataclass(frozen=True)
class FunctionEntry:
    logical_id: str
    code_dir: Path
    module: str
    handler: str


def function_entry(
    template: dict[str, Any], logical_id: str, template_path: Path | None = None
) -> FunctionEntry:
    props = template["Resources"][logical_id]["Properties"]
    globals_fn = template.get("Globals", {}).get("Function", {})
    handler = props.get("Handler", globals_fn.get("Handler"))
    module, _, func = handler.rpartition(".")
    base = (template_path or DEFAULT_TEMPLATE).resolve().parent
    return FunctionEntry(logical_id, base / props["CodeUri"], module, func)


def function_environment(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """Globals + function environment variables, unresolved (intrinsics left as dicts)."""
    env: dict[str, Any] = dict(
        template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    )
    props = template["Resources"][logical_id].get("Properties", {})
    env.update(props.get("Environment", {}).get("Variables", {}))
    return env


def document(template: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = template["Resources"][DOCUMENT_LOGICAL_ID]["Properties"]["Content"]
    return content


def document_script(template: dict[str, Any]) -> str:
    """The exact shell text the SSM document runs (``aws:runShellScript`` runCommand)."""
    steps = document(template)["mainSteps"]
    commands = steps[0]["inputs"]["runCommand"]
    text = commands if isinstance(commands, str) else "\n".join(commands)
    return text if text.endswith("\n") else text + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["document-script"]:
        sys.stdout.write(document_script(load_template(args[1] if len(args) > 1 else None)))
        return 0
    print("usage: python -m proxymx_tools.template document-script [TEMPLATE]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
