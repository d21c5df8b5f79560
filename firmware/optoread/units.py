"""DLMS physical units (Blue Book, class 3 "Register", scaler_unit) and scaler arithmetic.

A register value travels as an integer plus ``scaler_unit = {scaler, unit}``:
the physical value is ``value * 10**scaler`` in ``unit`` (an enum 1..255).

* :func:`unit_name` gives the symbol of a unit code (``27`` -> ``"W"``).
* :func:`apply_scaler` gives the scaled number: an ``int`` when the scaler is
  >= 0, else a ``float`` (correctly rounded on CPython; on boards with
  single-precision floats a large value loses digits).
* :func:`scaled_text` gives the exact decimal text (``2307, -1`` -> ``"230.7"``)
  with integer arithmetic only, for display and storage without float rounding.
"""

from optoread.compat import const
from optoread.errors import AxdrError

_MAX_SCALER = const(127)  # scaler is an int8 on the wire

# Unit enumeration -> symbol (Blue Book, class 3 unit list): codes 1..72 in order, "|"
# between them, empty where a code is not assigned (58, 59, 66..69 in the editions this table
# follows; unknown codes give None). One string, not a table: a table interns ~70 names (RAM).
_SYMBOLS = (
    "a|mo|wk|d|h|min|s|\u00b0|\u00b0C|currency|m|m/s|m3|m3|m3/h|m3/h|m3/d|m3/d|l|kg|N|Nm|Pa|"
    "bar|J|J/h|W|VA|var|Wh|VAh|varh|A|C|V|V/m|F|\u03a9|\u03a9m2/m|Wb|T|A/m|H|Hz|1/(Wh)|"
    "1/(varh)|1/(VAh)|V2h|A2h|kg/s|S|K|1/(V2h)|1/(A2h)|1/m3|%|Ah|||Wh/m3|J/m3|Mol %|"
    "g/m3|Pa s|J/kg|||||dBm|dB\u00b5V|dB"
)
_LAST_SYMBOL = const(72)
_HIGH = {253: "reserved", 254: "other", 255: "count"}

# Codes 13/14, 15/16 and 17/18 share a symbol: the second of each pair is the volume
# corrected to base conditions. QUANTITY names the cases where the symbol alone is ambiguous.
QUANTITY = {
    13: "volume", 14: "corrected volume", 15: "volume flux", 16: "corrected volume flux",
    17: "volume flux", 18: "corrected volume flux", 255: "no unit, unitless, count",
}


def unit_name(code):
    """Symbol of DLMS unit ``code`` (``30`` -> ``"Wh"``), or None when the code is not assigned."""
    if not isinstance(code, int):
        return None
    if not 1 <= code <= _LAST_SYMBOL:
        return _HIGH.get(code)
    start = 0
    for _ in range(code - 1):
        start = _SYMBOLS.index("|", start) + 1
    end = _SYMBOLS.find("|", start)
    return _SYMBOLS[start:end if end >= 0 else len(_SYMBOLS)] or None


def _check(value, scaler):
    if not isinstance(scaler, int) or isinstance(scaler, bool) or not -128 <= scaler <= _MAX_SCALER:
        raise AxdrError("scaler must be an integer -128..127", "scaler")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise AxdrError("a scaled value must be a number", "value")


def apply_scaler(value, scaler):
    """``value * 10**scaler``: an int when ``value`` is an int and ``scaler >= 0``, else a float.

    For a negative scaler the integer is divided by a power of ten, so on CPython the
    result is the float nearest to the exact decimal (``93, -1`` -> ``9.3``, not
    ``9.300000000000001``). Use :func:`scaled_text` when every digit matters. Raises
    AxdrError for a non-number value or a scaler outside int8.
    """
    _check(value, scaler)
    if scaler >= 0:
        return value * 10**scaler
    return value / 10**-scaler


def scaled_text(value, scaler):
    """Exact decimal text of ``value * 10**scaler`` for an int ``value`` (``-5, -2`` -> ``"-0.05"``).

    A float ``value`` (float32/float64 registers) is formatted with ``repr`` after scaling.
    """
    _check(value, scaler)
    if not isinstance(value, int):
        return repr(apply_scaler(value, scaler))
    if scaler >= 0:
        return str(value * 10**scaler)
    k = -scaler
    sign = "-" if value < 0 else ""
    digits = str(abs(value))
    if len(digits) <= k:
        digits = "0" * (k - len(digits) + 1) + digits
    return sign + digits[:-k] + "." + digits[-k:]


def presented(d):
    """A stored session as a dict (``device.services.session_json``), with what a person or a
    system reads added: each value's ``scaled`` (exact text; None for a number the meter gave
    neither scaler nor unit for, whose ``unit_symbol`` is then "unknown") and ``unit_symbol``,
    and each profile's ``scaled`` rows. For printing only (``optoread device --json``)."""

    def one(value, scaler, unit):
        sym = unit_name(unit) if isinstance(unit, int) else unit
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None, sym
        if scaler is None and unit is None:
            return None, "unknown"
        return scaled_text(value, scaler or 0), sym

    for v in d["values"]:
        v["scaled"], v["unit_symbol"] = one(v["value"], v["scaler"], v["unit"])
    for p in d["profiles"]:
        cols = p["columns"]
        p["scaled"] = [[r[0]] + [one(c, cols[i][1], cols[i][2])[0] if i < len(cols) else None
                                 for i, c in enumerate(r[1:])] for r in p["rows"]]
    return d
