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

from .compat import const
from .errors import AxdrError

_MAX_SCALER = const(127)  # scaler is an int8 on the wire

# Unit enumeration -> symbol (Blue Book, class 3 unit list). 58, 59 and 66..69 are not
# assigned in the editions this table follows; unknown codes give None.
_UNITS = {
    1: "a", 2: "mo", 3: "wk", 4: "d", 5: "h", 6: "min", 7: "s", 8: "\u00b0", 9: "\u00b0C",
    10: "currency", 11: "m", 12: "m/s", 13: "m3", 14: "m3", 15: "m3/h", 16: "m3/h", 17: "m3/d",
    18: "m3/d", 19: "l", 20: "kg", 21: "N", 22: "Nm", 23: "Pa", 24: "bar", 25: "J", 26: "J/h",
    27: "W", 28: "VA", 29: "var", 30: "Wh", 31: "VAh", 32: "varh", 33: "A", 34: "C", 35: "V",
    36: "V/m", 37: "F", 38: "\u03a9", 39: "\u03a9m2/m", 40: "Wb", 41: "T", 42: "A/m", 43: "H",
    44: "Hz", 45: "1/(Wh)", 46: "1/(varh)", 47: "1/(VAh)", 48: "V2h", 49: "A2h", 50: "kg/s",
    51: "S", 52: "K", 53: "1/(V2h)", 54: "1/(A2h)", 55: "1/m3", 56: "%", 57: "Ah", 60: "Wh/m3",
    61: "J/m3", 62: "Mol %", 63: "g/m3", 64: "Pa s", 65: "J/kg", 70: "dBm", 71: "dB\u00b5V",
    72: "dB", 253: "reserved", 254: "other", 255: "count",
}

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
    return _UNITS.get(code)


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
