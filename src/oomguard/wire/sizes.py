"""Memory sizes as people write them: ``512Mi``, ``2G``, ``1.5Gi``, ``1e9``, plain bytes.

The grammar is the Kubernetes resource quantity (binary ``Ki Mi Gi Ti Pi Ei``, decimal
``k M G T P E``, decimal exponents ``e``/``E``), so one size means the same thing on a
command line and in a pod spec. Fractional bytes round up, as the kubelet does.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

BINARY_SUFFIXES: dict[str, int] = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
DECIMAL_SUFFIXES: dict[str, int] = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}

_QUANTITY = re.compile(
    r"""
    (?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)
    (?:
        (?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)
      | [eE](?P<exponent>[+-]?[0-9]{1,3})
    )?
    """,
    re.VERBOSE,
)

_VALID = "bytes, or a number with Ki Mi Gi Ti Pi Ei (1024-based) or k M G T P E (1000-based)"


class SizeError(ValueError):
    """A size string that is not a valid non-negative memory quantity."""


def parse_size(text: str) -> int:
    """Bytes for a quantity string; raises ``SizeError`` naming the bad input and the grammar."""
    stripped = text.strip()
    match = _QUANTITY.fullmatch(stripped)
    if match is None:
        raise SizeError(f"invalid size {text!r}: expected {_VALID}, e.g. 512Mi, 2G, 1.5Gi")
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # pragma: no cover - the regex only admits decimals
        raise SizeError(f"invalid size {text!r}: {exc}") from exc
    suffix = match["suffix"]
    exponent = match["exponent"]
    if suffix is not None:
        scale = Decimal(BINARY_SUFFIXES.get(suffix) or DECIMAL_SUFFIXES[suffix])
        value = number * scale
    elif exponent is not None:
        value = number.scaleb(int(exponent))
    else:
        value = number
    return math.ceil(value)


def format_size(size: int) -> str:
    """A short binary rendering for logs (``300.0Mi``); exact bytes below 1 KiB."""
    if size < 0:
        return "-" + format_size(-size)
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        scale = BINARY_SUFFIXES[suffix]
        if size >= scale:
            return f"{size / scale:.1f}{suffix}"
    return f"{size}B"
