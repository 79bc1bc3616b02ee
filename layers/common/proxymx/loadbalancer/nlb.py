"""ELBv2 adapter (boto3 ``elbv2``): load balancers, listeners, target groups, tags, attributes.

The only code that talks to the ELBv2 API. It reads target groups into TargetGroupState,
sets ``proxy_protocol_v2.enabled=true`` and reads it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from proxymx.errors import VerificationFailed
from proxymx.loadbalancer.errors import Adapter, error_code, translate
from proxymx.loadbalancer.plan import PROXY_PROTOCOL_V2, TargetGroupState

if TYPE_CHECKING:
    # Used as the base class's type argument (a string: the stubs exist only for type checking).
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client  # noqa: F401

# DescribeTags takes at most 20 ARNs per call.
TAGS_PER_CALL = 20


@dataclass(frozen=True)
class LoadBalancerV2:
    arn: str
    name: str
    type: str


class NetworkLoadBalancers(Adapter["ElasticLoadBalancingv2Client"]):
    service = "elbv2"

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
        from botocore.exceptions import ClientError

        ports: dict[str, set[int]] = {}
        try:
            for page in self.client.get_paginator("describe_listeners").paginate(
                LoadBalancerArn=load_balancer_arn
            ):
                for listener in page["Listeners"]:
                    for tg_arn in _forward_targets(listener.get("DefaultActions", [])):
                        ports.setdefault(tg_arn, set()).add(int(listener["Port"]))
        except ClientError as exc:
            raise translate(exc, f"listeners of {load_balancer_arn}") from exc
        return {arn: tuple(sorted(p)) for arn, p in ports.items()}

    def target_groups_of(self, load_balancer_arn: str) -> list[dict[str, Any]]:
        from botocore.exceptions import ClientError

        groups: list[dict[str, Any]] = []
        try:
            for page in self.client.get_paginator("describe_target_groups").paginate(
                LoadBalancerArn=load_balancer_arn
            ):
                groups.extend(dict(tg) for tg in page["TargetGroups"])
        except ClientError as exc:
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
        from botocore.exceptions import ClientError

        wanted = list(dict.fromkeys(arns))
        found: dict[str, dict[str, str]] = {arn: {} for arn in wanted}
        try:
            for start in range(0, len(wanted), TAGS_PER_CALL):
                response = self.client.describe_tags(ResourceArns=wanted[start : start + TAGS_PER_CALL])
                for description in response["TagDescriptions"]:
                    found[description["ResourceArn"]] = {
                        t["Key"]: t.get("Value", "") for t in description.get("Tags", [])
                    }
        except ClientError as exc:
            raise translate(exc, "describe tags") from exc
        return found

    def proxy_protocol_v2(self, target_group_arn: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            attributes = self.client.describe_target_group_attributes(TargetGroupArn=target_group_arn)
        except ClientError as exc:
            raise translate(exc, f"attributes of {target_group_arn}") from exc
        values = {a.get("Key"): a.get("Value") for a in attributes["Attributes"]}
        return str(values.get(PROXY_PROTOCOL_V2, "false")).lower() == "true"

    def target_group_states(
        self,
        groups: Sequence[dict[str, Any]],
        listener_ports: dict[str, tuple[int, ...]] | None = None,
    ) -> list[TargetGroupState]:
        """States (with tags of the groups and their load balancers); attributes not read yet."""
        if not groups:
            return []
        ports: dict[str, tuple[int, ...]] = dict(listener_ports or {})
        if listener_ports is None:
            for lb_arn in dict.fromkeys(arn for tg in groups for arn in tg.get("LoadBalancerArns", [])):
                for tg_arn, lb_ports in self.listener_ports(lb_arn).items():
                    ports[tg_arn] = tuple(sorted({*ports.get(tg_arn, ()), *lb_ports}))
        lb_arns = [arn for tg in groups for arn in tg.get("LoadBalancerArns", [])]
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
            )
            for tg in groups
        ]

    def dualstack(self, load_balancer_arns: Sequence[str]) -> bool:
        """True when any of these NLBs takes IPv6 senders (then Postfix must accept IPv6 clients)."""
        if not load_balancer_arns:
            return False
        from botocore.exceptions import ClientError

        try:
            response = self.client.describe_load_balancers(LoadBalancerArns=list(load_balancer_arns))
        except ClientError as exc:
            raise translate(exc, "describe load balancers (IpAddressType)") from exc
        return any(
            str(lb.get("IpAddressType", "ipv4")).startswith("dualstack") for lb in response["LoadBalancers"]
        )

    def with_proxy_protocol_state(self, state: TargetGroupState) -> TargetGroupState:
        return replace(state, proxy_protocol_v2=self.proxy_protocol_v2(state.arn))

    # ----- write --------------------------------------------------------------------------

    def enable_proxy_protocol_v2(self, target_group_arn: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.modify_target_group_attributes(
                TargetGroupArn=target_group_arn, Attributes=[{"Key": PROXY_PROTOCOL_V2, "Value": "true"}]
            )
        except ClientError as exc:
            raise translate(exc, f"enable {PROXY_PROTOCOL_V2} on {target_group_arn}") from exc

    def verify(self, target_group_arns: Iterable[str]) -> None:
        for arn in target_group_arns:
            if not self.proxy_protocol_v2(arn):
                raise VerificationFailed(f"{arn}: {PROXY_PROTOCOL_V2} is not true after the change")


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
