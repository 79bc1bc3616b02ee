"""The embedded AWS: moto, in-process, plus proxymx's documented extension of it.

Everything local (tests, ``proxymx invoke --backend moto``, ``make demo``) enters the embedded
AWS through :func:`embedded_aws` so that they all see the same behaviour.

The extension (:class:`LaunchExtension`, ``EmbeddedAws.launch``) fills what moto 5 lacks for the
launch flow and for the NLB header attributes (issue 8), and nothing else (see
docs/embedded-aws.md):

=========================================  ==================================================
moto lacks / gets wrong                     the extension
=========================================  ==================================================
``autoscaling.complete_lifecycle_action``  emulated: lifecycle action state per instance,
``autoscaling.record_lifecycle_action_``   ``Pending:Wait`` -> ``InService`` (CONTINUE) or
``heartbeat``                              ``Terminating`` (ABANDON); warm pool alike
instances never wait in ``Pending:Wait``   ``LifecycleState`` overlaid on moto's answers to
                                           ``describe_auto_scaling_instances`` / ``_groups``
``ssm.describe_instance_information``      emulated: SSM registration per instance, late
                                           agents Online after N polls or when told; an
                                           ``InstanceIds`` filter naming any unregistered
                                           instance raises ``InvalidInstanceId`` (as AWS)
``ssm.list_command_invocations``           emulated from moto's commands + the outcomes
``send_command`` adds every instance when   the command is re-targeted to its ``InstanceIds``
no ``Targets``; all ``Success``, no script  (or ``Targets``); unregistered instances raise
                                           ``InvalidInstanceId``; the document must exist and
                                           the parameters must satisfy its allowedPattern /
                                           allowedValues; each invocation gets a SCRIPTED
                                           outcome (:class:`CommandOutcome`) or a REAL one
                                           (:class:`RealDocument`: the document's script runs
                                           on this machine against a private ``MAIL_CONFIG``)
``ec2.describe_instances`` filter           mapped to moto's ``private-ip-address`` (its
``network-interface.addresses.private-``    instances have one address: the primary one);
``ip-address`` (NotImplementedError)        the interlock maps NLB IP targets with it
``get_command_invocation`` is never late   ``CommandOutcome.hidden_reads``: answers
                                           ``InvocationDoesNotExist`` that many times first
no EventBridge events from SSM             :meth:`LaunchExtension.drain_status_events` returns
                                           the status-change events a real account would send
``elbv2.modify_target_group_attributes``   ``..header_placement`` must be ``on_first_ack`` or
accepts any key and value; every account   ``on_first_ack_with_payload`` (ValidationError);
may set ``header_placement``               :meth:`LaunchExtension.refuse_header_placement` makes
                                           an account that AWS Support has not allowed: a call
                                           carrying ``on_first_ack`` fails as a whole
                                           (ValidationError, an ASSUMED code: no public source)
``describe_target_group_attributes`` lacks  ``preserve_client_ip.enabled`` overlaid with AWS's
``preserve_client_ip.enabled``              default when unset (instance: true; ip: false)
=========================================  ==================================================

Mechanism: a client observer (:func:`proxymx.aws.add_client_observer`) registers botocore
handlers on every client proxymx creates. ``before-call`` handlers answer the missing operations
(short-circuit: moto never sees them); ``after-call`` handlers overlay state on moto's answers.
Requests were already validated by botocore against the service model before ``before-call``;
every emulated or overlaid RESPONSE is validated against the operation's output shape too, so
the extension cannot drift from the real API. A client created elsewhere can be attached with
:meth:`LaunchExtension.attach`.

Threads: AWS applies each request atomically (a conditional PutItem, a CompleteLifecycleAction
that only one caller can win); moto's backends and the extension's state are plain Python
objects with check-then-act code. The concurrency tests (tests/integration/test_concurrency.py)
call the handlers from 8 threads at once, so every request the embedded AWS answers (moto's
``before-send`` stubber, the extension's emulated answers and overlays) runs under ONE lock,
:data:`BACKEND_LOCK`: requests interleave as they do in AWS, never half-way through one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from proxymx import aws
from proxymx.launch.runcommand import limit_violations

from proxymx_tools.summary import failed_summary, proving_summary

FAKE_ACCOUNT = "123456789012"
# GetCommandInvocation returns the first 24,000 characters of each stream (SSM API reference).
SSM_OUTPUT_LIMIT = 24000
WAITING = ("Pending:Wait", "Warmed:Pending:Wait")

Handler = Callable[..., Any]
# One request at a time inside the embedded AWS (see "Threads" above). Re-entrant: an emulated
# answer may read moto's backends, which an overlay of the same request also does.
BACKEND_LOCK = threading.RLock()


# ----------------------------------------------------------------------------- outcomes
@dataclass(frozen=True)
class CommandOutcome:
    """A scripted invocation result.

    ``hidden_reads``: GetCommandInvocation answers ``InvocationDoesNotExist`` that many times
    before showing the invocation (SSM's eventual consistency right after the status event).
    """

    status: str = "Success"
    stdout: str = ""
    stderr: str = ""
    response_code: int = 0
    hidden_reads: int = 0

    @classmethod
    def configured(cls, **summary: Any) -> CommandOutcome:
        return cls("Success", "postfix: configured\n" + proving_summary(**summary) + "\n", "", 0)

    @classmethod
    def failed(cls, reason: str = "postfix check failed", exit_code: int = 1) -> CommandOutcome:
        return cls(
            "Failed",
            f"restoring backup\n{failed_summary(reason)}\n",
            f"proxymx: {reason}\nrolled back main.cf and master.cf\n",
            exit_code,
        )

    @classmethod
    def timed_out(cls) -> CommandOutcome:
        return cls("TimedOut", "", "the command timed out\n", -1)

    @classmethod
    def undeliverable(cls) -> CommandOutcome:
        return cls("Undeliverable", "", "", -1)

    @classmethod
    def cancelled(cls) -> CommandOutcome:
        return cls("Cancelled", "", "", -1)


@dataclass(frozen=True)
class RealDocument:
    """Run the document's real script (``proxymx_tools.document.run_document``) for the invocation."""

    mail_config: Path
    template_path: Path | None = None
    timeout: float = 120

    def run(self, parameters: Mapping[str, str]) -> CommandOutcome:
        from proxymx_tools.document import run_document

        run = run_document(
            dict(parameters),
            mail_config=self.mail_config,
            template_path=self.template_path,
            timeout=self.timeout,
        )
        if run.timed_out:
            # SSM reports an execution timeout as TimedOut with ResponseCode -1.
            return CommandOutcome("TimedOut", run.stdout, run.stderr, -1)
        code = run.exit_code
        return CommandOutcome("Success" if code == 0 else "Failed", str(run.stdout), str(run.stderr), code)


@dataclass(frozen=True)
class ObedientDocument:
    """A stand-in for the document that does what each run asks (``Mode``, ``SmtpPorts``,
    ``ProxyProtocol``) and proves it with a schema-2 summary at the current configuration level:
    what the cutover and the way back need from a fleet (no Postfix runs). ``failing``: instances
    whose run fails as the real script's rollback would report it."""

    failing: frozenset[str] = frozenset()
    ipv6_clients: bool = True

    def run(self, parameters: Mapping[str, str], instance_id: str = "") -> CommandOutcome:
        if instance_id in self.failing:
            return CommandOutcome.failed("postfix check: fatal: scripted failure")
        from proxymx.loadbalancer.readiness import REQUIRED_CONFIG_LEVEL

        mode = parameters.get("Mode", "configure")
        ports = [int(p) for p in parameters.get("SmtpPorts", "25").split(",")]
        summary = {
            "proxymx": "postfix-summary",
            "schema": 2,
            "result": "configured" if mode == "configure" else "reverted",
            "mode": mode,
            "postfix_version": "3.7.11",
            "proxy_protocol": parameters.get("ProxyProtocol", "any"),
            "accepts": "any" if mode == "configure" else None,
            "config_level": REQUIRED_CONFIG_LEVEL,
            "ipv6_clients": self.ipv6_clients and mode == "configure",
            "smtp_ports": ports,
            "changed": ["main.cf:postscreen_upstream_proxy_protocol"],
            "verified": {"postscreen_upstream_proxy_protocol": "haproxy"} if mode == "configure" else {},
            "listening": True,
            "running": True,
            "dry_run": parameters.get("DryRun") == "true",
            "reason": None,
        }
        return CommandOutcome("Success", f"postfix: {mode}\n{json.dumps(summary, separators=(',', ':'))}\n")


Outcome = CommandOutcome | RealDocument | ObedientDocument


# The invocation Status the API reports for a status that is only a StatusDetails value there
# (CommandInvocationStatus has no Undeliverable, DeliveryTimedOut, ...); the status event keeps it.
API_STATUS = {
    "Undeliverable": "Failed",
    "Terminated": "Failed",
    "DeliveryTimedOut": "TimedOut",
    "ExecutionTimedOut": "TimedOut",
}


# ----------------------------------------------------------------------------- state
@dataclass
class Registration:
    ping_status: str = "Online"
    polls_left: int = 0  # not listed at all until this many DescribeInstanceInformation polls


@dataclass
class LifecycleAction:
    group_name: str
    hook_name: str
    instance_id: str
    token: str
    state: str = "Pending:Wait"
    result: str | None = None
    heartbeats: int = 0

    @property
    def active(self) -> bool:
        return self.state in WAITING


class EmulatedError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _response(status: int) -> Any:
    from botocore.awsrequest import AWSResponse, HTTPHeaders

    return AWSResponse("https://embedded.proxymx.local/", status, HTTPHeaders(), None)


def _model_errors(model: Any, parsed: Mapping[str, Any]) -> set[str]:
    from botocore.validate import ParamValidator

    shape = model.output_shape
    if shape is None:
        return set()
    body = {key: value for key, value in parsed.items() if key != "ResponseMetadata"}
    report = ParamValidator().validate(body, shape)
    errors = set(report.generate_report().splitlines()) if report.has_errors() else set()
    return errors | set(_enum_violations(body, shape))


def _enum_violations(value: Any, shape: Any, path: str = "") -> list[str]:
    """Values outside the model's enums (botocore's validator does not check enums)."""
    found: list[str] = []
    if shape.type_name == "structure" and isinstance(value, Mapping):
        for name, member in value.items():
            if name in shape.members:
                found += _enum_violations(member, shape.members[name], f"{path}.{name}" if path else name)
    elif shape.type_name == "list" and isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found += _enum_violations(item, shape.member, f"{path}[{index}]")
    elif shape.type_name == "map" and isinstance(value, Mapping):
        for key, item in value.items():
            found += _enum_violations(item, shape.value, f"{path}.{key}")
    elif shape.type_name == "string" and isinstance(value, str) and shape.enum and value not in shape.enum:
        found.append(f"{path}: {value!r} is not one of {shape.enum}")
    return found


def _validate_output(model: Any, parsed: Mapping[str, Any], tolerated: set[str] | None = None) -> None:
    """Every answer the extension makes up (or overlays) must fit the real operation's output
    shape. ``tolerated``: moto's own deviations in an answer we overlay (not ours to fix)."""
    errors = _model_errors(model, parsed) - (tolerated or set())
    if errors:
        raise AssertionError(f"embedded AWS answer for {model.name} breaks the model: {sorted(errors)}")


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _parse_when(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


class LaunchExtension:
    """State and botocore handlers filling moto's gaps for the launch flow."""

    def __init__(
        self, region: str, default_outcome: Outcome | None = None, account: str = FAKE_ACCOUNT
    ) -> None:
        self.region = region
        self.account = account  # moto keeps a backend per account (MOTO_ACCOUNT_ID)
        self.registrations: dict[str, Registration] = {}
        self.actions: dict[str, LifecycleAction] = {}
        self.outcomes: dict[str, Outcome] = {}
        self.default_outcome: Outcome = default_outcome or CommandOutcome.configured()
        self.hidden: dict[tuple[str, str], int] = {}
        self.status_events: list[dict[str, Any]] = []
        self.sent_commands: list[str] = []
        # An account AWS Support has not allowed to set header_placement=on_first_ack.
        self.header_placement_refused = False

    # ------------------------------------------------------------------ test/demo API
    def refuse_header_placement(self, refused: bool = True) -> None:
        """Act as an account that may not set ``header_placement=on_first_ack`` (the default)."""
        self.header_placement_refused = refused

    def register_instance(
        self, instance_id: str, *, online_after_polls: int = 0, ping_status: str = "Online"
    ) -> None:
        """Register the instance's SSM agent; a late agent stays unlisted for N polls."""
        self.registrations[instance_id] = Registration(ping_status, online_after_polls)

    def set_online(self, instance_id: str) -> None:
        self.registrations[instance_id] = Registration("Online", 0)

    def set_ping_status(self, instance_id: str, ping_status: str) -> None:
        self.registrations.setdefault(instance_id, Registration()).ping_status = ping_status

    def hold_in_wait(
        self,
        group_name: str,
        instance_id: str,
        hook_name: str,
        *,
        warm: bool = False,
        token: str | None = None,
    ) -> str:
        """Hold the instance in ``Pending:Wait`` (``Warmed:Pending:Wait``) for the hook; the token."""
        token = token or str(uuid.uuid4())
        state = "Warmed:Pending:Wait" if warm else "Pending:Wait"
        self.actions[instance_id] = LifecycleAction(group_name, hook_name, instance_id, token, state)
        return token

    def expire_action(self, instance_id: str, default_result: str = "ABANDON") -> None:
        """The hook's heartbeat timed out: the default result applies, the action is gone."""
        action = self.actions[instance_id]
        self._finish(action, default_result)

    def lifecycle_state(self, instance_id: str) -> str | None:
        action = self.actions.get(instance_id)
        if action is not None:
            return action.state
        states = self._moto_instance_states()
        return states[instance_id].lifecycle_state if instance_id in states else None

    def script_outcome(self, outcome: Outcome, *instance_ids: str) -> None:
        """Scripted (or real) outcome for these instances; with no ids, for every instance."""
        if not instance_ids:
            self.default_outcome = outcome
        for instance_id in instance_ids:
            self.outcomes[instance_id] = outcome

    def use_real_document(
        self, mail_config: Path, template_path: Path | None = None, timeout: float = 120
    ) -> None:
        self.default_outcome = RealDocument(Path(mail_config), template_path, timeout)

    def launch_into_wait(
        self,
        group_name: str,
        hook_name: str,
        count: int = 1,
        *,
        origin: str = "EC2",
        destination: str = "AutoScalingGroup",
        register: bool = True,
        online_after_polls: int = 0,
    ) -> list[dict[str, Any]]:
        """Scale the group out by ``count``; the new instances wait for the hook. Returns the
        ``EC2 Instance-launch Lifecycle Action`` events Auto Scaling would send."""
        backend = self._autoscaling_backend()
        group = backend.autoscaling_groups[group_name]
        before = {state.instance.id for state in group.instance_states}
        target = len(group.active_instances()) + count
        group.max_size = max(group.max_size, target)
        backend.set_desired_capacity(group_name, target)
        new_ids = sorted(
            state.instance.id for state in group.instance_states if state.instance.id not in before
        )
        events = []
        for instance_id in new_ids:
            token = self.hold_in_wait(group_name, instance_id, hook_name, warm=destination == "WarmPool")
            if register:
                self.register_instance(instance_id, online_after_polls=online_after_polls)
            events.append(
                lifecycle_event(
                    group_name,
                    hook_name,
                    instance_id,
                    token,
                    region=self.region,
                    origin=origin,
                    destination=destination,
                )
            )
        return events

    def drain_status_events(self) -> list[dict[str, Any]]:
        """The SSM invocation status-change events of commands finished since the last drain."""
        events, self.status_events = self.status_events, []
        return events

    def status_change_event(self, command_id: str, instance_id: str) -> dict[str, Any]:
        command = self._ssm_backend().get_command_by_id(command_id)
        invocation = command.get_invocation(instance_id, None)
        return invocation_status_event(
            command_id,
            instance_id,
            str(command.document_name),
            str(invocation["Status"]),
            requested=command.requested_date_time,
            region=self.region,
        )

    # ------------------------------------------------------------------ wiring
    def attach(self, client: Any) -> None:
        """Register the handlers on one client (done for every proxymx client automatically)."""
        service = client.meta.service_model.service_name
        service_id = client.meta.service_model.service_id.hyphenize()
        events = client.meta.events
        events.register(f"before-parameter-build.{service_id}", self._remember_params)
        for operation, handler in self._before.get(service, {}).items():
            events.register(f"before-call.{service_id}.{operation}", self._short_circuit(handler))
        for operation, overlay in self._after.get(service, {}).items():
            events.register(f"after-call.{service_id}.{operation}", self._overlaying(overlay))

    @property
    def _before(self) -> dict[str, dict[str, Handler]]:
        return {
            "autoscaling": {
                "CompleteLifecycleAction": self._complete_lifecycle_action,
                "RecordLifecycleActionHeartbeat": self._record_heartbeat,
            },
            "ssm": {
                "DescribeInstanceInformation": self._describe_instance_information,
                "ListCommandInvocations": self._list_command_invocations,
                "SendCommand": self._check_send_command,
                "GetCommandInvocation": self._maybe_hide_invocation,
            },
            "elbv2": {"ModifyTargetGroupAttributes": self._check_target_group_attributes},
        }

    @property
    def _after(self) -> dict[str, dict[str, Handler]]:
        return {
            "autoscaling": {
                "DescribeAutoScalingInstances": self._overlay_instances,
                "DescribeAutoScalingGroups": self._overlay_groups,
            },
            "ssm": {"SendCommand": self._run_command},
            "elbv2": {"DescribeTargetGroupAttributes": self._overlay_preserve_client_ip},
        }

    @staticmethod
    def _remember_params(params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["proxymx_params"] = dict(params)

    def _short_circuit(self, handler: Handler) -> Handler:
        def before_call(model: Any, context: dict[str, Any], **_: Any) -> Any:
            with BACKEND_LOCK:
                return answer(model, context)

        def answer(model: Any, context: dict[str, Any]) -> Any:
            params = context.get("proxymx_params", {})
            try:
                violations = limit_violations(params, model.input_shape)
                if violations:  # the service answers what botocore does not check
                    raise EmulatedError("ValidationException", "; ".join(violations))
                parsed = handler(params)
            except EmulatedError as exc:
                return _response(exc.status), {
                    "Error": {"Code": exc.code, "Message": exc.message},
                    "ResponseMetadata": {"HTTPStatusCode": exc.status},
                }
            if parsed is None:  # not ours to answer: let moto do it
                return None
            _validate_output(model, parsed)
            parsed.setdefault("ResponseMetadata", {"HTTPStatusCode": 200, "RequestId": str(uuid.uuid4())})
            return _response(200), parsed

        return before_call

    def _overlaying(self, overlay: Handler) -> Handler:
        def after_call(
            http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
        ) -> None:
            if http_response.status_code >= 300:
                return
            with BACKEND_LOCK:
                tolerated = _model_errors(model, parsed)
                overlay(context.get("proxymx_params", {}), parsed)
                _validate_output(model, parsed, tolerated)

        return after_call

    # ------------------------------------------------------------------ ELBv2 (issue 8)
    def _check_target_group_attributes(self, params: Mapping[str, Any]) -> None:
        """Refuse what AWS refuses; let moto apply the rest (None: moto answers)."""
        from proxymx.loadbalancer.nlbheader import HEADER_PLACEMENT, HEADER_PLACEMENTS, ON_FIRST_ACK

        for attribute in params.get("Attributes", []):
            if attribute.get("Key") != HEADER_PLACEMENT:
                continue
            value = attribute.get("Value")
            if value not in HEADER_PLACEMENTS:
                raise EmulatedError(
                    "ValidationError", f"'{value}' is not a valid value for {HEADER_PLACEMENT}"
                )
            if value == ON_FIRST_ACK and self.header_placement_refused:
                # The whole call fails: none of its attributes is applied (moto never sees it).
                raise EmulatedError(
                    "ValidationError",
                    f"Target group attribute '{HEADER_PLACEMENT}' cannot be set to '{ON_FIRST_ACK}' "
                    "for this account",
                )
        # Nothing returned: moto applies the call.

    def _overlay_preserve_client_ip(self, params: Mapping[str, Any], parsed: dict[str, Any]) -> None:
        from moto.elbv2.models import elbv2_backends
        from proxymx.loadbalancer.nlbheader import PRESERVE_CLIENT_IP, preserve_client_ip_default

        attributes = parsed.setdefault("Attributes", [])
        if any(a.get("Key") == PRESERVE_CLIENT_IP for a in attributes):
            return
        group = elbv2_backends[FAKE_ACCOUNT][self.region].target_groups.get(str(params.get("TargetGroupArn")))
        if group is None:
            return
        default = preserve_client_ip_default(group.target_type, group.protocol)
        attributes.append({"Key": PRESERVE_CLIENT_IP, "Value": str(default).lower()})

    # ------------------------------------------------------------------ moto access
    def _autoscaling_backend(self) -> Any:
        from moto.autoscaling.models import autoscaling_backends

        return autoscaling_backends[self.account][self.region]

    def _ssm_backend(self) -> Any:
        from moto.ssm.models import ssm_backends

        return ssm_backends[self.account][self.region]

    def _ec2_backend(self) -> Any:
        from moto.ec2.models import ec2_backends

        return ec2_backends[self.account][self.region]

    def _moto_instance_states(self) -> dict[str, Any]:
        return {
            state.instance.id: state
            for group in self._autoscaling_backend().autoscaling_groups.values()
            for state in group.instance_states
        }

    # ------------------------------------------------------------------ Auto Scaling
    def _active_action(self, params: Mapping[str, Any]) -> LifecycleAction:
        instance_id = params.get("InstanceId")
        token = params.get("LifecycleActionToken")
        action = None
        if instance_id:
            action = self.actions.get(instance_id)
        elif token:
            action = next((a for a in self.actions.values() if a.token == token), None)
        if (
            action is None
            or not action.active
            or action.group_name != params.get("AutoScalingGroupName")
            or action.hook_name != params.get("LifecycleHookName")
            or (token and action.token != token)
        ):
            what = f"instance ID {instance_id}" if instance_id else f"token {token}"
            raise EmulatedError("ValidationError", f"No active Lifecycle Action found with {what}")
        return action

    def _finish(self, action: LifecycleAction, result: str) -> None:
        warm = action.state.startswith("Warmed:")
        action.result = result
        if result == "CONTINUE":
            action.state = "Warmed:Stopped" if warm else "InService"
        else:
            action.state = "Warmed:Terminating" if warm else "Terminating"

    def _complete_lifecycle_action(self, params: Mapping[str, Any]) -> dict[str, Any]:
        action = self._active_action(params)
        self._finish(action, str(params["LifecycleActionResult"]))
        return {}

    def _record_heartbeat(self, params: Mapping[str, Any]) -> dict[str, Any]:
        self._active_action(params).heartbeats += 1
        return {}

    def _overlay_instances(self, _params: Mapping[str, Any], parsed: dict[str, Any]) -> None:
        for item in parsed.get("AutoScalingInstances", []):
            action = self.actions.get(item.get("InstanceId", ""))
            if action is not None:
                item["LifecycleState"] = action.state

    def _overlay_groups(self, _params: Mapping[str, Any], parsed: dict[str, Any]) -> None:
        for group in parsed.get("AutoScalingGroups", []):
            for item in group.get("Instances", []):
                action = self.actions.get(item.get("InstanceId", ""))
                if action is not None:
                    item["LifecycleState"] = action.state

    # ------------------------------------------------------------------ SSM registration
    def _describe_instance_information(self, params: Mapping[str, Any]) -> dict[str, Any]:
        wanted: set[str] | None = None
        ping: set[str] | None = None
        for flt in params.get("Filters", []):
            if flt["Key"] == "InstanceIds":
                wanted = set(flt["Values"])
            elif flt["Key"] == "PingStatus":
                ping = set(flt["Values"])
        for flt in params.get("InstanceInformationFilterList", []):
            if flt["key"] == "InstanceIds":
                wanted = set(flt["valueSet"])
            elif flt["key"] == "PingStatus":
                ping = set(flt["valueSet"])
        if wanted is not None:
            # Like AWS: an InstanceIds filter naming any instance SSM does not know (its agent
            # not registered yet, or a made-up id) raises InvalidInstanceId for the whole call,
            # instead of listing the known ones (issue 10). Each call is one poll of a late agent.
            unknown = sorted(
                i for i in wanted if i not in self.registrations or self.registrations[i].polls_left > 0
            )
            if unknown:
                for instance_id in unknown:
                    if instance_id in self.registrations:
                        self.registrations[instance_id].polls_left -= 1
                message = f"Instances {unknown} not in a valid state for account"
                raise EmulatedError("InvalidInstanceId", message)
        listed = []
        for instance_id, registration in sorted(self.registrations.items()):
            if wanted is not None and instance_id not in wanted:
                continue
            if registration.polls_left > 0:
                registration.polls_left -= 1
                continue
            if ping is not None and registration.ping_status not in ping:
                continue
            listed.append(self._instance_information(instance_id, registration))
        start = int(params.get("NextToken", "0") or 0)
        size = int(params.get("MaxResults", 50))
        page: dict[str, Any] = {"InstanceInformationList": listed[start : start + size]}
        if start + size < len(listed):
            page["NextToken"] = str(start + size)
        return page

    def _instance_information(self, instance_id: str, registration: Registration) -> dict[str, Any]:
        return {
            "InstanceId": instance_id,
            "PingStatus": registration.ping_status,
            "LastPingDateTime": datetime.now(UTC),
            "AgentVersion": "3.3.1142.0",
            "IsLatestVersion": True,
            "PlatformType": "Linux",
            "PlatformName": "Debian GNU/Linux",
            "PlatformVersion": "12",
            "ResourceType": "EC2Instance",
            "ComputerName": f"{instance_id}.ec2.internal",
        }

    # ------------------------------------------------------------------ SSM commands
    def _targets(self, params: Mapping[str, Any]) -> list[str]:
        ids = list(params.get("InstanceIds", []))
        for target in params.get("Targets", []):
            key, values = target["Key"], target["Values"]
            if key == "InstanceIds":
                ids.extend(values)
            elif key.startswith("tag:") or key == "tag-key":
                filters = {key: values}
                for reservation in self._ec2_backend().all_reservations(filters=filters):
                    ids.extend(instance.id for instance in reservation.instances)
        return sorted(set(ids))

    def _document_parameters(self, name: str) -> dict[str, Any]:
        documents = self._ssm_backend()._documents.get(name)
        if documents is None:
            raise EmulatedError("InvalidDocument", f"Document {name} does not exist")
        content = documents.get_default_version().content
        if isinstance(content, dict):
            data = content
        else:
            try:
                data = json.loads(content)
            except json.JSONDecodeError:
                import yaml

                data = yaml.safe_load(content)
        params: dict[str, Any] = data.get("parameters", {}) or {}
        return params

    def _check_send_command(self, params: Mapping[str, Any]) -> None:
        declared = self._document_parameters(str(params["DocumentName"]))
        given: Mapping[str, list[str]] = params.get("Parameters", {})
        for name, values in given.items():
            spec = declared.get(name)
            if spec is None:
                raise EmulatedError("InvalidParameters", f"Parameter {name} is not declared by the document")
            for value in values:
                pattern = spec.get("allowedPattern")
                if pattern and not re.search(pattern, value):
                    raise EmulatedError("InvalidParameters", f"Parameter {name}={value!r} fails {pattern}")
                allowed = spec.get("allowedValues")
                if allowed and value not in allowed:
                    raise EmulatedError("InvalidParameters", f"Parameter {name}={value!r} not in {allowed}")
        missing = [n for n, spec in declared.items() if "default" not in spec and n not in given]
        if missing:
            raise EmulatedError("InvalidParameters", f"required parameters missing: {missing}")
        targets = self._targets(params)
        if not targets:
            raise EmulatedError("ValidationException", "SendCommand needs InstanceIds or Targets")
        unknown = [i for i in targets if i not in self.registrations or self.registrations[i].polls_left > 0]
        if unknown:
            raise EmulatedError("InvalidInstanceId", f"Instances {unknown} not in a valid state for account")

    def _maybe_hide_invocation(self, params: Mapping[str, Any]) -> None:
        key = (str(params.get("CommandId")), str(params.get("InstanceId")))
        left = self.hidden.get(key, 0)
        if left > 0:
            self.hidden[key] = left - 1
            raise EmulatedError(
                "InvocationDoesNotExist",
                "An error occurred (InvocationDoesNotExist) when calling the GetCommandInvocation operation",
            )

    def _run_command(self, params: Mapping[str, Any], parsed: dict[str, Any]) -> None:
        command_id = parsed["Command"]["CommandId"]
        command = self._ssm_backend().get_command_by_id(command_id)
        targets = self._targets(params)
        parameters = {key: values[0] for key, values in command.parameters.items() if values}
        for name, spec in self._document_parameters(str(command.document_name)).items():
            if name not in parameters and "default" in spec:
                parameters[name] = str(spec["default"])
        command.instance_ids = list(targets)
        command.invocations = []
        statuses = []
        for instance_id in targets:
            started = datetime.now(UTC)
            outcome = self._outcome_for(instance_id, parameters)
            ended = datetime.now(UTC)
            invocation = command.invocation_response(instance_id, "aws:runShellScript")
            # moto says every run took five minutes; say how long this one really took.
            invocation.update(
                ExecutionStartDateTime=started.isoformat(),
                ExecutionEndDateTime=ended.isoformat(),
                ExecutionElapsedTime=f"PT{(ended - started).total_seconds():.3f}S",
                Status=API_STATUS.get(outcome.status, outcome.status),
                StatusDetails=outcome.status,
                ResponseCode=outcome.response_code,
                StandardOutputContent=outcome.stdout[:SSM_OUTPUT_LIMIT],
                StandardErrorContent=outcome.stderr[:SSM_OUTPUT_LIMIT],
            )
            command.invocations.append(invocation)
            statuses.append(outcome.status)
            if outcome.hidden_reads:
                self.hidden[(command_id, instance_id)] = outcome.hidden_reads
            self.status_events.append(
                invocation_status_event(
                    command_id,
                    instance_id,
                    str(command.document_name),
                    outcome.status,
                    requested=command.requested_date_time,
                    region=self.region,
                )
            )
        failed = [s for s in statuses if s != "Success"]
        command.status = "Success" if not failed else ("TimedOut" if "TimedOut" in failed else "Failed")
        command.status_details = command.status
        command.error_count = len(failed)
        command.target_count = command.completed_count = len(targets)
        self.sent_commands.append(command_id)
        parsed["Command"].update(
            InstanceIds=list(targets),
            TargetCount=len(targets),
            CompletedCount=0,
            Status="Pending",
            StatusDetails="Pending",
        )

    def _outcome_for(self, instance_id: str, parameters: Mapping[str, str]) -> CommandOutcome:
        registration = self.registrations.get(instance_id)
        if registration is not None and registration.ping_status != "Online":
            return CommandOutcome.undeliverable()
        outcome = self.outcomes.get(instance_id, self.default_outcome)
        if isinstance(outcome, RealDocument):
            return outcome.run(parameters)
        if isinstance(outcome, ObedientDocument):
            return outcome.run(parameters, instance_id)
        return outcome

    def _list_command_invocations(self, params: Mapping[str, Any]) -> dict[str, Any]:
        backend = self._ssm_backend()
        command_id = params.get("CommandId")
        instance_id = params.get("InstanceId")
        commands = [backend.get_command_by_id(command_id)] if command_id else list(backend._commands)
        rows = []
        for command in commands:
            for invocation in command.invocations:
                if instance_id and invocation["InstanceId"] != instance_id:
                    continue
                row: dict[str, Any] = {
                    "CommandId": command.command_id,
                    "InstanceId": invocation["InstanceId"],
                    "InstanceName": f"{invocation['InstanceId']}.ec2.internal",
                    "Comment": command.comment,
                    "DocumentName": str(command.document_name),
                    "DocumentVersion": "$DEFAULT",
                    "RequestedDateTime": _parse_when(command.requested_date_time),
                    "Status": invocation["Status"],
                    "StatusDetails": invocation["StatusDetails"],
                    "StandardOutputUrl": "",
                    "StandardErrorUrl": "",
                }
                if params.get("Details"):
                    row["CommandPlugins"] = [
                        {
                            "Name": invocation["PluginName"],
                            "Status": invocation["Status"],
                            "StatusDetails": invocation["StatusDetails"],
                            "ResponseCode": invocation["ResponseCode"],
                            "ResponseStartDateTime": _parse_when(invocation["ExecutionStartDateTime"]),
                            "ResponseFinishDateTime": _parse_when(invocation["ExecutionEndDateTime"]),
                            "Output": (invocation["StandardOutputContent"] or "")[:2500],
                        }
                    ]
                rows.append(row)
        start = int(params.get("NextToken", "0") or 0)
        size = int(params.get("MaxResults", 50))
        page: dict[str, Any] = {"CommandInvocations": rows[start : start + size]}
        if start + size < len(rows):
            page["NextToken"] = str(start + size)
        return page


# ----------------------------------------------------------------------------- events
def lifecycle_event(
    group_name: str,
    hook_name: str,
    instance_id: str,
    token: str,
    *,
    region: str = "us-east-1",
    origin: str = "EC2",
    destination: str = "AutoScalingGroup",
    when: datetime | None = None,
) -> dict[str, Any]:
    """The ``EC2 Instance-launch Lifecycle Action`` event Auto Scaling sends to EventBridge."""
    group_arn = (
        f"arn:aws:autoscaling:{region}:{FAKE_ACCOUNT}:autoScalingGroup:"
        f"{uuid.uuid5(uuid.NAMESPACE_DNS, group_name)}:autoScalingGroupName/{group_name}"
    )
    return _eventbridge_event(
        "EC2 Instance-launch Lifecycle Action",
        "aws.autoscaling",
        region,
        [group_arn],
        when,
        detail={
            "LifecycleActionToken": token,
            "AutoScalingGroupName": group_name,
            "LifecycleHookName": hook_name,
            "EC2InstanceId": instance_id,
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
            "Origin": origin,
            "Destination": destination,
        },
    )


def invocation_status_event(
    command_id: str,
    instance_id: str,
    document_name: str,
    status: str,
    *,
    requested: Any = None,
    region: str = "us-east-1",
) -> dict[str, Any]:
    """The ``EC2 Command Invocation Status-change Notification`` SSM sends to EventBridge."""
    return _eventbridge_event(
        "EC2 Command Invocation Status-change Notification",
        "aws.ssm",
        region,
        [f"arn:aws:ec2:{region}:{FAKE_ACCOUNT}:instance/{instance_id}"],
        None,
        detail={
            "command-id": command_id,
            "document-name": document_name,
            "instance-id": instance_id,
            "requested-date-time": _iso(_parse_when(requested)),
            "status": status,
        },
    )


def _eventbridge_event(
    detail_type: str,
    source: str,
    region: str,
    resources: list[str],
    when: datetime | None,
    *,
    detail: dict[str, Any],
) -> dict[str, Any]:
    """The EventBridge envelope every AWS service event arrives in."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": FAKE_ACCOUNT,
        "time": _iso(when or datetime.now(UTC)),
        "region": region,
        "resources": resources,
        "detail": detail,
    }


def to_sqs_batch(events: Iterable[Mapping[str, Any]], queue_arn: str | None = None) -> dict[str, Any]:
    """Wrap EventBridge events as the SQS batch the launch queue hands to ConfigureInstance."""
    arn = queue_arn or f"arn:aws:sqs:us-east-1:{FAKE_ACCOUNT}:proxymx-launch"
    now_ms = str(int(datetime.now(UTC).timestamp() * 1000))
    records = []
    for event in events:
        body = json.dumps(event)
        records.append(
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": uuid.uuid4().hex,
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now_ms,
                    "SenderId": "AIDAIEXAMPLEEVENTBRIDGE",
                    "ApproximateFirstReceiveTimestamp": now_ms,
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": arn.split(":")[3],
            }
        )
    return {"Records": records}


# ----------------------------------------------------------------------------- entry point
_current: list[LaunchExtension] = []


# The StateTable as a fresh local stack "proxymx" names it (runner resolves !Ref StateTable so).
STATE_TABLE_NAME = "proxymx-StateTable"


def create_state_table(region: str, name: str = STATE_TABLE_NAME) -> None:
    """The template's StateTable (pk + TTL expires_at), so that the launch claims work locally."""
    import boto3

    dynamodb = boto3.client("dynamodb", region_name=region)
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )


# The kill switch as a fresh local stack "proxymx" names it (template.yaml: EnabledParameter).
ENABLED_PARAMETER_NAME = "/proxymx/proxymx/enabled"


def create_enabled_parameter(region: str, name: str = ENABLED_PARAMETER_NAME) -> None:
    """The template's kill switch, on (``true``), as a fresh stack creates it."""
    import boto3

    boto3.client("ssm", region_name=region).put_parameter(Name=name, Value="true", Type="String")


def current_extension() -> LaunchExtension | None:
    """The launch extension of the innermost active :func:`embedded_aws` (seeding, the demo)."""
    return _current[-1] if _current else None


@dataclass
class EmbeddedAws:
    region: str
    launch: LaunchExtension = field(default_factory=lambda: LaunchExtension("us-east-1"))


@contextmanager
def embedded_aws(
    region: str = "us-east-1",
    *,
    account: str | None = None,
    command_outcome: Outcome | None = None,
    mail_config: Path | None = None,
    template_path: Path | None = None,
    refuse_header_placement: bool = False,
) -> Iterator[EmbeddedAws]:
    """Start moto in-process with fake credentials; every proxymx client created inside uses it.

    The launch-flow extension is attached to every client proxymx creates. Commands succeed with
    a proving summary unless told otherwise: ``command_outcome`` scripts every invocation, and
    ``mail_config`` runs the document's real script against that Postfix configuration directory.
    ``refuse_header_placement`` makes an account AWS Support has not allowed ``on_first_ack``.
    ``region`` and ``account`` place the whole world (``proxymx invoke`` passes the event's own).
    """
    from moto import mock_aws

    fake_env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        # moto answers as this account (its default is 123456789012): an event's own account.
        **({"MOTO_ACCOUNT_ID": account} if account else {}),
    }
    extension = LaunchExtension(region, command_outcome, account or FAKE_ACCOUNT)
    extension.refuse_header_placement(refuse_header_placement)
    if mail_config is not None:
        extension.use_real_document(mail_config, template_path)
    from moto.core.botocore_stubber import BotocoreStubber
    from moto.ec2 import utils as ec2_utils

    moto_answer = BotocoreStubber.__call__

    def one_request_at_a_time(self: BotocoreStubber, event_name: str, request: Any, **kwargs: Any) -> Any:
        with BACKEND_LOCK:
            return moto_answer(self, event_name, request, **kwargs)

    # moto 5 raises NotImplementedError for this DescribeInstances filter (see the table above).
    ip_filter = {"network-interface.addresses.private-ip-address": "private_ip"}
    with (
        mock.patch.dict(os.environ, fake_env),
        mock.patch.dict(ec2_utils.filter_dict_attribute_mapping, ip_filter),
        mock.patch.object(BotocoreStubber, "__call__", one_request_at_a_time),
        mock_aws(),
    ):
        create_state_table(region)
        create_enabled_parameter(region)
        aws.add_client_observer(extension.attach)
        _current.append(extension)
        try:
            yield EmbeddedAws(region=region, launch=extension)
        finally:
            _current.remove(extension)
            aws.remove_client_observer(extension.attach)
