"""The sweep's readiness pages (proxymx.loadbalancer.targets.SweepReadiness, issues 7.2 and 12):
which fleet instances make a sending NLB group worth reading, and what each read costs."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from proxymx.errors import ProxymxError
from proxymx.loadbalancer.readiness import Requirement
from proxymx.loadbalancer.targets import InstanceFacts, SweepReadiness, Target

V2_ON_25 = Requirement((25,), "v2")
FRESH = "ready;ports=25;v=any;doc=2"
STALE_DOC = "ready;ports=25;v=any;doc=1"


def facts(instance_id: str, state: str = "running", ip: str = "", **tags: str) -> InstanceFacts:
    return InstanceFacts(instance_id, tags, state, (ip,) if ip else ())


def fleet(
    instance_id: str, readiness: str | None = None, state: str = "running", ip: str = ""
) -> InstanceFacts:
    tags = {"proxymx:fleet": "mx", **({"proxymx:proxy-protocol": readiness} if readiness else {})}
    return facts(instance_id, state, ip, **tags)


class PagedDiscovery:
    """The reads SweepReadiness makes, counted: the instance pages, the Auto Scaling pages, and the
    per-id reads of instances the pages do not list."""

    fleet_tag_value = "mx"

    def __init__(self, tagged: Iterable[InstanceFacts], launching: Iterable[str] = ()) -> None:
        self._tagged = {f.instance_id: f for f in tagged}
        self._launching = frozenset(launching)
        self.reads: list[str] = []

    def tagged_instances(self) -> dict[str, InstanceFacts]:
        self.reads.append("tagged")
        return dict(self._tagged)

    def launching_instances(self) -> frozenset[str]:
        self.reads.append("launching")
        return self._launching

    def readiness(self, targets: list[Target], known: dict[str, InstanceFacts]) -> list[str]:
        # What the real discovery would read by id: the targets the pages do not list.
        self.reads.extend(f"by-id {t.target_id}" for t in targets if t.target_id not in known)
        return [t.target_id for t in targets]


def sweep_of(discovery: PagedDiscovery) -> SweepReadiness:
    return SweepReadiness(discovery)  # type: ignore[arg-type]


def test_an_all_fresh_fleet_needs_no_group_read_and_no_auto_scaling_page() -> None:
    # Given a fleet whose every instance is proven for PROXY v2 on 25 (one bare `ready`)
    discovery = PagedDiscovery([fleet("i-1", FRESH), fleet("i-2", "ready")])
    sweep = sweep_of(discovery)
    # When two sending groups with that requirement are checked
    stale = [sweep.stale_fleet(V2_ON_25), sweep.stale_fleet(V2_ON_25)]
    # Then neither is worth reading; the instances were paged once, the groups never
    assert stale == [False, False]
    assert discovery.reads == ["tagged"]


def test_a_stale_live_fleet_instance_makes_the_groups_of_its_requirement_worth_reading() -> None:
    # Given one fleet instance proven by an older document
    discovery = PagedDiscovery([fleet("i-1", FRESH), fleet("i-2", STALE_DOC)])
    sweep = sweep_of(discovery)
    # When groups are checked for PROXY v2 on 25, twice
    stale = [sweep.stale_fleet(V2_ON_25), sweep.stale_fleet(V2_ON_25)]
    # Then both are read; the pages (instances, Auto Scaling groups) were read once each
    assert stale == [True, True]
    assert discovery.reads == ["tagged", "launching"]


def test_the_requirement_decides_what_is_stale() -> None:
    # Given a fleet instance proven for port 25 only, reading v1 only
    sweep = sweep_of(PagedDiscovery([fleet("i-1", "ready;ports=25;v=v1;doc=2")]))
    # Then a Classic-like v1 group on 25 need not be read, a v2 group or another port must
    assert sweep.stale_fleet(Requirement((25,), "v1")) is False
    assert sweep.stale_fleet(V2_ON_25) is True
    assert sweep.stale_fleet(Requirement((2525,), "v1")) is True


def test_stopped_launching_and_foreign_instances_are_not_a_reason_to_read() -> None:
    # Given unready instances that cannot be a stale target of ours taking traffic: a stopped fleet
    # instance, one held in Pending:Wait (the launch flow's), one of another fleet
    discovery = PagedDiscovery(
        [
            fleet("i-stopped", state="stopped"),
            fleet("i-launching"),
            facts("i-other", **{"proxymx:fleet": "other"}),
            fleet("i-fresh", FRESH),
        ],
        launching=["i-launching"],
    )
    # Then no group is worth reading
    assert sweep_of(discovery).stale_fleet(V2_ON_25) is False


def test_targets_the_pages_do_not_list_are_read_by_id_and_ips_map_from_the_pages() -> None:
    # Given a page that lists a fleet instance with its private IP
    discovery = PagedDiscovery([fleet("i-1", FRESH, ip="10.0.0.7")])
    sweep = sweep_of(discovery)
    # When a unit's targets are checked: the listed one, and one carrying no proxymx tag
    sweep.readiness([Target("i-1", None, "registered"), Target("i-untagged", None, "registered")])
    # Then only the untagged one is read by id; the IP maps from the pages
    assert discovery.reads == ["tagged", "by-id i-untagged"]
    assert sweep.by_private_ip == {"10.0.0.7": "i-1"}


class FailingDiscovery(PagedDiscovery):
    def tagged_instances(self) -> dict[str, InstanceFacts]:
        self.reads.append("tagged")
        raise ProxymxError("DescribeInstances of the tagged instances: AccessDenied")


def test_a_page_that_fails_fails_each_unit_that_needs_it_but_is_read_once() -> None:
    # Given the instance page cannot be read
    discovery = FailingDiscovery([])
    sweep = sweep_of(discovery)
    # When three sending groups are checked
    errors = []
    for _ in range(3):
        with pytest.raises(ProxymxError) as raised:
            sweep.stale_fleet(V2_ON_25)
        errors.append(str(raised.value))
    # Then each fails with the page's error (the sweep reports them, its alarm fires), read once
    assert errors == ["DescribeInstances of the tagged instances: AccessDenied"] * 3
    assert discovery.reads == ["tagged"]
