"""D-Bus values by signature on bytes: vectors written out by hand from the specification,
every signature hypothesis can build round-tripped, and each kind of malformed value
refused."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oomguard.monitor.systemd.dbus_values import (
    DBusWireError,
    Variant,
    decode_values,
    encode_values,
    split_types,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


VECTORS = [
    ("y", (1,), h("01")),
    ("b", (True,), h("01000000")),
    ("b", (False,), h("00000000")),
    ("n", (-2,), h("feff")),
    ("q", (0xBEEF,), h("efbe")),
    ("i", (-1,), h("ffffffff")),
    ("u", (2,), h("02000000")),
    ("x", (-(2**63),), h("0000000000000080")),
    ("t", (2**64 - 1,), h("ffffffffffffffff")),
    ("d", (1.0,), h("000000000000f03f")),
    ("yu", (1, 2), h("01 000000 02000000")),
    ("yq", (1, 2), h("01 00 0200")),
    ("yt", (1, 2), h("01 00000000000000 0200000000000000")),
    ("s", ("ab",), h("02000000 6162 00")),
    ("s", ("",), h("00000000 00")),
    ("ys", (7, "a"), h("07 000000 01000000 61 00")),
    ("o", ("/a",), h("02000000 2f61 00")),
    ("g", ("sv",), h("02 7376 00")),
    # array: the length counts the elements only, never the padding before the first one
    ("at", ([1],), h("08000000 00000000 0100000000000000")),
    ("at", ([],), h("00000000 00000000")),  # an empty array still pads to its elements
    ("ay", ([1, 2, 3],), h("03000000 010203")),
    ("as", (["a", "b"],), h("0e000000 01000000 6100 0000 01000000 6200")),
    ("(yu)", ((1, 2),), h("01 000000 02000000")),
    ("y(y)", (1, (2,)), h("01 00000000000000 02")),
    ("v", (Variant("t", 5),), h("01 74 00 0000000000 0500000000000000")),
    ("v", (Variant("s", "x"),), h("01 73 00 00 01000000 78 00")),
    ("a{sy}", ([("k", 9)],), h("07000000 00000000 01000000 6b00 09")),
    # systemctl set-property --runtime kubepods.slice MemoryHigh=infinity
    (
        "sba(sv)",
        ("kubepods.slice", True, [("MemoryHigh", Variant("t", 2**64 - 1))]),
        h(
            "0e000000 6b756265706f64732e736c696365 00"  # "kubepods.slice" at 0..19
            "00 01000000"  # padding to 20, true
            "20000000 00000000"  # array of 32 bytes at 24, padding to 32
            "0a000000 4d656d6f727948696768 00"  # "MemoryHigh" at 32..47
            "01 74 00"  # variant signature "t"
            "000000000000"  # padding to 56
            "ffffffffffffffff"
        ),
    ),
]


@pytest.mark.parametrize(("signature", "values", "data"), VECTORS)
def test_vectors_encode_and_decode(signature, values, data):
    assert encode_values(signature, values) == data
    assert decode_values(signature, data) == values


def test_dict_values_encode_like_lists_of_pairs():
    assert encode_values("a{sy}", ({"k": 9},)) == encode_values("a{sy}", ([("k", 9)],))


def test_big_endian_is_read():
    assert decode_values("u", h("00000002"), ">") == (2,)
    assert decode_values("s", h("00000001 61 00"), ">") == ("a",)


def test_alignment_counts_from_where_the_values_start_in_the_message():
    assert encode_values("u", (1,), start=2) == h("0000 01000000")
    # decoding reads the message from its first byte: the values start at ``start``
    assert decode_values("u", h("0000 0000 01000000"), start=2) == (1,)


@pytest.mark.parametrize(
    ("signature", "types"),
    [
        ("", []),
        ("sba(sv)", ["s", "b", "a(sv)"]),
        ("a{s(ia{sv})}y", ["a{s(ia{sv})}", "y"]),
        ("aay", ["aay"]),
    ],
)
def test_split_types(signature, types):
    assert split_types(signature) == types


@pytest.mark.parametrize(
    "signature",
    ["a", "(", "(s", "()", "{sv}", "a{vs}", "a{s}", "a{sss}", "z", "h", "a" * 40 + "y", ")"],
)
def test_malformed_signatures_are_refused(signature):
    with pytest.raises(DBusWireError):
        split_types(signature)


@pytest.mark.parametrize(
    ("signature", "value"),
    [
        ("y", 256),
        ("y", -1),
        ("u", 2**32),
        ("t", -1),
        ("t", 2**64),
        ("i", True),  # a bool is no integer here
        ("i", "1"),
        ("b", 1),
        ("d", "1"),
        ("s", b"bytes"),
        ("s", "nul\0inside"),
        ("o", "no/slash"),
        ("o", "/trailing/"),
        ("o", "/a//b"),
        ("o", "/a-b"),
        ("g", "z"),
        ("g", "y" * 256),
        ("v", 5),
        ("v", Variant("yy", 1)),
        ("as", "not a list"),
        ("(yy)", (1,)),
        ("(yy)", [1, 2]),
    ],
)
def test_values_that_do_not_fit_the_signature_are_refused(signature, value):
    with pytest.raises(DBusWireError):
        encode_values(signature, (value,))


def test_value_count_must_match_the_signature():
    with pytest.raises(DBusWireError):
        encode_values("yy", (1,))


@pytest.mark.parametrize(
    ("signature", "data"),
    [
        ("u", h("010000")),  # truncated
        ("yu", h("01 000100 02000000")),  # padding that is not zero
        ("b", h("02000000")),  # a boolean other than 0 or 1
        ("s", h("02000000 6162 01")),  # not NUL-terminated
        ("s", h("02000000 6100 00")),  # NUL inside
        ("s", h("02000000 ff61 00")),  # not UTF-8
        ("s", h("05000000 61 00")),  # longer than the data
        ("o", h("01000000 61 00")),  # not an object path
        ("g", h("01 7a 00")),  # no such type
        ("v", h("02 7979 00 0101")),  # a variant of two types
        ("ay", h("02000000 010203")),  # bytes left after the array
        ("at", h("04000000 00000000 0100000000000000")),  # elements overrun the length
        ("ay", h("01000008")),  # an array longer than 64 MiB
    ],
)
def test_malformed_values_are_refused(signature, data):
    with pytest.raises(DBusWireError):
        decode_values(signature, data)


# -- hypothesis: any signature, any fitting values, both ways ---------------------------

INTS = {
    "y": (0, 2**8 - 1),
    "n": (-(2**15), 2**15 - 1),
    "q": (0, 2**16 - 1),
    "i": (-(2**31), 2**31 - 1),
    "u": (0, 2**32 - 1),
    "x": (-(2**63), 2**63 - 1),
    "t": (0, 2**64 - 1),
}
TEXT = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=8)
PATHS = st.lists(st.from_regex(r"[A-Za-z0-9_]{1,5}", fullmatch=True), max_size=3).map(
    lambda parts: "/" + "/".join(parts)
)
BASIC = [(code, st.integers(low, high)) for code, (low, high) in INTS.items()] + [
    ("b", st.booleans()),
    ("d", st.floats(allow_nan=False)),
    ("s", TEXT),
    ("o", PATHS),
    ("g", st.sampled_from(["", "y", "sv", "a{sv}", "(ii)"])),
]
basic_types = st.sampled_from(BASIC)


def _array(element):
    sig, values = element
    return (f"a{sig}", st.lists(values, max_size=3))


def _struct(members):
    sig = "(" + "".join(m[0] for m in members) + ")"
    return (sig, st.tuples(*(m[1] for m in members)))


def _dict(pair):
    (key_sig, key_values), (value_sig, value_values) = pair
    return (f"a{{{key_sig}{value_sig}}}", st.lists(st.tuples(key_values, value_values), max_size=3))


def _variant(inner):
    sig, values = inner
    return ("v", values.map(lambda value: Variant(sig, value)))


complete_types = st.recursive(
    basic_types,
    lambda children: st.one_of(
        children.map(_array),
        st.lists(children, min_size=1, max_size=3).map(_struct),
        st.tuples(basic_types, children).map(_dict),
        children.map(_variant),
    ),
    max_leaves=6,
)


@given(st.lists(complete_types, max_size=4), st.integers(0, 7), st.data())
def test_every_value_round_trips(types, start, data):
    signature = "".join(sig for sig, _ in types)
    values = tuple(data.draw(strategy) for _, strategy in types)
    encoded = encode_values(signature, values, start=start)
    assert decode_values(signature, b"\0" * start + encoded, start=start) == values
