"""The benchmarks' arithmetic: header on / header off through the same proxy in adjacent pairs,
the cold start's ratios paired by round (no Postfix needed)."""

from __future__ import annotations

import sys

import pytest
from proxymx_tools.bench import BenchConfig, BenchResult
from proxymx_tools.bench_coldstart import BASELINE, Sample, paired, table


def test_header_ratios_are_medians_of_adjacent_on_off_pairs_with_their_spread() -> None:
    # Given three rounds of adjacent (on, off) pairs for each header path, the machine slowing
    # down in the last round (both sides of each pair alike)
    result = BenchResult(BenchConfig(rounds=3), "3.7.11")
    result.pairs = {
        "v1": [(198.0, 200.0), (300.0, 300.0), (90.0, 100.0)],
        "v2": [(100.0, 200.0), (150.0, 300.0), (60.0, 100.0)],
        "direct": [(220.0, 200.0), (330.0, 300.0), (110.0, 100.0)],
    }
    result.rates = {
        "off": [200.0, 300.0, 100.0, 200.0, 300.0, 100.0],
        "v1": [198.0, 300.0, 90.0],
        "v2": [100.0, 150.0, 60.0],
        "direct": [220.0, 330.0, 110.0],
    }

    # And the CPU per message the proxy + postscreen spent on each load (seconds)
    result.cpu = {"off": [0.0004] * 6, "v1": [0.00044] * 3, "v2": [0.0004] * 3, "direct": [0.0001] * 3}
    result.cpu_pairs = {
        "v1": [(0.00044, 0.0004), (0.00045, 0.0004), (0.0005, 0.0004)],
        "v2": [(0.0004, 0.0004)] * 3,
        "direct": [(0.0001, 0.0004)] * 3,
    }

    # When the table is computed
    table = result.table()

    # Then the CPU ratio is the median of the pairs' on / off too (1.1, 1.125, 1.25 -> 1.125),
    # printed beside each path's microseconds per message
    assert result.cpu_ratio("v1") == pytest.approx(1.125)
    assert "v1 1.12, v2 1.00" in table
    assert "440" in table and "100   0.25" in table

    # And each ratio is the median of its pairs' on / off (v1: 0.99, 1.0, 0.9 -> 0.99; the
    # unpaired medians would say 198 / 200 too, but v2's 0.5, 0.5, 0.6 -> 0.5 vs 100 / 200 only by
    # luck), with the middle half of the pairs as its spread, and the target 0.97 judged
    assert result.ratio("v1") == 0.99
    assert result.ratio("v2") == 0.5
    assert result.ratio("direct") == 1.1
    assert result.spread("v1") == pytest.approx((0.945, 0.995))
    assert result.median("off") == 200.0
    assert "0.990" in table and "[0.945-0.995]" in table
    assert "v1 0.990 ok" in table and "v2 0.500 BELOW" in table
    assert "3 round(s) of adjacent on/off pairs (ABBA), not pinned" in table
    # And without a cgroup to read Postfix's CPU from, the instance's figure says so
    assert "instance capacity: n/a" in table


def test_instance_capacity_is_the_median_of_the_pairs_off_over_on_cpu_of_all_of_postfix() -> None:
    # Given the whole Postfix's CPU per message in three adjacent (on, off) pairs per header
    # path (seconds): v1 costs 1 %, 2 % and 25 % more than its twin load; v2 the same as off
    result = BenchResult(BenchConfig(rounds=3), "3.7.11")
    result.rates = {path: [100.0] for path in ("off", "v1", "v2", "direct")}
    result.pairs = {path: [(100.0, 100.0)] for path in ("v1", "v2", "direct")}
    result.instance_cpu = {
        "off": [0.002] * 6,
        "v1": [0.00202, 0.00204, 0.0025],
        "v2": [0.002] * 3,
        "direct": [],
    }
    result.instance_pairs = {
        "v1": [(0.00202, 0.002), (0.00204, 0.002), (0.0025, 0.002)],
        "v2": [(0.002, 0.002)] * 3,
        "direct": [],
    }
    # When the table is computed
    table = result.table()
    # Then the capacity with the header is off / on, the median over the pairs (0.99, 0.98, 0.8
    # -> 0.98), with its spread, judged against the target, beside the microseconds per message
    assert result.capacity("v1") == pytest.approx(0.002 / 0.00204)
    assert result.capacity("v2") == 1.0 and result.capacity("off") == 1.0
    assert result.capacity("direct") is None
    assert "v1 0.980 ok, v2 1.000 ok" in table
    # And the estimate from its parts: postscreen's extra 20 us (v1) and 0 us (v2) per message
    # over all of Postfix's 2,000 us without the header
    result.postscreen_cpu = {"off": [0.00008] * 6, "v1": [0.0001] * 3, "v2": [0.00007] * 3, "direct": []}
    assert result.capacity_from_postscreen("v1") == pytest.approx(0.99)
    assert result.capacity_from_postscreen("v2") == 1.0
    assert "its parts" in result.table() and "v1 0.990, v2 1.000" in result.table()
    assert "2040" in table and "[0.890-0.985]" in table
    # And a path whose capacity drops below the target is called out
    result.instance_pairs["v2"] = [(0.0025, 0.002)] * 3
    assert "v2 0.800 BELOW" in result.table()


def test_cold_start_ratios_are_paired_by_round_with_their_spread_and_the_verdict() -> None:
    # Given three rounds in which the machine slowed down in round 3 (baseline and function alike)
    samples = {
        BASELINE: [Sample(0.200, 1000), Sample(0.200, 1000), Sample(0.400, 1000)],
        "Fast": [Sample(0.220, 1100), Sample(0.230, 1100), Sample(0.440, 1100)],
        "Slow": [Sample(0.260, 1200), Sample(0.250, 1200), Sample(0.500, 1200)],
    }
    # When the table is computed (with one deterministic instruction count each)
    text = table(samples, 3, sys.executable, 1.8, {BASELINE: 1000, "Fast": 1100, "Slow": 1300})
    rows = {line.split()[0]: line for line in text.splitlines() if line.split()[:1] in (["Fast"], ["Slow"])}
    # Then each ratio is the median of the rounds' own ratios (Fast 1.10, 1.15, 1.10 -> 1.10;
    # unpaired medians would say 0.23 / 0.20 = 1.15), with the middle half of them as its spread
    assert paired(samples["Fast"], samples[BASELINE], "cpu_seconds") == pytest.approx([1.1, 1.15, 1.1])
    assert " 1.10 " in rows["Fast"] and "[1.10-1.12]" in rows["Fast"] and " ok " in rows["Fast"]
    # And a function over 1.20 (1.30, 1.25, 1.25 -> 1.25) is judged OVER; RSS 1.20 > 1.15 too
    assert " 1.25 " in rows["Slow"] and rows["Slow"].count("OVER") == 2
    # And the instruction counts are ratios to the baseline's
    assert rows["Fast"].endswith("1.100") and rows["Slow"].endswith("1.300")
    assert "1.8 MB, limit 8 MB: ok" in text
