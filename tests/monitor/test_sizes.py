from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oomguard.monitor.sizes import (
    BINARY_SUFFIXES,
    DECIMAL_SUFFIXES,
    SizeError,
    format_size,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1", 1),
        ("1048576", 1048576),
        ("512Mi", 512 * 2**20),
        ("2G", 2 * 10**9),
        ("1.5Gi", 3 * 2**29),
        ("1k", 1000),
        ("64Ki", 65536),
        ("1e9", 10**9),
        ("1E3", 1000),
        ("12e-1", 2),  # 1.2 bytes rounds up, like the kubelet
        ("0.5", 1),
        (".5Ki", 512),
        ("3.", 3),
        ("  300Mi\n", 300 * 2**20),
        ("1Ei", 2**60),
    ],
)
def test_known_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "Mi",
        "-1",
        "+5",
        "1.5.5",
        "512MB",
        "512mi",
        "1K",
        "2 G",
        "1e",
        "1e1000",
        "max",
        "1Mi1",
        "0x10",
        "1_000",
        "\uff11\uff12",  # fullwidth digits
    ],
)
def test_invalid_sizes_raise_clear_error(text):
    with pytest.raises(SizeError, match="invalid size"):
        parse_size(text)


def test_size_error_is_a_value_error_for_argparse():
    assert issubclass(SizeError, ValueError)


@given(st.integers(min_value=0, max_value=2**70))
def test_plain_integers_round_trip(value):
    assert parse_size(str(value)) == value


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(BINARY_SUFFIXES)))
def test_binary_suffixes_multiply(value, suffix):
    assert parse_size(f"{value}{suffix}") == value * BINARY_SUFFIXES[suffix]


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(sorted(s for s in DECIMAL_SUFFIXES if s)),
)
def test_decimal_suffixes_multiply(value, suffix):
    assert parse_size(f"{value}{suffix}") == value * DECIMAL_SUFFIXES[suffix]


@given(
    st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False),
    st.sampled_from(sorted(BINARY_SUFFIXES)),
)
def test_fractions_round_up_to_whole_bytes(number, suffix):
    exact = Decimal(number) * BINARY_SUFFIXES[suffix]
    parsed = parse_size(f"{number}{suffix}")
    assert parsed >= exact
    assert parsed - exact < 1


@given(st.text(max_size=12))
def test_arbitrary_text_parses_or_raises_size_error(text):
    try:
        value = parse_size(text)
    except SizeError:
        return
    assert value >= 0


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (1023, "1023B"),
        (1024, "1.0Ki"),
        (300 * 2**20, "300.0Mi"),
        (3 * 2**29, "1.5Gi"),
        (-2048, "-2.0Ki"),
    ],
)
def test_format_size(size, text):
    assert format_size(size) == text
