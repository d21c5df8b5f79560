"""The one place where MicroPython and CPython differ for the firmware.

Everything else imports ``const`` and the ticks helpers from here, so the
protocol modules run unchanged on a board, the unix port and CPython.
"""

# The fallbacks below redefine names that the board stubs declare as builtins.
# pyright: reportAssignmentType=false

import sys

IS_MICROPYTHON = sys.implementation.name == "micropython"

# True where float is IEEE single precision (the rp2 and esp32 builds: 1e39 is inf there), since
# 2**24 + 1 then rounds to 2**24. A-XDR float64 values follow a rule for it
# (axdr_types.float64); tests set it to check that rule on a double-precision host.
SINGLE_FLOAT = float(16777217) == 16777216.0

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


def viper(fallback, src):
    """The function ``f`` that ``src`` defines (an ``@micropython.viper`` function) compiled to
    machine code where the port has a native emitter, else ``fallback``: the same algorithm in
    Python (CPython, a port without an emitter).

    For the innermost byte loops (HDLC CRC and copies), which viper runs ~40x faster on an
    RP2040. The source is compiled when the module is imported, not by mpy-cross: a bytecode
    ``.mpy`` (the unix board, ``make mpy``'s first pass) cannot hold native code. It costs RAM
    (the machine code and the source: keep both short). Viper checks no bounds: callers pass
    ranges they checked.
    """
    if IS_MICROPYTHON:
        g = globals()  # this module's: no dict per function (viper code reads no globals)
        try:
            exec(src, g)
            return g.pop("f")
        except Exception:  # no emitter, no compiler or no RAM: the Python version
            pass
    return fallback


try:
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython: emulate MicroPython's wrapping millisecond ticks
    import time as _time

    # Same period as a 32-bit board (2**30) so wrap handling is exercised on the host too.
    TICKS_PERIOD = 1 << 30
    _TICKS_HALF = TICKS_PERIOD // 2

    def ticks_ms():
        return int(_time.monotonic()  # pyright: ignore[reportAttributeAccessIssue]
                   * 1000) & (TICKS_PERIOD - 1)

    def ticks_add(ticks, delta):
        return (ticks + delta) & (TICKS_PERIOD - 1)

    def ticks_diff(a, b):
        return ((a - b + _TICKS_HALF) & (TICKS_PERIOD - 1)) - _TICKS_HALF


def sleep_ms(ms):
    """Block for ``ms`` milliseconds (board glue and transports only: protocol code never sleeps)."""
    import time

    if IS_MICROPYTHON:
        time.sleep_ms(ms)  # pyright: ignore[reportAttributeAccessIssue]
    else:
        time.sleep(ms / 1000)


def buffer(n, lent=None):
    """``lent`` when it holds at least ``n`` octets (fixed buffers allocated once, e.g.
    ``session.LinkBuffers``), else a new ``bytearray(n)``."""
    return lent if lent is not None and len(lent) >= n else bytearray(n)


def unload(name):
    """Forget the firmware module ``optoread.<name>`` (a dotted name below the package, e.g.
    ``"store.mount"``) so that its code is freed by the next collection once nothing refers to it;
    the next import loads it again from flash.

    For a module that only one phase of a reading needs (the IEC sign-on before a direct-HDLC
    reading): its bytecode would otherwise stay on the heap while profile rows stream. MicroPython
    only: CPython's modules cost nothing that matters, and tests hold references to them.
    """
    if IS_MICROPYTHON:
        full = "optoread." + name
        sys.modules.pop(full, None)
        parent, _, leaf = full.rpartition(".")
        pkg = sys.modules.get(parent)
        if pkg is not None and hasattr(pkg, leaf):
            delattr(pkg, leaf)  # the package keeps each imported submodule as an attribute


def heap_free():
    """Free heap in bytes after a full collection (MicroPython), or None where there is no fixed
    heap to measure (CPython): the console's ``status`` and ``heapwatch`` report it."""
    import gc

    gc.collect()
    return gc.mem_free() if hasattr(gc, "mem_free") else None


def hexstr(data):
    """Upper-case hex of a bytes-like object, space separated (for error messages and logs)."""
    return " ".join("%02X" % b for b in data)
