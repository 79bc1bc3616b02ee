"""CloudTrail ELB API calls as delivered by EventBridge (``AWS API Call via CloudTrail``).

Classic ELB and ELBv2 share the event source ``elasticloadbalancing.amazonaws.com`` and even
event names (``CreateLoadBalancer``); they are told apart by ``detail.apiVersion``
(``2012-06-01`` Classic, ``2015-12-01`` v2) and then by the request shape
(``loadBalancerName`` vs ``name``/``type``). The detail is dispatched on (apiVersion, eventName)
to one class per handled call, each with its own typed ``requestParameters``.

A failed call (``errorCode`` present) is parsed loosely: its request may be partial and it is
ignored anyway. A well-formed ELB call we do not act on parses as :class:`OtherElbCall`.

:func:`parse_elb_event` raises one :class:`~proxymx.errors.MalformedEvent` naming the bad field,
e.g. ``detail.requestParameters.loadBalancerName: field required``. Bounds are the ELB API's
where it documents them (names 1-32 characters, 100 listeners, ports 1-65535).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, Final

from proxymx.errors import MalformedEvent
from proxymx.models.envelope import EventBridgeEvent
from proxymx.models.reader import ARN_MAX, SHORT_MAX, TEXT_MAX, Invalid, Obj
from proxymx.models.record import Record

CLASSIC_API_VERSION = "2012-06-01"
V2_API_VERSION = "2015-12-01"
ELB_EVENT_SOURCE = "elasticloadbalancing.amazonaws.com"
CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
PROXY_PROTOCOL_V2_ATTRIBUTE = "proxy_protocol_v2.enabled"
# Anything but on_first_ack deadlocks SMTP behind an NLB (proxymx.loadbalancer.nlbheader).
HEADER_PLACEMENT_ATTRIBUTE = "proxy_protocol_v2.client_to_server.header_placement"

# CreateLoadBalancer (both APIs) and CreateTargetGroup: "a maximum of 32 characters".
NAME_MAX: Final = 32
# Classic ELB: at most 100 listeners per load balancer (ELB quotas).
LISTENERS_MAX: Final = 100
# One registration call names its targets; a generous bound, not an AWS quota.
TARGETS_MAX: Final = 1000
_PROTOCOL = re.compile(r"[A-Za-z0-9_]{1,16}")


# ----- who made the call ----------------------------------------------------------------------


class SessionIssuer(Record):
    type: str | None = None
    arn: str | None = None
    user_name: str | None = None

    @classmethod
    def read(cls, o: Obj) -> SessionIssuer:
        return cls(
            type=o.opt_text("type", max_len=SHORT_MAX),
            arn=o.opt_text("arn", max_len=ARN_MAX),
            user_name=o.opt_text("userName", max_len=SHORT_MAX),
        )


class SessionContext(Record):
    session_issuer: SessionIssuer | None = None

    @classmethod
    def read(cls, o: Obj) -> SessionContext:
        issuer = o.opt_obj("sessionIssuer")
        return cls(session_issuer=SessionIssuer.read(issuer) if issuer else None)


class UserIdentity(Record):
    type: str
    principal_id: str | None = None
    arn: str | None = None
    account_id: str | None = None
    invoked_by: str | None = None
    session_context: SessionContext | None = None

    @classmethod
    def read(cls, o: Obj) -> UserIdentity:
        context = o.opt_obj("sessionContext")
        return cls(
            type=o.text("type", max_len=SHORT_MAX),
            principal_id=o.opt_text("principalId", max_len=ARN_MAX),
            arn=o.opt_text("arn", max_len=ARN_MAX),
            account_id=o.opt_text("accountId", max_len=SHORT_MAX),
            invoked_by=o.opt_text("invokedBy", max_len=SHORT_MAX),
            session_context=SessionContext.read(context) if context else None,
        )

    @property
    def issuer_arn(self) -> str | None:
        """The role behind an assumed-role session (what a function's own calls carry)."""
        if self.session_context and self.session_context.session_issuer:
            return self.session_context.session_issuer.arn
        return None

    @property
    def who(self) -> str:
        """A human-readable principal for logs ("who drifted it")."""
        return self.arn or self.invoked_by or self.principal_id or self.type


# ----- Classic ELB (2012-06-01) ------------------------------------------------------------


def _lb_name(o: Obj) -> str:
    return o.text("loadBalancerName", max_len=NAME_MAX)


class ClassicListener(Record):
    protocol: str
    load_balancer_port: int
    instance_protocol: str | None = None
    instance_port: int

    @classmethod
    def read(cls, o: Obj) -> ClassicListener:
        return cls(
            protocol=o.text("protocol", max_len=16, pattern=_PROTOCOL),
            load_balancer_port=o.port("loadBalancerPort"),
            instance_protocol=o.opt_text("instanceProtocol", max_len=16, pattern=_PROTOCOL),
            instance_port=o.port("instancePort"),
        )


class ClassicCreateLoadBalancerParams(Record):
    load_balancer_name: str
    listeners: list[ClassicListener]

    @classmethod
    def read(cls, o: Obj) -> ClassicCreateLoadBalancerParams:
        listeners = o.objs("listeners", max_items=LISTENERS_MAX)
        return cls(load_balancer_name=_lb_name(o), listeners=[ClassicListener.read(li) for li in listeners])


class ClassicCreateListenersParams(Record):
    load_balancer_name: str
    listeners: list[ClassicListener]

    @classmethod
    def read(cls, o: Obj) -> ClassicCreateListenersParams:
        listeners = o.objs("listeners", max_items=LISTENERS_MAX, min_items=1)
        return cls(load_balancer_name=_lb_name(o), listeners=[ClassicListener.read(li) for li in listeners])


class ClassicSetBackendPoliciesParams(Record):
    load_balancer_name: str
    instance_port: int
    policy_names: list[str]

    @classmethod
    def read(cls, o: Obj) -> ClassicSetBackendPoliciesParams:
        return cls(
            load_balancer_name=_lb_name(o),
            instance_port=o.port("instancePort"),
            # PolicyNames=[] (the documented way to remove every policy from a port, the PROXY
            # protocol included) may be recorded as null or not at all: that is the drift, not a
            # malformed event.
            policy_names=o.texts("policyNames", max_len=SHORT_MAX),
        )


class ClassicDeletePolicyParams(Record):
    load_balancer_name: str
    policy_name: str

    @classmethod
    def read(cls, o: Obj) -> ClassicDeletePolicyParams:
        return cls(load_balancer_name=_lb_name(o), policy_name=o.text("policyName", max_len=SHORT_MAX))


class ClassicInstanceRef(Record):
    instance_id: str

    @classmethod
    def read(cls, o: Obj) -> ClassicInstanceRef:
        return cls(instance_id=o.text("instanceId", max_len=SHORT_MAX))


class ClassicRegisterInstancesParams(Record):
    load_balancer_name: str
    instances: list[ClassicInstanceRef]

    @classmethod
    def read(cls, o: Obj) -> ClassicRegisterInstancesParams:
        instances = o.objs("instances", max_items=TARGETS_MAX, min_items=1)
        return cls(load_balancer_name=_lb_name(o), instances=[ClassicInstanceRef.read(i) for i in instances])


# ----- AddTags (both APIs): the way back asked by a tag ------------------------------------------

# AddTags takes at most 20 resources per call (Classic: LoadBalancerNames; ELBv2: ResourceArns).
TAGGED_RESOURCES_MAX: Final = 20
# A resource holds at most 50 tags; one call cannot add more. Keys 1-128, values 0-256 characters.
TAGS_MAX: Final = 50
TAG_KEY_MAX: Final = 128
TAG_VALUE_MAX: Final = 256


class TagRef(Record):
    key: str
    value: str | None = None

    @classmethod
    def read(cls, o: Obj) -> TagRef:
        return cls(key=o.text("key", max_len=TAG_KEY_MAX), value=o.opt_text("value", max_len=TAG_VALUE_MAX))


def _tags(o: Obj) -> list[TagRef]:
    return [TagRef.read(t) for t in o.objs("tags", max_items=TAGS_MAX, min_items=1)]


def _names(o: Obj, key: str, max_len: int) -> list[str]:
    names = o.texts(key, max_len=max_len, max_items=TAGGED_RESOURCES_MAX, required=True)
    if not names:
        raise Invalid(o.at(key), f"list should have 1 to {TAGGED_RESOURCES_MAX} items, got 0")
    return names


class ClassicAddTagsParams(Record):
    load_balancer_names: list[str]
    tags: list[TagRef]

    @classmethod
    def read(cls, o: Obj) -> ClassicAddTagsParams:
        return cls(load_balancer_names=_names(o, "loadBalancerNames", NAME_MAX), tags=_tags(o))


class V2AddTagsParams(Record):
    # Load balancer or target group ARNs (listeners and rules can be tagged too: ignored).
    resource_arns: list[str]
    tags: list[TagRef]

    @classmethod
    def read(cls, o: Obj) -> V2AddTagsParams:
        return cls(resource_arns=_names(o, "resourceArns", ARN_MAX), tags=_tags(o))


# ----- ELBv2 (2015-12-01) ----------------------------------------------------------------------


class V2TargetRef(Record):
    # An instance id, an IP address (IP targets) or a Lambda/ALB ARN.
    id: str
    port: int | None = None

    @classmethod
    def read(cls, o: Obj) -> V2TargetRef:
        return cls(id=o.text("id", max_len=ARN_MAX), port=o.opt_port("port"))


class V2RegisterTargetsParams(Record):
    target_group_arn: str
    targets: list[V2TargetRef]

    @classmethod
    def read(cls, o: Obj) -> V2RegisterTargetsParams:
        targets = o.objs("targets", max_items=TARGETS_MAX, min_items=1)
        return cls(
            target_group_arn=o.text("targetGroupArn", max_len=ARN_MAX),
            targets=[V2TargetRef.read(t) for t in targets],
        )


class V2CreateLoadBalancerParams(Record):
    name: str
    # CreateLoadBalancer defaults to an application load balancer when Type is omitted.
    type: str = "application"

    @classmethod
    def read(cls, o: Obj) -> V2CreateLoadBalancerParams:
        return cls(
            name=o.text("name", max_len=NAME_MAX),
            type=o.choice("type", ("application", "network", "gateway"), default="application"),
        )


class V2LoadBalancerElement(Record):
    load_balancer_arn: str
    type: str | None = None

    @classmethod
    def read(cls, o: Obj) -> V2LoadBalancerElement:
        return cls(
            load_balancer_arn=o.text("loadBalancerArn", max_len=ARN_MAX),
            type=o.opt_text("type", max_len=SHORT_MAX),
        )


class V2CreateLoadBalancerResponse(Record):
    load_balancers: list[V2LoadBalancerElement]

    @classmethod
    def read(cls, o: Obj) -> V2CreateLoadBalancerResponse:
        elements = o.objs("loadBalancers", min_items=1)
        return cls(load_balancers=[V2LoadBalancerElement.read(e) for e in elements])


class V2CreateTargetGroupParams(Record):
    name: str
    # Absent for Lambda targets.
    protocol: str | None = None
    port: int | None = None
    target_type: str | None = None

    @classmethod
    def read(cls, o: Obj) -> V2CreateTargetGroupParams:
        return cls(
            name=o.text("name", max_len=NAME_MAX),
            protocol=o.opt_text("protocol", max_len=16, pattern=_PROTOCOL),
            port=o.opt_port("port"),
            target_type=o.opt_text("targetType", max_len=SHORT_MAX),
        )


class V2TargetGroupElement(Record):
    target_group_arn: str
    protocol: str | None = None
    port: int | None = None

    @classmethod
    def read(cls, o: Obj) -> V2TargetGroupElement:
        return cls(
            target_group_arn=o.text("targetGroupArn", max_len=ARN_MAX),
            protocol=o.opt_text("protocol", max_len=16, pattern=_PROTOCOL),
            port=o.opt_port("port"),
        )


class V2CreateTargetGroupResponse(Record):
    target_groups: list[V2TargetGroupElement]

    @classmethod
    def read(cls, o: Obj) -> V2CreateTargetGroupResponse:
        elements = o.objs("targetGroups", min_items=1)
        return cls(target_groups=[V2TargetGroupElement.read(e) for e in elements])


class V2CreateListenerParams(Record):
    load_balancer_arn: str
    protocol: str | None = None
    port: int | None = None

    @classmethod
    def read(cls, o: Obj) -> V2CreateListenerParams:
        return cls(
            load_balancer_arn=o.text("loadBalancerArn", max_len=ARN_MAX),
            protocol=o.opt_text("protocol", max_len=16, pattern=_PROTOCOL),
            port=o.opt_port("port"),
        )


# arn:<partition>:elasticloadbalancing:<region>:<account>:listener/<net|app|gwy>/<name>/<lb id>/<id>
_LISTENER_ARN = re.compile(
    r"(arn:[^:]+:elasticloadbalancing:[^:]*:[^:]*:)listener/((?:net|app|gwy)/[^/]+/[^/]+)/[^/]+"
)


class V2ModifyListenerParams(Record):
    """``ModifyListener``: only the listener's ARN is required (port, protocol and actions are
    what changed); the load balancer is the one the listener ARN names."""

    listener_arn: str
    protocol: str | None = None
    port: int | None = None

    @classmethod
    def read(cls, o: Obj) -> V2ModifyListenerParams:
        return cls(
            listener_arn=o.text("listenerArn", max_len=ARN_MAX, pattern=_LISTENER_ARN),
            protocol=o.opt_text("protocol", max_len=16, pattern=_PROTOCOL),
            port=o.opt_port("port"),
        )

    @property
    def load_balancer_arn(self) -> str:
        # The request carries no loadBalancerArn, and responseElements may be absent: the
        # listener ARN embeds the load balancer's type/name/id.
        match = _LISTENER_ARN.fullmatch(self.listener_arn)
        assert match is not None  # validated by the read's pattern
        return f"{match.group(1)}loadbalancer/{match.group(2)}"


class V2Attribute(Record):
    key: str
    value: str

    @classmethod
    def read(cls, o: Obj) -> V2Attribute:
        # Attribute keys are at most 256 characters, values 1024 (ELBv2 API reference).
        return cls(key=o.text("key", max_len=256), value=o.text("value", max_len=1024, min_len=0))


class V2ModifyTargetGroupAttributesParams(Record):
    target_group_arn: str
    attributes: list[V2Attribute]

    @classmethod
    def read(cls, o: Obj) -> V2ModifyTargetGroupAttributesParams:
        return cls(
            target_group_arn=o.text("targetGroupArn", max_len=ARN_MAX),
            attributes=[V2Attribute.read(a) for a in o.objs("attributes", max_items=100, min_items=1)],
        )

    @property
    def disables_proxy_protocol(self) -> bool:
        return any(
            a.key == PROXY_PROTOCOL_V2_ATTRIBUTE and a.value.strip().lower() == "false"
            for a in self.attributes
        )

    @property
    def unsets_header_placement(self) -> bool:
        return any(
            a.key == HEADER_PLACEMENT_ATTRIBUTE and a.value.strip() != "on_first_ack" for a in self.attributes
        )


# ----- the detail: one class per handled call ----------------------------------------------


class ElbCallDetail(Record):
    """What every CloudTrail ELB record carries (each subclass adds its typed request)."""

    event_version: str | None = None
    event_id: str | None = None
    event_time: datetime
    event_source: str
    event_name: str
    aws_region: str | None = None
    source_ip_address: str | None = None
    user_agent: str | None = None
    user_identity: UserIdentity
    api_version: str
    error_code: str | None = None
    error_message: str | None = None

    @staticmethod
    def common(o: Obj) -> dict[str, Any]:
        """The fields every call has, read in the order CloudTrail writes them."""
        return {
            "event_version": o.opt_text("eventVersion", max_len=16),
            "event_id": o.opt_text("eventID", max_len=SHORT_MAX),
            "event_time": o.time("eventTime"),
            "event_source": o.const("eventSource", ELB_EVENT_SOURCE),
            "event_name": o.text("eventName", max_len=128),
            "aws_region": o.opt_text("awsRegion", max_len=64),
            "source_ip_address": o.opt_text("sourceIPAddress", max_len=SHORT_MAX),
            "user_agent": o.opt_text("userAgent", max_len=TEXT_MAX),
            "user_identity": UserIdentity.read(o.obj("userIdentity")),
            "api_version": o.text("apiVersion", max_len=16),
            "error_code": o.opt_text("errorCode", max_len=SHORT_MAX),
            "error_message": o.opt_text("errorMessage", max_len=TEXT_MAX),
        }

    @property
    def is_classic(self) -> bool:
        return self.api_version == CLASSIC_API_VERSION

    @property
    def is_drift(self) -> bool:
        """A call that (may have) taken the PROXY protocol away: repairing it counts as drift."""
        return False


class FailedElbCall(ElbCallDetail):
    """A call that failed (``errorCode``): nothing changed, nothing to do."""

    error_code: str
    request_parameters: dict[str, Any] | None = None
    response_elements: dict[str, Any] | None = None

    @classmethod
    def read(cls, o: Obj) -> FailedElbCall:
        return cls(
            **{**cls.common(o), "error_code": o.text("errorCode", max_len=SHORT_MAX)},
            request_parameters=o.loose("requestParameters"),
            response_elements=o.loose("responseElements"),
        )


class OtherElbCall(ElbCallDetail):
    """A well-formed ELB call this function does not act on."""

    request_parameters: dict[str, Any] | None = None
    response_elements: dict[str, Any] | None = None

    @classmethod
    def read(cls, o: Obj) -> OtherElbCall:
        return cls(
            **cls.common(o),
            request_parameters=o.loose("requestParameters"),
            response_elements=o.loose("responseElements"),
        )


class ClassicCreateLoadBalancer(ElbCallDetail):
    request_parameters: ClassicCreateLoadBalancerParams

    @classmethod
    def read(cls, o: Obj) -> ClassicCreateLoadBalancer:
        params = ClassicCreateLoadBalancerParams.read(o.obj("requestParameters"))
        return cls(**cls.common(o), request_parameters=params)


class ClassicCreateLoadBalancerListeners(ElbCallDetail):
    request_parameters: ClassicCreateListenersParams

    @classmethod
    def read(cls, o: Obj) -> ClassicCreateLoadBalancerListeners:
        params = ClassicCreateListenersParams.read(o.obj("requestParameters"))
        return cls(**cls.common(o), request_parameters=params)


class ClassicSetBackendPolicies(ElbCallDetail):
    request_parameters: ClassicSetBackendPoliciesParams

    @classmethod
    def read(cls, o: Obj) -> ClassicSetBackendPolicies:
        params = ClassicSetBackendPoliciesParams.read(o.obj("requestParameters"))
        return cls(**cls.common(o), request_parameters=params)

    @property
    def is_drift(self) -> bool:
        return True


class ClassicDeletePolicy(ElbCallDetail):
    request_parameters: ClassicDeletePolicyParams

    @classmethod
    def read(cls, o: Obj) -> ClassicDeletePolicy:
        params = ClassicDeletePolicyParams.read(o.obj("requestParameters"))
        return cls(**cls.common(o), request_parameters=params)

    @property
    def is_drift(self) -> bool:
        return True


class ClassicRegisterInstances(ElbCallDetail):
    """Registration is a write too (issue 7.2): a new target behind a unit that sends."""

    request_parameters: ClassicRegisterInstancesParams

    @classmethod
    def read(cls, o: Obj) -> ClassicRegisterInstances:
        params = ClassicRegisterInstancesParams.read(o.obj("requestParameters"))
        return cls(**cls.common(o), request_parameters=params)


class V2RegisterTargets(ElbCallDetail):
    request_parameters: V2RegisterTargetsParams

    @classmethod
    def read(cls, o: Obj) -> V2RegisterTargets:
        params = V2RegisterTargetsParams.read(o.obj("requestParameters"))
        return cls(**cls.common(o), request_parameters=params)


class ClassicAddTags(ElbCallDetail):
    """Tags added to Classic ELBs: ``proxymx:proxy-protocol=off`` starts the way back at once."""

    request_parameters: ClassicAddTagsParams

    @classmethod
    def read(cls, o: Obj) -> ClassicAddTags:
        return cls(**cls.common(o), request_parameters=ClassicAddTagsParams.read(o.obj("requestParameters")))

    @property
    def tag_keys(self) -> frozenset[str]:
        return frozenset(t.key for t in self.request_parameters.tags)


class V2AddTags(ElbCallDetail):
    """Tags added to NLBs or target groups (the same way back)."""

    request_parameters: V2AddTagsParams

    @classmethod
    def read(cls, o: Obj) -> V2AddTags:
        return cls(**cls.common(o), request_parameters=V2AddTagsParams.read(o.obj("requestParameters")))

    @property
    def tag_keys(self) -> frozenset[str]:
        return frozenset(t.key for t in self.request_parameters.tags)


class V2CreateLoadBalancer(ElbCallDetail):
    request_parameters: V2CreateLoadBalancerParams
    response_elements: V2CreateLoadBalancerResponse | None = None

    @classmethod
    def read(cls, o: Obj) -> V2CreateLoadBalancer:
        params = V2CreateLoadBalancerParams.read(o.obj("requestParameters"))
        response = o.opt_obj("responseElements")
        return cls(
            **cls.common(o),
            request_parameters=params,
            response_elements=V2CreateLoadBalancerResponse.read(response) if response else None,
        )


class V2CreateTargetGroup(ElbCallDetail):
    request_parameters: V2CreateTargetGroupParams
    response_elements: V2CreateTargetGroupResponse

    @classmethod
    def read(cls, o: Obj) -> V2CreateTargetGroup:
        params = V2CreateTargetGroupParams.read(o.obj("requestParameters"))
        response = V2CreateTargetGroupResponse.read(o.obj("responseElements"))
        return cls(**cls.common(o), request_parameters=params, response_elements=response)


class V2CreateListener(ElbCallDetail):
    request_parameters: V2CreateListenerParams

    @classmethod
    def read(cls, o: Obj) -> V2CreateListener:
        params = V2CreateListenerParams.read(o.obj("requestParameters"))
        return cls(**cls.common(o), request_parameters=params)


class V2ModifyListener(ElbCallDetail):
    request_parameters: V2ModifyListenerParams

    @classmethod
    def read(cls, o: Obj) -> V2ModifyListener:
        params = V2ModifyListenerParams.read(o.obj("requestParameters"))
        return cls(**cls.common(o), request_parameters=params)


class V2ModifyTargetGroupAttributes(ElbCallDetail):
    request_parameters: V2ModifyTargetGroupAttributesParams

    @classmethod
    def read(cls, o: Obj) -> V2ModifyTargetGroupAttributes:
        params = V2ModifyTargetGroupAttributesParams.read(o.obj("requestParameters"))
        return cls(**cls.common(o), request_parameters=params)

    @property
    def is_drift(self) -> bool:
        params = self.request_parameters
        return params.disables_proxy_protocol or params.unsets_header_placement


ElbDetail = (
    ClassicCreateLoadBalancer
    | ClassicCreateLoadBalancerListeners
    | ClassicSetBackendPolicies
    | ClassicDeletePolicy
    | ClassicRegisterInstances
    | V2RegisterTargets
    | ClassicAddTags
    | V2AddTags
    | V2CreateLoadBalancer
    | V2CreateTargetGroup
    | V2CreateListener
    | V2ModifyListener
    | V2ModifyTargetGroupAttributes
    | FailedElbCall
    | OtherElbCall
)

_HANDLED: Final[dict[tuple[str, str], Callable[[Obj], ElbDetail]]] = {
    (CLASSIC_API_VERSION, "CreateLoadBalancer"): ClassicCreateLoadBalancer.read,
    (CLASSIC_API_VERSION, "CreateLoadBalancerListeners"): ClassicCreateLoadBalancerListeners.read,
    (CLASSIC_API_VERSION, "SetLoadBalancerPoliciesForBackendServer"): ClassicSetBackendPolicies.read,
    (CLASSIC_API_VERSION, "DeleteLoadBalancerPolicy"): ClassicDeletePolicy.read,
    (CLASSIC_API_VERSION, "RegisterInstancesWithLoadBalancer"): ClassicRegisterInstances.read,
    (V2_API_VERSION, "RegisterTargets"): V2RegisterTargets.read,
    (CLASSIC_API_VERSION, "AddTags"): ClassicAddTags.read,
    (V2_API_VERSION, "AddTags"): V2AddTags.read,
    (V2_API_VERSION, "CreateLoadBalancer"): V2CreateLoadBalancer.read,
    (V2_API_VERSION, "CreateTargetGroup"): V2CreateTargetGroup.read,
    (V2_API_VERSION, "CreateListener"): V2CreateListener.read,
    (V2_API_VERSION, "ModifyListener"): V2ModifyListener.read,
    (V2_API_VERSION, "ModifyTargetGroupAttributes"): V2ModifyTargetGroupAttributes.read,
}


def read_detail(o: Obj) -> ElbDetail:
    """Dispatch on (apiVersion, eventName), then read the call's own shape."""
    if o.raw("errorCode"):
        return FailedElbCall.read(o)
    api = o.raw("apiVersion")
    if api not in (CLASSIC_API_VERSION, V2_API_VERSION):
        raise Invalid(
            o.at("apiVersion"),
            f"apiVersion must be {CLASSIC_API_VERSION} (Classic ELB) or {V2_API_VERSION} (ELBv2)",
        )
    name = o.raw("eventName")
    read = _HANDLED.get((api, name)) if isinstance(name, str) else None
    # An eventName that is not a string fails in OtherElbCall's read, naming the field.
    return (read or OtherElbCall.read)(o)


class ElbApiCallEvent(EventBridgeEvent):
    """EventBridge envelope of a CloudTrail ELB API call, with a typed detail."""

    detail: ElbDetail

    SOURCE: ClassVar[str] = "aws.elasticloadbalancing"
    DETAIL_TYPE: ClassVar[str] = CLOUDTRAIL_DETAIL_TYPE


def parse_elb_event(event: Any) -> ElbApiCallEvent:
    """Validate an EventBridge CloudTrail ELB event at the edge; one clear error otherwise."""
    if not isinstance(event, dict):
        raise MalformedEvent(f"event: expected a JSON object, got {type(event).__name__}")
    try:
        root = Obj(event)
        envelope = ElbApiCallEvent.envelope(root)
        return ElbApiCallEvent(**envelope, detail=read_detail(root.obj("detail")))
    except Invalid as exc:
        raise MalformedEvent(str(exc)) from exc
