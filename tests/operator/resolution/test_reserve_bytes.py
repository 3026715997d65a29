from decimal import Decimal

import pytest

from oomguard.operator.resolution.reserve_bytes import (
    AbsoluteReserve,
    PercentReserve,
    ReserveError,
    parse_quantity,
    reserve_rule_from_spec,
)

MI = 2**20
GI = 2**30


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (1024, 1024),
        ("512Mi", 512 * MI),
        ("2Gi", 2 * GI),
        ("1G", 10**9),
        ("1.5Gi", 3 * GI // 2),
    ],
)
def test_quantities(value, expected):
    assert parse_quantity(value, "x") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "x: must not be negative"),
        (True, "expected a memory quantity"),
        (1.5, "expected a memory"),
        ("2 gigs", "x: invalid size"),
        ("-1Gi", "x: invalid size"),
    ],
)
def test_bad_quantities(value, message):
    with pytest.raises(ReserveError, match=message):
        parse_quantity(value, "x")


def test_absolute_ignores_node_memory():
    rule = reserve_rule_from_spec({"absolute": "2Gi"})
    assert rule == AbsoluteReserve(2 * GI)
    assert rule.bytes_for(None) == 2 * GI
    assert rule.bytes_for(64 * GI) == 2 * GI
    assert not rule.needs_node_memory


@pytest.mark.parametrize(
    ("spec", "memory", "expected"),
    [
        ({"percent": 10}, 8 * GI, 8 * GI // 10),
        ({"percent": 10, "min": "512Mi", "max": "10Gi"}, 2 * GI, 512 * MI),
        ({"percent": 10, "min": "512Mi", "max": "10Gi"}, 8 * GI, 8 * GI // 10),
        ({"percent": 10, "min": "512Mi", "max": "10Gi"}, 200 * GI, 10 * GI),
        ({"percent": 12.5}, 8 * GI, GI),
        ({"percent": 33.3}, 1000, 333),  # rounded down to whole bytes
        ({"percent": 0.1}, 10**9, 10**6),
        ({"percent": 50, "min": "1Gi", "max": "1Gi"}, 64 * GI, GI),
        ({"percent": 50, "max": 100}, 10**9, 100),
        ({"percent": 50, "min": 10**9}, 1000, 10**9),
        ({"percent": 99.9}, 0, 0),
    ],
)
def test_percent_with_clamps(spec, memory, expected):
    rule = reserve_rule_from_spec(spec)
    assert rule.needs_node_memory
    assert rule.bytes_for(memory) == expected


def test_percent_without_memory_is_a_caller_bug():
    with pytest.raises(ReserveError, match="needs the node's memory"):
        PercentReserve(Decimal(10)).bytes_for(None)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "exactly one of absolute or percent"),
        ({"absolute": "1Gi", "percent": 5}, "exactly one of absolute or percent"),
        ({"absolute": "1Gi", "min": "1Mi"}, "min and max bound a percent reserve"),
        ({"absolute": 0}, "absolute: must be a positive"),
        ({"absolute": "lots"}, "reserve.absolute: invalid size"),
        ({"percent": 0}, r"percent: must be greater than 0 and less than 100"),
        ({"percent": 100}, r"less than 100"),
        ({"percent": -3}, r"greater than 0"),
        ({"percent": "10%"}, "percent: expected a number"),
        ({"percent": True}, "percent: expected a number"),
        ({"percent": 10, "min": "2Gi", "max": "1Gi"}, "min must not exceed max"),
        ({"percent": 10, "min": "x"}, "reserve.min: invalid size"),
        ([], "reserve: expected an object"),
    ],
)
def test_bad_rules(spec, message):
    with pytest.raises(ReserveError, match=message):
        reserve_rule_from_spec(spec)
