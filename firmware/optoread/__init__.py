"""optoread: a hand-held electricity meter reader (IEC 62056-21, DLMS/COSEM).

Sans-IO protocol code shared unchanged by the board, the MicroPython unix port and CPython, a
package per standard (``iec62056_21``, ``dlms``), the reading store (``store``) and the reader
itself (``device``) over a few shared modules. The subpackages are namespace packages (no
``__init__``: nothing to keep on a board's heap). See docs/architecture.md.
"""

__version__ = "0.1.0"

