"""CloudTrail ELB API calls as delivered by EventBridge (``AWS API Call via CloudTrail``).

Classic ELB and ELBv2 share the event source ``elasticloadbalancing.amazonaws.com`` and even
event names (``CreateLoadBalancer``); they are told apart by ``detail.apiVersion``
(``2012-06-01`` Classic, ``2015-12-01`` v2) and then by the request shape
(``loadBalancerName`` vs ``name``/``type``). The ``detail`` is a discriminated union on
(apiVersion, eventName), so each handled call gets its own typed ``requestParameters``.

A failed call (``errorCode`` present) is parsed loosely: its request may be partial and it is
ignored anyway. A well-formed ELB call we do not act on parses as :class:`OtherElbCall`.

:func:`parse_elb_event` turns pydantic's ValidationError into one
:class:`~proxymx.errors.MalformedEvent` naming the bad field, e.g.
``detail.requestParameters.loadBalancerName: field required``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from proxymx.errors import MalformedEvent

CLASSIC_API_VERSION = "2012-06-01"
V2_API_VERSION = "2015-12-01"
ELB_EVENT_SOURCE = "elasticloadbalancing.amazonaws.com"
CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
PROXY_PROTOCOL_V2_ATTRIBUTE = "proxy_protocol_v2.enabled"


class _CloudTrailModel(BaseModel):
    # CloudTrail spells fields in camelCase; Python code uses snake_case.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


# ----- who made the call ----------------------------------------------------------------------


class SessionIssuer(_CloudTrailModel):
    type: str | None = None
    arn: str | None = None
    user_name: str | None = None


class SessionContext(_CloudTrailModel):
    session_issuer: SessionIssuer | None = None


class UserIdentity(_CloudTrailModel):
    type: str
    principal_id: str | None = None
    arn: str | None = None
    account_id: str | None = None
    invoked_by: str | None = None
    session_context: SessionContext | None = None

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


class ClassicListener(_CloudTrailModel):
    protocol: str
    load_balancer_port: int
    instance_protocol: str | None = None
    instance_port: int


class ClassicCreateLoadBalancerParams(_CloudTrailModel):
    load_balancer_name: str = Field(min_length=1)
    listeners: list[ClassicListener] = Field(default_factory=list)


class ClassicCreateListenersParams(_CloudTrailModel):
    load_balancer_name: str = Field(min_length=1)
    listeners: list[ClassicListener] = Field(min_length=1)


class ClassicSetBackendPoliciesParams(_CloudTrailModel):
    load_balancer_name: str = Field(min_length=1)
    instance_port: int
    policy_names: list[str] = Field(default_factory=list)

    @field_validator("policy_names", mode="before")
    @classmethod
    def _no_policies(cls, value: object) -> object:
        # PolicyNames=[] (the documented way to remove every policy from a port, the PROXY
        # protocol included) may be recorded as null: that is the drift, not a malformed event.
        return [] if value is None else value


class ClassicDeletePolicyParams(_CloudTrailModel):
    load_balancer_name: str = Field(min_length=1)
    policy_name: str = Field(min_length=1)


class ClassicInstanceRef(_CloudTrailModel):
    instance_id: str = Field(min_length=1)


class ClassicRegisterInstancesParams(_CloudTrailModel):
    load_balancer_name: str = Field(min_length=1)
    instances: list[ClassicInstanceRef] = Field(min_length=1)


# ----- ELBv2 (2015-12-01) ----------------------------------------------------------------------


class V2TargetRef(_CloudTrailModel):
    id: str = Field(min_length=1)
    port: int | None = None


class V2RegisterTargetsParams(_CloudTrailModel):
    target_group_arn: str = Field(min_length=1)
    targets: list[V2TargetRef] = Field(min_length=1)


class V2CreateLoadBalancerParams(_CloudTrailModel):
    name: str = Field(min_length=1)
    # CreateLoadBalancer defaults to an application load balancer when Type is omitted.
    type: Literal["application", "network", "gateway"] = "application"


class V2LoadBalancerElement(_CloudTrailModel):
    load_balancer_arn: str
    type: str | None = None


class V2CreateLoadBalancerResponse(_CloudTrailModel):
    load_balancers: list[V2LoadBalancerElement] = Field(min_length=1)


class V2CreateTargetGroupParams(_CloudTrailModel):
    name: str = Field(min_length=1)
    # Absent for Lambda targets.
    protocol: str | None = None
    port: int | None = None
    target_type: str | None = None


class V2TargetGroupElement(_CloudTrailModel):
    target_group_arn: str
    protocol: str | None = None
    port: int | None = None


class V2CreateTargetGroupResponse(_CloudTrailModel):
    target_groups: list[V2TargetGroupElement] = Field(min_length=1)


class V2CreateListenerParams(_CloudTrailModel):
    load_balancer_arn: str = Field(min_length=1)
    protocol: str | None = None
    port: int | None = None


class V2Attribute(_CloudTrailModel):
    key: str
    value: str


class V2ModifyTargetGroupAttributesParams(_CloudTrailModel):
    target_group_arn: str = Field(min_length=1)
    attributes: list[V2Attribute] = Field(min_length=1)

    @property
    def disables_proxy_protocol(self) -> bool:
        return any(
            a.key == PROXY_PROTOCOL_V2_ATTRIBUTE and a.value.strip().lower() == "false"
            for a in self.attributes
        )


# ----- the detail: one model per handled call ----------------------------------------------


class ElbCallDetail(_CloudTrailModel):
    """What every CloudTrail ELB record carries (each subclass adds its typed request)."""

    event_version: str | None = None
    event_id: str | None = Field(default=None, alias="eventID")
    event_time: datetime
    event_source: Literal["elasticloadbalancing.amazonaws.com"]
    event_name: str = Field(min_length=1)
    aws_region: str | None = None
    source_ip_address: str | None = Field(default=None, alias="sourceIPAddress")
    user_agent: str | None = None
    user_identity: UserIdentity
    api_version: str
    error_code: str | None = None
    error_message: str | None = None

    @property
    def is_classic(self) -> bool:
        return self.api_version == CLASSIC_API_VERSION

    @property
    def is_drift(self) -> bool:
        """A call that (may have) taken the PROXY protocol away: repairing it counts as drift."""
        return False


class FailedElbCall(ElbCallDetail):
    """A call that failed (``errorCode``): nothing changed, nothing to do."""

    error_code: str = Field(min_length=1)
    request_parameters: dict[str, Any] | None = None
    response_elements: dict[str, Any] | None = None


class OtherElbCall(ElbCallDetail):
    """A well-formed ELB call this function does not act on."""

    request_parameters: dict[str, Any] | None = None
    response_elements: dict[str, Any] | None = None


class ClassicCreateLoadBalancer(ElbCallDetail):
    api_version: Literal["2012-06-01"]
    event_name: Literal["CreateLoadBalancer"]
    request_parameters: ClassicCreateLoadBalancerParams


class ClassicCreateLoadBalancerListeners(ElbCallDetail):
    api_version: Literal["2012-06-01"]
    event_name: Literal["CreateLoadBalancerListeners"]
    request_parameters: ClassicCreateListenersParams


class ClassicSetBackendPolicies(ElbCallDetail):
    api_version: Literal["2012-06-01"]
    event_name: Literal["SetLoadBalancerPoliciesForBackendServer"]
    request_parameters: ClassicSetBackendPoliciesParams

    @property
    def is_drift(self) -> bool:
        return True


class ClassicDeletePolicy(ElbCallDetail):
    api_version: Literal["2012-06-01"]
    event_name: Literal["DeleteLoadBalancerPolicy"]
    request_parameters: ClassicDeletePolicyParams

    @property
    def is_drift(self) -> bool:
        return True


class ClassicRegisterInstances(ElbCallDetail):
    """Registration is a write too (issue 7.2): a new target behind a unit that sends."""

    api_version: Literal["2012-06-01"]
    event_name: Literal["RegisterInstancesWithLoadBalancer"]
    request_parameters: ClassicRegisterInstancesParams


class V2RegisterTargets(ElbCallDetail):
    api_version: Literal["2015-12-01"]
    event_name: Literal["RegisterTargets"]
    request_parameters: V2RegisterTargetsParams


class V2CreateLoadBalancer(ElbCallDetail):
    api_version: Literal["2015-12-01"]
    event_name: Literal["CreateLoadBalancer"]
    request_parameters: V2CreateLoadBalancerParams
    response_elements: V2CreateLoadBalancerResponse | None = None


class V2CreateTargetGroup(ElbCallDetail):
    api_version: Literal["2015-12-01"]
    event_name: Literal["CreateTargetGroup"]
    request_parameters: V2CreateTargetGroupParams
    response_elements: V2CreateTargetGroupResponse


class V2CreateListener(ElbCallDetail):
    api_version: Literal["2015-12-01"]
    event_name: Literal["CreateListener"]
    request_parameters: V2CreateListenerParams


class V2ModifyTargetGroupAttributes(ElbCallDetail):
    api_version: Literal["2015-12-01"]
    event_name: Literal["ModifyTargetGroupAttributes"]
    request_parameters: V2ModifyTargetGroupAttributesParams

    @property
    def is_drift(self) -> bool:
        return self.request_parameters.disables_proxy_protocol


_HANDLED: dict[str, type[ElbCallDetail]] = {
    f"{CLASSIC_API_VERSION}/CreateLoadBalancer": ClassicCreateLoadBalancer,
    f"{CLASSIC_API_VERSION}/CreateLoadBalancerListeners": ClassicCreateLoadBalancerListeners,
    f"{CLASSIC_API_VERSION}/SetLoadBalancerPoliciesForBackendServer": ClassicSetBackendPolicies,
    f"{CLASSIC_API_VERSION}/DeleteLoadBalancerPolicy": ClassicDeletePolicy,
    f"{CLASSIC_API_VERSION}/RegisterInstancesWithLoadBalancer": ClassicRegisterInstances,
    f"{V2_API_VERSION}/RegisterTargets": V2RegisterTargets,
    f"{V2_API_VERSION}/CreateLoadBalancer": V2CreateLoadBalancer,
    f"{V2_API_VERSION}/CreateTargetGroup": V2CreateTargetGroup,
    f"{V2_API_VERSION}/CreateListener": V2CreateListener,
    f"{V2_API_VERSION}/ModifyTargetGroupAttributes": V2ModifyTargetGroupAttributes,
}
_FAILED_TAG = "failed"
_OTHER_TAG = "other"


def _detail_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        api, name, error = value.get("apiVersion"), value.get("eventName"), value.get("errorCode")
    else:
        api, name, error = (
            getattr(value, attr, None) for attr in ("api_version", "event_name", "error_code")
        )
    if error:
        return _FAILED_TAG
    if api not in (CLASSIC_API_VERSION, V2_API_VERSION):
        return None  # reported as a clear error on detail.apiVersion
    tag = f"{api}/{name}"
    return tag if tag in _HANDLED else _OTHER_TAG


_C, _V2 = CLASSIC_API_VERSION, V2_API_VERSION
ElbDetail = Annotated[
    Annotated[ClassicCreateLoadBalancer, Tag(f"{_C}/CreateLoadBalancer")]
    | Annotated[ClassicCreateLoadBalancerListeners, Tag(f"{_C}/CreateLoadBalancerListeners")]
    | Annotated[ClassicSetBackendPolicies, Tag(f"{_C}/SetLoadBalancerPoliciesForBackendServer")]
    | Annotated[ClassicDeletePolicy, Tag(f"{_C}/DeleteLoadBalancerPolicy")]
    | Annotated[ClassicRegisterInstances, Tag(f"{_C}/RegisterInstancesWithLoadBalancer")]
    | Annotated[V2RegisterTargets, Tag(f"{_V2}/RegisterTargets")]
    | Annotated[V2CreateLoadBalancer, Tag(f"{_V2}/CreateLoadBalancer")]
    | Annotated[V2CreateTargetGroup, Tag(f"{_V2}/CreateTargetGroup")]
    | Annotated[V2CreateListener, Tag(f"{_V2}/CreateListener")]
    | Annotated[V2ModifyTargetGroupAttributes, Tag(f"{_V2}/ModifyTargetGroupAttributes")]
    | Annotated[FailedElbCall, Tag(_FAILED_TAG)]
    | Annotated[OtherElbCall, Tag(_OTHER_TAG)],
    Discriminator(
        _detail_tag,
        custom_error_type="api_version",
        custom_error_message=(
            f"apiVersion must be {CLASSIC_API_VERSION} (Classic ELB) or {V2_API_VERSION} (ELBv2)"
        ),
    ),
]


class ElbApiCallEvent(EventBridgeModel):
    """EventBridge envelope of a CloudTrail ELB API call, with a typed detail."""

    source: Literal["aws.elasticloadbalancing"]
    detail_type: Literal["AWS API Call via CloudTrail"] = Field(alias="detail-type")
    detail: ElbDetail


def _location(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in _HANDLED or part in (_FAILED_TAG, _OTHER_TAG):
            continue  # union tags are ours, not the event's
        else:
            path += f".{part}" if path else part
    return path or "event"


def describe_validation_error(exc: ValidationError, limit: int = 3) -> str:
    """``field.path: message`` for the first few errors, message lowercased like pydantic's v1."""
    parts = []
    for error in exc.errors()[:limit]:
        where = _location(tuple(error["loc"]))
        if error["type"] == "api_version":
            where = f"{where}.apiVersion"
        message = str(error["msg"])
        parts.append(f"{where}: {message[:1].lower()}{message[1:]}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse_elb_event(event: Any) -> ElbApiCallEvent:
    """Validate an EventBridge CloudTrail ELB event at the edge; one clear error otherwise."""
    if not isinstance(event, dict):
        raise MalformedEvent(f"event: expected a JSON object, got {type(event).__name__}")
    try:
        return ElbApiCallEvent.model_validate(event)
    except ValidationError as exc:
        raise MalformedEvent(describe_validation_error(exc)) from exc
