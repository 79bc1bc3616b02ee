"""The benchmark's arithmetic: medians and ratios to the direct path (no Postfix needed)."""

from __future__ import annotations

from proxymx_tools.bench import BenchConfig, BenchResult


def test_ratios_are_medians_of_each_proxied_path_over_the_direct_median() -> None:
    # Given three rounds per path
    result = BenchResult(BenchConfig(rounds=3), "3.7.11")
    result.rates = {"direct": [100.0, 300.0, 200.0], "v1": [180.0, 150.0, 900.0], "v2": [50.0, 100.0, 150.0]}

    # When the table is computed
    table = result.table()

    # Then each figure is the median (robust to one outlier round) and the ratio is to direct
    assert result.median("direct") == 200.0
    assert result.ratio("v1") == 0.9
    assert result.ratio("v2") == 0.5
    assert "0.90" in table and "0.50" in table
    assert "3 interleaved round(s), median" in table
