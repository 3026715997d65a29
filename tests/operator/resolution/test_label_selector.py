import pytest
from hypothesis import given
from hypothesis import strategies as st

from oomguard.operator.resolution.label_selector import LabelSelector, SelectorError

LABELS = {"role": "worker", "zone": "a", "gpu": ""}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (None, True),
        ({}, True),
        ({"matchLabels": {}}, True),
        ({"matchLabels": {"role": "worker"}}, True),
        ({"matchLabels": {"role": "worker", "zone": "b"}}, False),
        ({"matchLabels": {"missing": "x"}}, False),
        ({"matchLabels": {"gpu": ""}}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["c"]}]}, False),
        ({"matchExpressions": [{"key": "nope", "operator": "In", "values": ["c"]}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b"]}]}, True),
        ({"matchExpressions": [{"key": "nope", "operator": "NotIn", "values": ["b"]}]}, True),
        ({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "nope", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}, False),
        ({"matchExpressions": [{"key": "nope", "operator": "DoesNotExist", "values": []}]}, True),
        (
            {
                "matchLabels": {"role": "worker"},
                "matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}],
            },
            False,
        ),
        (
            {
                "matchLabels": {"role": "worker"},
                "matchExpressions": [
                    {"key": "zone", "operator": "In", "values": ["a"]},
                    {"key": "gpu", "operator": "Exists"},
                ],
            },
            True,
        ),
    ],
)
def test_matches_like_the_apiserver(selector, expected):
    assert LabelSelector.from_spec(selector).matches(LABELS) is expected


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ([], "nodeSelector: expected an object"),
        ({"matchLabels": []}, "matchLabels: expected an object"),
        ({"matchLabels": {"a": 1}}, r"matchLabels.a: expected a string"),
        ({"matchExpressions": {}}, "matchExpressions: expected a list"),
        ({"matchExpressions": ["x"]}, r"matchExpressions\[0\]: expected an object"),
        ({"matchExpressions": [{"operator": "Exists"}]}, r"\[0\].key: expected a label key"),
        ({"matchExpressions": [{"key": "a", "operator": "Is"}]}, "operator: expected one of In"),
        ({"matchExpressions": [{"key": "a", "operator": "In"}]}, "In needs at least one value"),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]}, "NotIn needs"),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            "Exists takes no values",
        ),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]}, "list of strings"),
    ],
)
def test_bad_selectors_are_explained(selector, message):
    with pytest.raises(SelectorError, match=message):
        LabelSelector.from_spec(selector)


label_maps = st.dictionaries(st.sampled_from("abcd"), st.sampled_from(["x", "y", ""]), max_size=4)


@given(labels=label_maps, selected=label_maps)
def test_match_labels_is_subset(labels, selected):
    matches = LabelSelector.from_spec({"matchLabels": selected}).matches(labels)
    assert matches == (selected.items() <= labels.items())


@given(
    labels=label_maps,
    key=st.sampled_from("abcd"),
    values=st.sets(st.sampled_from("xy"), min_size=1),
)
def test_in_and_notin_are_complements(labels, key, values):
    def sel(op):
        return LabelSelector.from_spec(
            {"matchExpressions": [{"key": key, "operator": op, "values": sorted(values)}]}
        )

    assert sel("In").matches(labels) != sel("NotIn").matches(labels)
