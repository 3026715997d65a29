"""Repetitions to one cell: median first, the spread only when the runs differ."""

from stormlib.spread import by_repetition, median, per_repetition, spread


def show(value):
    return "-" if value is None else f"{value:.0f}"


def test_the_median_comes_first_and_the_spread_beside_it():
    assert spread([30, 10, 20], show) == "20 [10-30]"


def test_runs_that_agree_show_one_value():
    assert spread([0, 0, 0], show) == "0"
    assert spread([7], show) == "7"


def test_runs_without_the_figure_are_left_out_not_counted_as_zero():
    assert spread([None, 4, None, 8], show) == "6 [4-8]"
    assert spread([None, None], show) == "-"
    assert median([None, 3.0]) == 3.0
    assert median([]) is None


def test_figures_are_computed_within_each_repetition_in_order():
    rows = [
        {"repetition": 1, "x": 5},
        {"repetition": 0, "x": 1},
        {"repetition": 1, "x": 6},
        {"x": 2},  # an older raw file: no repetition, counted as the first
    ]
    assert sorted(by_repetition(rows)) == [0, 1]
    assert per_repetition(rows, lambda rep: sum(r["x"] for r in rep)) == [3, 11]
