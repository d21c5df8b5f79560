"""Helpers for tests that run on CPython (pytest) and on the MicroPython unix port (mprun.py).

A test file is *portable* when it contains the line ``PORTABLE = True``. Portable
tests are plain ``test_*`` functions using ``assert`` and the helpers below; they
must not import pytest at module level (the unix port has none).
"""

import os
import sys

IS_MICROPYTHON = sys.implementation.name == "micropython"


class SkipTest(Exception):
    pass


def skip(reason):
    """Skip the running test (pytest's skip on CPython, the runner's on MicroPython)."""
    if not IS_MICROPYTHON:
        import pytest

        pytest.skip(reason)
    raise SkipTest(reason)


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception it raised; fail unless it is an ``exc_type``."""
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("%s did not raise %s" % (getattr(fn, "__name__", fn), exc_type.__name__))


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def project_root():
    here = __file__ if "/" in __file__ else "./" + __file__
    tests = here.rsplit("/", 1)[0]
    return tests.rsplit("/", 1)[0] if "/" in tests.strip("./") else tests + "/.."


def shared_dir(*parts):
    """Path into ../shared (beside the project root), or None when it is absent."""
    base = os.getenv("OPTOREAD_SHARED") if hasattr(os, "getenv") else None
    if not base:
        base = project_root() + "/../shared"
    path = "/".join((base,) + parts)
    return path if _exists(path) else None


def shared_or_skip(*parts):
    path = shared_dir(*parts)
    if path is None:
        skip("../shared/%s is absent" % "/".join(parts))
    return path


def listdir(path):
    return sorted(os.listdir(path))


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()
