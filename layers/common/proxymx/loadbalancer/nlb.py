"""ELBv2 adapter (boto3 ``elbv2``): load balancers, listeners, target groups, tags, attributes.

The only code that talks to the ELBv2 API. It reads target groups into TargetGroupState (the
header attributes in ONE DescribeTargetGroupAttributes call), sets ``proxy_protocol_v2.enabled=true``
together with the header placement in ONE ModifyTargetGroupAttributes call, and reads it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from proxymx.batching import chunked
from proxymx.errors import ProxymxError, VerificationFailed, aws_errors, error_code, translate
from proxymx.frozen import frozen
from proxymx.loadbalancer.backoff import ElbAdapter
from proxymx.loadbalancer.nlbheader import (
    HEADER_PLACEMENT,
    ON_FIRST_ACK,
    PLACEMENT_REFUSED_CODES,
    header_attributes,
    may_be_preserved,
)
from proxymx.loadbalancer.plan import PROXY_PROTOCOL_V2, TargetGroupState

if TYPE_CHECKING:
    # Used as the base class's type argument (a string: the stubs exist only for type checking).
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client  # noqa: F401

# DescribeTags takes at most 20 ARNs per call.
TAGS_PER_CALL = 20


class PlacementRefused(ProxymxError):
    """AWS refused ``header_placement=on_first_ack`` (the account is not allowed): nothing changed."""

    def __init__(self, target_group_arn: str, code: str, message: str) -> None:
        super().__init__(f"{target_group_arn}: {code}: {message}")
        self.target_group_arn = target_group_arn
        self.code = code


@frozen
class LoadBalancerV2:
    arn: str
    name: str
    type: str


class NetworkLoadBalancers(ElbAdapter["ElasticLoadBalancingv2Client"]):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Target group ARN -> protocols of the listeners forwarding to it, seen by listener_ports.
        self._listener_protocols: dict[str, set[str]] = {}
        # Load balancer ARN -> IpAddressType, when already read in pages (proxymx.inventory).
        self.known_ip_address_types: dict[str, str] = {}

    # ----- read ---------------------------------------------------------------------------

    def load_balancer(self, arn: str) -> LoadBalancerV2:
        response = self._read_with_retry(
            lambda: self.client.describe_load_balancers(LoadBalancerArns=[arn]),
            f"load balancer {arn}",
        )
        lb = response["LoadBalancers"][0]
        return LoadBalancerV2(lb["LoadBalancerArn"], lb["LoadBalancerName"], lb.get("Type", "application"))

    def listener_ports(self, load_balancer_arn: str) -> dict[str, tuple[int, ...]]:
        """Target group ARN -> ports of this load balancer's listeners forwarding to it."""
        ports: dict[str, set[int]] = {}
        # Read in the same pages as the ports (no second call): a TLS listener hides the client's
        # address even from instance targets (proxymx.loadbalancer.nlbheader rule 3).
        try:
            for page in self.client.get_paginator("describe_listeners").paginate(
                LoadBalancerArn=load_balancer_arn
            ):
                for listener in page["Listeners"]:
                    for tg_arn in _forward_targets(listener.get("DefaultActions", [])):
                        ports.setdefault(tg_arn, set()).add(int(listener["Port"]))
                        self._listener_protocols.setdefault(tg_arn, set()).add(
                            str(listener.get("Protocol") or "TCP").upper()
                        )
        except aws_errors() as exc:
            raise translate(exc, f"listeners of {load_balancer_arn}") from exc
        return {arn: tuple(sorted(p)) for arn, p in ports.items()}

    def target_groups_of(self, load_balancer_arn: str) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = []
        try:
            for page in self.client.get_paginator("describe_target_groups").paginate(
                LoadBalancerArn=load_balancer_arn
            ):
                groups.extend(dict(tg) for tg in page["TargetGroups"])
        except aws_errors() as exc:
            # AWS answers an empty list; moto raises TargetGroupNotFound. Both mean "none yet".
            if error_code(exc) == "TargetGroupNotFound":
                return []
            raise translate(exc, f"target groups of {load_balancer_arn}") from exc
        return groups

    def target_group(self, arn: str) -> dict[str, Any]:
        response = self._read_with_retry(
            lambda: self.client.describe_target_groups(TargetGroupArns=[arn]),
            f"target group {arn}",
        )
        return dict(response["TargetGroups"][0])

    def tags(self, arns: Iterable[str]) -> dict[str, dict[str, str]]:
        wanted = list(dict.fromkeys(arns))
        found: dict[str, dict[str, str]] = {arn: {} for arn in wanted}
        try:
            for chunk in chunked(wanted, TAGS_PER_CALL):
                response = self.client.describe_tags(ResourceArns=chunk)
                for description in response["TagDescriptions"]:
                    found[description["ResourceArn"]] = {
                        t["Key"]: t.get("Value", "") for t in description.get("Tags", [])
                    }
        except aws_errors() as exc:
            raise translate(exc, "describe tags") from exc
        return found

    def attributes(self, target_group_arn: str) -> dict[str, str]:
        try:
            attributes = self.client.describe_target_group_attributes(TargetGroupArn=target_group_arn)
        except aws_errors() as exc:
            raise translate(exc, f"attributes of {target_group_arn}") from exc
        return {str(a.get("Key")): str(a.get("Value", "")) for a in attributes["Attributes"]}

    def proxy_protocol_v2(self, target_group_arn: str) -> bool:
        return self.attributes(target_group_arn).get(PROXY_PROTOCOL_V2, "false").lower() == "true"

    def target_group_states(
        self,
        groups: Sequence[dict[str, Any]],
        listener_ports: dict[str, tuple[int, ...]] | None = None,
        *,
        tags: Mapping[str, Mapping[str, str]] | None = None,
    ) -> list[TargetGroupState]:
        """States (with tags of the groups and their load balancers); attributes not read yet.
        ``tags``: already read (ARN -> tags), else read here."""
        if not groups:
            return []
        ports: dict[str, tuple[int, ...]] = dict(listener_ports or {})
        if listener_ports is None:
            for lb_arn in dict.fromkeys(arn for tg in groups for arn in tg.get("LoadBalancerArns", [])):
                for tg_arn, lb_ports in self.listener_ports(lb_arn).items():
                    ports[tg_arn] = tuple(sorted({*ports.get(tg_arn, ()), *lb_ports}))
        lb_arns = [arn for tg in groups for arn in tg.get("LoadBalancerArns", [])]
        if tags is None:
            tags = self.tags([*(tg["TargetGroupArn"] for tg in groups), *lb_arns])
        return [
            TargetGroupState(
                arn=tg["TargetGroupArn"],
                name=tg.get("TargetGroupName", tg["TargetGroupArn"]),
                protocol=tg.get("Protocol"),
                port=tg.get("Port"),
                load_balancer_arns=tuple(tg.get("LoadBalancerArns", [])),
                listener_ports=ports.get(tg["TargetGroupArn"], ()),
                tags=tags.get(tg["TargetGroupArn"], {}),
                load_balancer_tags=tuple(tags.get(arn, {}) for arn in tg.get("LoadBalancerArns", [])),
                target_type=tg.get("TargetType"),
                listener_protocols=tuple(sorted(self._listener_protocols.get(tg["TargetGroupArn"], ()))),
            )
            for tg in groups
        ]

    def dualstack(self, load_balancer_arns: Sequence[str]) -> bool:
        """True when any of these NLBs takes IPv6 senders (then Postfix must accept IPv6 clients)."""
        if not load_balancer_arns:
            return False
        return any(t.startswith("dualstack") for t in self.ip_address_types(load_balancer_arns))

    def with_proxy_protocol_state(self, state: TargetGroupState) -> TargetGroupState:
        """The state with its header attributes, read in ONE DescribeTargetGroupAttributes call."""
        header = header_attributes(self.attributes(state.arn), state.target_type, state.protocol)
        ip_types: tuple[str, ...] = ()
        if state.load_balancer_arns and may_be_preserved(header, state.protocol):
            # A dualstack NLB hands IPv6 clients to instance targets with its own IPv4 address.
            ip_types = self.ip_address_types(state.load_balancer_arns)
        return replace(
            state, proxy_protocol_v2=header.enabled, header=header, load_balancer_ip_address_types=ip_types
        )

    def ip_address_types(self, load_balancer_arns: Sequence[str]) -> tuple[str, ...]:
        if all(arn in self.known_ip_address_types for arn in load_balancer_arns):
            return tuple(self.known_ip_address_types[arn] for arn in load_balancer_arns)
        response = self._read_with_retry(
            lambda: self.client.describe_load_balancers(LoadBalancerArns=list(load_balancer_arns)),
            f"load balancers {list(load_balancer_arns)}",
        )
        return tuple(str(lb.get("IpAddressType", "ipv4")) for lb in response["LoadBalancers"])

    # ----- write --------------------------------------------------------------------------

    def enable_proxy_protocol_v2(self, target_group_arn: str) -> None:
        self.set_attributes(target_group_arn, ((PROXY_PROTOCOL_V2, "true"),))

    def set_attributes(self, target_group_arn: str, attributes: Sequence[tuple[str, str]]) -> None:
        """ONE ModifyTargetGroupAttributes call: AWS applies its attributes together or refuses
        it, so ``enabled=true`` never lands without the placement it was sent with."""
        keys = [key for key, _ in attributes]
        try:
            self.client.modify_target_group_attributes(
                TargetGroupArn=target_group_arn,
                Attributes=[{"Key": key, "Value": value} for key, value in attributes],
            )
        except aws_errors() as exc:
            code = error_code(exc) or ""
            if HEADER_PLACEMENT in keys and code in PLACEMENT_REFUSED_CODES:
                message = str((getattr(exc, "response", None) or {}).get("Error", {}).get("Message", exc))
                raise PlacementRefused(target_group_arn, code, message) from exc
            raise translate(exc, f"set {', '.join(keys)} on {target_group_arn}") from exc

    def verify(self, target_group_arns: Iterable[str]) -> None:
        for arn in target_group_arns:
            values = self.attributes(arn)
            if values.get(PROXY_PROTOCOL_V2, "false").lower() != "true":
                raise VerificationFailed(f"{arn}: {PROXY_PROTOCOL_V2} is not true after the change")
            if values.get(HEADER_PLACEMENT) not in (None, ON_FIRST_ACK):
                raise VerificationFailed(
                    f"{arn}: {HEADER_PLACEMENT} is {values.get(HEADER_PLACEMENT)} after the change"
                )


def _forward_targets(actions: Iterable[Any]) -> list[str]:
    arns: list[str] = []
    for action in actions:
        if action.get("Type") != "forward":
            continue
        if action.get("TargetGroupArn"):
            arns.append(action["TargetGroupArn"])
        for weighted in (action.get("ForwardConfig") or {}).get("TargetGroups", []):
            if weighted.get("TargetGroupArn"):
                arns.append(weighted["TargetGroupArn"])
    return list(dict.fromkeys(arns))
