"""Which MicroPython binary the host-side tests, benchmarks and the demo run (CPython only).

One place for it: ``$OPTOREAD_MICROPYTHON`` when set (e.g. ``../shared/emu/micropython32``, the
32-bit unix port), else the 64-bit unix port in the venv (``.venv/bin/micropython``). The tests
import :data:`MICROPYTHON`; ``tools/bench*.py`` and ``tools/demo.py`` add ``--micropython PATH``
with :func:`add_argument`, defaulting to the same.
"""

import os

ENV = "OPTOREAD_MICROPYTHON"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")


def default():
    """``$OPTOREAD_MICROPYTHON`` (made absolute: runners change directory), else the venv's binary."""
    path = os.environ.get(ENV)
    return os.path.abspath(path) if path else VENV_MICROPYTHON


MICROPYTHON = default()


def add_argument(parser):
    """Add ``--micropython PATH`` (default :data:`MICROPYTHON`) to an argparse parser."""
    parser.add_argument("--micropython", metavar="PATH", default=MICROPYTHON,
                        help="MicroPython binary to run (default $%s or .venv/bin/micropython: %s)"
                        % (ENV, MICROPYTHON))


def from_argv(argv):
    """Take ``--micropython PATH`` (or ``--micropython=PATH``) out of the list ``argv`` (scripts
    that read their options by hand); return PATH, else :data:`MICROPYTHON`."""
    for i, a in enumerate(argv):
        if a == "--micropython" and i + 1 < len(argv):
            path = argv[i + 1]
            del argv[i:i + 2]
            return os.path.abspath(path)
        if a.startswith("--micropython="):
            del argv[i]
            return os.path.abspath(a.split("=", 1)[1])
    return MICROPYTHON
