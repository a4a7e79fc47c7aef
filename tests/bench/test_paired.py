"""Paired rounds: per-round ratios → median and spread, and the order rows are timed in."""

from __future__ import annotations

import time

import pytest

from edgevision import errors
from edgevision.bench.paired import RatioStats, in_process, pair_key, time_round


def test_median_and_spread_of_per_round_ratios():
    # reference / candidate per round: 2, 4, 3, 10 (one disturbed round), 3
    stats = RatioStats.from_times([20.0, 40.0, 30.0, 100.0, 30.0], [10.0, 10.0, 10.0, 10.0, 10.0])
    assert stats.per_round == (2.0, 4.0, 3.0, 10.0, 3.0)
    assert stats.median == 3.0  # not the best round's 10×, nor the ratio of the rows' best times (20/10)
    assert (stats.min, stats.max) == (2.0, 10.0)
    assert (stats.q1, stats.q3) == (3.0, 4.0)
    assert stats.rounds == 5
    assert stats.describe() == "3.00× (IQR 3.00–4.00, range 2.00–10.00, 5 rounds)"
    assert stats.to_dict()["per_round"] == [2.0, 4.0, 3.0, 10.0, 3.0]


def test_even_rounds_take_the_middle_two_and_one_round_has_no_spread():
    assert RatioStats.from_ratios([1.0, 2.0, 4.0, 8.0]).median == 3.0
    single = RatioStats.from_times([6.0], [2.0])
    assert (single.median, single.q1, single.q3, single.min, single.max) == (3.0, 3.0, 3.0, 3.0, 3.0)


def test_a_pair_differs_from_the_ratio_of_separately_chosen_rounds():
    """Load that hits both rows of a round cancels; picking each row's best round does not."""
    reference = [10.0, 20.0, 10.0]  # round 2 ran under load: both rows slowed 2×
    candidate = [5.0, 10.0, 5.0]
    assert RatioStats.from_times(reference, candidate).max == 2.0
    assert RatioStats.from_times(reference, candidate).min == 2.0


@pytest.mark.parametrize(("reference", "candidate"), [([1.0, 2.0], [1.0]), ([1.0], [0.0]), ([], [])])
def test_mismatched_empty_or_zero_rounds_are_rejected(reference, candidate):
    with pytest.raises(ValueError):
        RatioStats.from_times(reference, candidate)


def test_rounds_alternate_which_row_goes_first_and_the_order_of_pairs():
    order: list[str] = []
    calls = {name: in_process(lambda n=name: order.append(n)) for name in ("a", "b", "c")}
    pairs = [("a", "b"), ("a", "c")]
    for index in range(2):
        order.clear()
        measured, blocks = time_round(calls, pairs, round_index=index, iterations=5, warmup=0, pause_s=0.0)
        blocks_in_order = [order[i] for i in range(0, len(order), 5)]
        if index == 0:
            assert blocks_in_order == ["a", "b", "a", "c"]
            assert [m.reference_first for m in measured] == [True, True]
        else:
            assert blocks_in_order == ["c", "a", "b", "a"]
            assert [m.reference_first for m in measured] == [False, False]
        assert [len(blocks[k]) for k in ("a", "b", "c")] == [2, 1, 1]
        assert [(m.reference, m.candidate) for m in measured] == ([("a", "b"), ("a", "c")] if index == 0
                                                                  else [("a", "c"), ("a", "b")])


def test_a_slow_call_measures_slower_than_a_fast_one():
    calls = {"slow": in_process(lambda: time.sleep(0.002)), "fast": in_process(lambda: None)}
    measured, _ = time_round(calls, [("slow", "fast")], round_index=0, iterations=5, warmup=1, pause_s=0.0)
    ratio = RatioStats.from_times([measured[0].reference_ms], [measured[0].candidate_ms])
    assert measured[0].reference_ms >= 2.0
    assert ratio.median > 10


def test_pairs_naming_unknown_rows_or_too_few_iterations_are_config_errors():
    calls = {"a": in_process(lambda: None)}
    with pytest.raises(errors.ConfigError, match="not given"):
        time_round(calls, [("a", "b")], round_index=0, iterations=5, warmup=0)
    with pytest.raises(errors.ConfigError, match="iterations"):
        time_round(calls, [("a", "a")], round_index=0, iterations=2, warmup=0)


def test_pair_key_names_reference_then_candidate():
    assert pair_key("eager", "full_openvino") == "eager/full_openvino"
