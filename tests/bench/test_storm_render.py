"""What the page says of idle windows that began before the guards had settled."""

from stormlib.render import unsettled_note


def window(repetition, settled=None):
    base = {"contender": "oomguard", "seconds": 60.0, "repetition": repetition}
    return base if settled is None else {**base, "settled": settled}


def test_the_note_names_only_the_repetitions_that_did_not_settle():
    note = unsettled_note([window(0, False), window(0, False), window(1, True), window(2, False)])
    assert note[-1].startswith("Not settled: the idle window of repetitions 0, 2 began")


def test_one_repetition_is_named_alone():
    assert "of repetition 1 began" in unsettled_note([window(1, False)])[-1]


def test_no_note_when_every_window_settled_or_predates_the_flag():
    assert unsettled_note([window(0, True), window(1)]) == []
