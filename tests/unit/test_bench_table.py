"""The benchmark's arithmetic: medians, header on / header off through the same proxy, and the
reference ratio to the direct path (no Postfix needed)."""

from __future__ import annotations

from proxymx_tools.bench import BenchConfig, BenchResult


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
