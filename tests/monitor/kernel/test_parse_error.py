import pytest
from hypothesis import given
from hypothesis import strategies as st

from oomguard.monitor.kernel.parse_error import (
    U64_MAX,
    ParseError,
    decode_lines,
    parse_flat_keyed,
    parse_u64,
)


@pytest.mark.parametrize("token", ["0", "7", "007", str(U64_MAX)])
def test_u64_accepts_unsigned_decimals(token):
    assert parse_u64(token, "f", 1, ParseError, "k") == int(token)


@pytest.mark.parametrize(
    "token", ["-1", "+1", "1_000", " 1", "1.0", "0x10", "", "١٢", str(U64_MAX + 1), "9" * 21]
)
def test_u64_rejects_everything_else(token):
    with pytest.raises(ParseError, match=r"^f:3: k: "):
        parse_u64(token, "f", 3, ParseError, "k")


def test_huge_digit_strings_do_not_hit_python_int_limits():
    with pytest.raises(ParseError):
        parse_u64("9" * 5000, "f", 1, ParseError, "k")


def test_non_utf8_names_line():
    with pytest.raises(ParseError, match=r"^f:2: not UTF-8"):
        decode_lines(b"a 1\n\xffb 2\n", "f", ParseError)


def test_duplicate_key_is_an_error():
    with pytest.raises(ParseError, match="appears twice"):
        parse_flat_keyed(b"a 1\na 2\n", "f", ParseError)


def test_carriage_return_is_not_whitespace():
    with pytest.raises(ParseError):
        parse_flat_keyed(b"a 1\r\n", "f", ParseError)


@given(st.binary())
def test_flat_keyed_raises_only_parse_error(data):
    try:
        values = parse_flat_keyed(data, "f", ParseError)
    except ParseError:
        return
    assert all(0 <= v <= U64_MAX for v in values.values())
