"""CloudTrail Auto Scaling API calls that put a group's instances behind load balancers (issue 7.2:
registration is a write too): ``AttachLoadBalancers`` (Classic), ``AttachLoadBalancerTargetGroups``
(ELBv2) and ``AttachTrafficSources`` (both: ``elb`` = a Classic name, ``elbv2`` = a target group
ARN; ``vpc-lattice`` carries no PROXY protocol and is ignored).

They arrive as ``source: aws.autoscaling``, ``detail-type: AWS API Call via CloudTrail``,
``detail.eventSource: autoscaling.amazonaws.com``, and are routed to EnableProxyProtocol beside the
ELB calls (:func:`parse_load_balancer_event` tells the two apart). Failed calls carry
``errorCode`` and are ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Final

from proxymx.errors import MalformedEvent
from proxymx.models.cloudtrail import (
    CLOUDTRAIL_DETAIL_TYPE,
    ElbApiCallEvent,
    UserIdentity,
    parse_elb_event,
)
from proxymx.models.envelope import EventBridgeEvent
from proxymx.models.reader import ARN_MAX, SHORT_MAX, TEXT_MAX, Invalid, Obj
from proxymx.models.record import Record

AUTOSCALING_EVENT_SOURCE: Final = "autoscaling.amazonaws.com"
ATTACH_EVENT_NAMES: Final = ("AttachLoadBalancers", "AttachLoadBalancerTargetGroups", "AttachTrafficSources")
# AttachLoadBalancers takes at most 10 names; AttachLoadBalancerTargetGroups 10 ARNs;
# AttachTrafficSources 1 source. A generous bound, not a quota.
ATTACHED_MAX: Final = 50


class AttachCall(Record):
    """One Auto Scaling attach call: the group and the units it now sends its instances to."""

    event_id: str | None = None
    event_time: datetime
    event_name: str
    user_identity: UserIdentity
    group_name: str
    load_balancer_names: list[str]
    target_group_arns: list[str]
    error_code: str | None = None

    @classmethod
    def read(cls, o: Obj) -> AttachCall:
        o.const("eventSource", AUTOSCALING_EVENT_SOURCE)
        name = o.choice("eventName", ATTACH_EVENT_NAMES)
        error = o.opt_text("errorCode", max_len=SHORT_MAX)
        request = o.opt_obj("requestParameters") if error else o.obj("requestParameters")
        names: list[str] = []
        arns: list[str] = []
        group = ""
        if request is not None:
            group = request.opt_text("autoScalingGroupName", max_len=TEXT_MAX) or ""
            names = request.texts("loadBalancerNames", max_len=SHORT_MAX, max_items=ATTACHED_MAX)
            arns = request.texts("targetGroupARNs", max_len=ARN_MAX, max_items=ATTACHED_MAX)
            for source in request.objs("trafficSources", max_items=ATTACHED_MAX):
                kind = source.opt_text("type", max_len=32) or "elbv2"
                identifier = source.text("identifier", max_len=ARN_MAX)
                if kind == "elb":
                    names.append(identifier)
                elif kind == "elbv2":
                    arns.append(identifier)
            if not error and not group:
                raise Invalid(request.at("autoScalingGroupName"), "field required")
        return cls(
            event_id=o.opt_text("eventID", max_len=SHORT_MAX),
            event_time=o.time("eventTime"),
            event_name=name,
            user_identity=UserIdentity.read(o.obj("userIdentity")),
            group_name=group,
            load_balancer_names=names,
            target_group_arns=arns,
            error_code=error,
        )


class AttachApiCallEvent(EventBridgeEvent):
    detail: AttachCall

    SOURCE: ClassVar[str] = "aws.autoscaling"
    DETAIL_TYPE: ClassVar[str] = CLOUDTRAIL_DETAIL_TYPE


def parse_attach_event(event: Any) -> AttachApiCallEvent:
    if not isinstance(event, dict):
        raise MalformedEvent(f"event: expected a JSON object, got {type(event).__name__}")
    try:
        root = Obj(event)
        envelope = AttachApiCallEvent.envelope(root)
        return AttachApiCallEvent(**envelope, detail=AttachCall.read(root.obj("detail")))
    except Invalid as exc:
        raise MalformedEvent(str(exc)) from exc


LoadBalancerEvent = ElbApiCallEvent | AttachApiCallEvent


def parse_load_balancer_event(event: Any) -> LoadBalancerEvent:
    """EnableProxyProtocol's edge: an ELB API call, or an Auto Scaling attach call (by source)."""
    if isinstance(event, dict) and event.get("source") == AttachApiCallEvent.SOURCE:
        return parse_attach_event(event)
    return parse_elb_event(event)
