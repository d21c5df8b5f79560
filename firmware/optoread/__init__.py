"""optoread: a hand-held electricity meter reader (IEC 62056-21, DLMS/COSEM).

The modules in this package are sans-IO protocol code shared unchanged by the
board, the MicroPython unix port and CPython. See docs/architecture.md.
"""

__version__ = "0.1.0"
