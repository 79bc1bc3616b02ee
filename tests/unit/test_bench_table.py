"""The benchmark's arithmetic: medians, header on / header off through the same proxy, and the
reference ratio to the direct path (no Postfix needed)."""

from __future__ import annotations

import sys

import pytest
from proxymx_tools.bench import BenchConfig, BenchResult
from proxymx_tools.bench_coldstart import BASELINE, Sample, paired, table


def test_ratios_are_medians_of_each_header_path_over_the_header_off_median() -> None:
    # Given three rounds per path, the same proxy with the header off being the reference
    result = BenchResult(BenchConfig(rounds=3), "3.7.11")
    result.rates = {
        "off": [100.0, 300.0, 200.0],
        "v1": [198.0, 150.0, 900.0],
        "v2": [50.0, 100.0, 150.0],
        "direct": [400.0, 250.0, 300.0],
    }

    # When the table is computed
    table = result.table()

    # Then each rate is the median (robust to one outlier round); each ratio is the median of
    # the same round's header on / header off (paired: v1 1.98, 0.5, 4.5 -> 1.98; v2 0.5, 0.33,
    # 0.75 -> 0.5), the direct path is a second reference, and the target 0.97 is judged
    assert result.median("off") == 200.0
    assert result.ratio("v1") == 1.98
    assert result.ratio("v2") == 0.5
    assert result.ratio("off", "direct") == 200.0 / 300.0  # 0.25, 1.2, 0.667
    assert "1.98" in table and "0.50" in table and "0.67" in table
    assert "v1 1.98 ok" in table and "v2 0.50 BELOW" in table
    assert "3 interleaved round(s), median" in table


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
