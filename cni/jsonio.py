"""JSON for the plugin's stdin and stdout, without importing the json package.

Why: json compiles regular expressions when imported, and `re` brings enum with it: a
good part of a standalone plugin's start, paid at every pod. The work itself is done by
_json, the C accelerator json uses, set up with json's defaults. Anything this does not
decode (malformed input, or an encoding other than UTF-8) goes to json.loads, which
decodes it or raises its usual error, so errors read as they always did; without _json
(another Python), json does it all.
"""

from __future__ import annotations

try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None  # type: ignore[assignment]

_WHITESPACE = " \t\n\r"  # JSON's insignificant whitespace (RFC 8259)
# json's default for the constants it accepts beyond the standard
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Defaults:
    """The attributes _json's scanner reads from a json.JSONDecoder, at json's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


def _fail(*_) -> None:
    raise TypeError  # json.dumps's own call below gives the message


if _json is not None:
    _scan = _json.make_scanner(_Defaults())  # type: ignore[arg-type]  # any object with those attributes
    # json.dumps's defaults: circular check, ASCII output, ", " and ": ", NaN allowed
    _encode = _json.make_encoder({}, _fail, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True)


def loads(data: bytes):
    """json.loads(data), for UTF-8 data."""
    if _json is not None:
        try:
            text = data.decode("utf-8")
            start = len(text) - len(text.lstrip(_WHITESPACE))
            value, end = _scan(text, start)
            if not text[end:].strip(_WHITESPACE):
                return value
        except Exception:  # any failure: json.loads below decides, and says why
            # (_json raises its errors as json.decoder's, and without json imported some
            # Pythons report a bare SystemError instead)
            pass
    import json

    return json.loads(data)


def dumps(obj) -> str:
    """json.dumps(obj)."""
    if _json is not None:
        try:
            return "".join(_encode(obj, 0))
        except (TypeError, ValueError):
            pass
    import json

    return json.dumps(obj)
