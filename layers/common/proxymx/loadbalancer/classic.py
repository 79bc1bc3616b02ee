"""Classic ELB adapter (boto3 ``elb``): describe into a ClassicState, apply a ClassicPlan, verify.

The only code that talks to the Classic ELB API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from proxymx.errors import VerificationFailed, aws_errors, error_code, translate
from proxymx.loadbalancer.backoff import ElbAdapter
from proxymx.loadbalancer.plan import (
    PROXY_POLICY_TYPE,
    ClassicListener,
    ClassicPlan,
    ClassicPolicy,
    ClassicState,
)

if TYPE_CHECKING:
    # Used as the base class's type argument (a string: the stubs exist only for type checking).
    from mypy_boto3_elb import ElasticLoadBalancingClient  # noqa: F401


class ClassicElb(ElbAdapter["ElasticLoadBalancingClient"]):
    # ----- read ---------------------------------------------------------------------------

    def _description(self, name: str) -> dict[str, Any]:
        response = self._read_with_retry(
            lambda: self.client.describe_load_balancers(LoadBalancerNames=[name]),
            f"Classic load balancer {name}",
        )
        return dict(response["LoadBalancerDescriptions"][0])

    def describe(self, name: str, *, with_tags: bool = True) -> ClassicState:
        """Listeners, backend policies, ProxyProtocol-relevant policies and (scope) tags of ``name``."""
        description = self._description(name)
        try:
            tag_descriptions = (
                self.client.describe_tags(LoadBalancerNames=[name])["TagDescriptions"] if with_tags else []
            )
            policy_names = description.get("Policies", {}).get("OtherPolicies", [])
            # Stickiness policies are listed apart and never of the PROXY type: skip the call
            # when there is nothing else.
            policies = (
                self.client.describe_load_balancer_policies(LoadBalancerName=name)["PolicyDescriptions"]
                if policy_names
                else []
            )
        except aws_errors() as exc:
            raise translate(exc, f"Classic load balancer {name}") from exc
        tags = {t["Key"]: t.get("Value", "") for d in tag_descriptions for t in d.get("Tags", [])}
        return ClassicState(
            name=name,
            listeners=tuple(listener(d["Listener"]) for d in description.get("ListenerDescriptions", [])),
            backend_policies=backend_policies(description),
            policies=tuple(policy(p) for p in policies),
            tags=tags,
            instances=tuple(i["InstanceId"] for i in description.get("Instances", []) if "InstanceId" in i),
        )

    # ----- write --------------------------------------------------------------------------

    def ensure_proxy_policy(self, name: str, policy_name: str) -> None:
        """Create the ProxyProtocolPolicyType policy; DuplicatePolicyName means it is there."""
        try:
            self.client.create_load_balancer_policy(
                LoadBalancerName=name,
                PolicyName=policy_name,
                PolicyTypeName=PROXY_POLICY_TYPE,
                PolicyAttributes=[{"AttributeName": "ProxyProtocol", "AttributeValue": "true"}],
            )
        except aws_errors() as exc:
            if error_code(exc) != "DuplicatePolicyName":
                raise translate(exc, f"create policy {policy_name} on {name}") from exc

    def set_backend_policies(self, name: str, instance_port: int, policy_names: Sequence[str]) -> None:
        try:
            self.client.set_load_balancer_policies_for_backend_server(
                LoadBalancerName=name, InstancePort=instance_port, PolicyNames=list(policy_names)
            )
        except aws_errors() as exc:
            raise translate(exc, f"set backend policies of {name} port {instance_port}") from exc

    def apply(self, plan: ClassicPlan) -> None:
        if plan.create_policy:
            self.ensure_proxy_policy(plan.load_balancer, plan.policy_name)
        if not plan.attach:
            return
        # SetLoadBalancerPoliciesForBackendServer REPLACES the port's list, and the plan's list was
        # read before (issue 9, finding 7: an operator's policy set in between was dropped). Re-read
        # right before the write and add ours to what is there NOW; verify() reads it back after.
        # What remains is the window of this one read and write (milliseconds); Classic ELB offers
        # no conditional write to close it.
        current = backend_policies(self._description(plan.load_balancer))
        for backend in plan.attach:
            now = current.get(backend.instance_port, ())
            if plan.policy_name in now:
                continue  # someone (a concurrent run) attached it meanwhile: nothing to write
            merged = (*now, plan.policy_name)
            self.set_backend_policies(plan.load_balancer, backend.instance_port, merged)

    def verify(self, plan: ClassicPlan) -> None:
        """Read back: the policy exists with ProxyProtocol=true and is on every planned port."""
        state = self.describe(plan.load_balancer, with_tags=False)
        policy = next((p for p in state.policies if p.name == plan.policy_name), None)
        if policy is None or not policy.enables_proxy_protocol:
            raise VerificationFailed(
                f"{plan.load_balancer}: policy {plan.policy_name} is missing or not "
                "ProxyProtocol=true after the change"
            )
        for backend in plan.attach:
            actual = state.backend_policies.get(backend.instance_port, ())
            # Ours must be there; the others are whatever the port held at our write (apply merged
            # them), which an operator may have changed since the plan was made.
            missing = [name for name in (plan.policy_name,) if name not in actual]
            if missing:
                raise VerificationFailed(
                    f"{plan.load_balancer}: instance port {backend.instance_port} has {list(actual)} "
                    f"after the change, missing {missing}"
                )


# The parsers of DescribeLoadBalancers / DescribeLoadBalancerPolicies entries, shared with the
# paged inventory (proxymx.inventory), so that a sweep reads the same state as an event.


def policy(description: Mapping[str, Any]) -> ClassicPolicy:
    return ClassicPolicy(
        name=description["PolicyName"],
        type_name=description.get("PolicyTypeName", ""),
        attributes={
            a["AttributeName"]: a.get("AttributeValue", "")
            for a in description.get("PolicyAttributeDescriptions", [])
            if "AttributeName" in a
        },
    )


def listener(entry: Mapping[str, Any]) -> ClassicListener:
    protocol = str(entry.get("Protocol", ""))
    return ClassicListener(
        load_balancer_port=int(entry["LoadBalancerPort"]),
        protocol=protocol,
        instance_port=int(entry["InstancePort"]),
        # InstanceProtocol defaults to the front-end protocol's family when omitted.
        instance_protocol=str(entry.get("InstanceProtocol") or protocol),
    )


def backend_policies(description: Mapping[str, Any]) -> dict[int, tuple[str, ...]]:
    return {
        int(b["InstancePort"]): tuple(b.get("PolicyNames", []))
        for b in description.get("BackendServerDescriptions", [])
        if "InstancePort" in b
    }
