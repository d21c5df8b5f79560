"""Run the portable tests on a board (the emulated Pico), one test file at a time.

A board has about 240 KB of heap, not the unix port's 16 MB (``mprun.py``): each test file is
imported, run and then forgotten (its module and every module it imported leave
``sys.modules``, then ``gc.collect()``) before the next one. ``tools/emu_portable.py`` puts this
file, the tests, ``portable.py`` and what they read into a flash image and runs one small
script per test file over the raw REPL, all in the same interpreter, e.g.::

    import mprun_device as R
    R.setup("/p", "/shared")
    R.run("test_crc", "", {"test_x": "a reason"})
    ...
    R.summary()

Output lines: ``FAIL mod::test: Type: message`` (and the traceback), ``SKIP mod::test:
reason`` (the test skipped itself), ``HOST-ONLY mod::test: reason`` (on the host-only list: not
run, counted as skipped), ``MODULES mod: crc hdlc ...`` (the firmware modules loaded after one
of its tests), ``FILE mod: N passed, N failed, N skipped, T ms, heap free F`` after each file,
and from :func:`summary` the closing line ``pico: N passed, N failed, N skipped``. It runs on
the unix port too: ``micropython host_tests/mprun_device.py [NAME_FILTER]`` runs every
portable file this way.
"""

import gc
import sys

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython
    import time as _time

    def ticks_ms():
        return int(_time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b


passed = failed = skipped = 0
failures = []  # "mod::test" of every failure


def _print_exception(e):
    if hasattr(sys, "print_exception"):
        sys.print_exception(e)
    else:  # CPython
        import traceback

        traceback.print_exception(type(e), e, e.__traceback__)


def setup(root=None, shared=None):
    """Put ``ROOT/host_tests`` on ``sys.path`` and, when ``shared`` is given, make
    ``portable.shared_dir`` look there: a board has no ``os.getenv`` for OPTOREAD_SHARED and no
    ``../shared`` beside the tests, so the image carries the captures at ``shared``."""
    if root is not None:
        tests = root.rstrip("/") + "/host_tests"
        if tests not in sys.path:
            sys.path.insert(0, tests)
    if shared is None:
        return
    import portable

    def shared_dir(*parts):
        path = "/".join((shared.rstrip("/"),) + parts)
        return path if portable._exists(path) else None

    portable.shared_dir = shared_dir


def _forget(before):
    """Drop every module imported since ``before`` (and the package attributes naming them)."""
    for name in [k for k in sys.modules if k not in before]:
        del sys.modules[name]
        if "." in name:
            pkg, _, attr = name.rpartition(".")
            mod = sys.modules.get(pkg)
            if mod is not None and getattr(mod, attr, None) is not None:
                try:
                    delattr(mod, attr)
                except (AttributeError, TypeError):
                    pass
    gc.collect()


def _seen(used, before):
    """Add the firmware modules loaded now (and not before the file) to ``used``."""
    for k in sys.modules:
        if k.startswith("optoread.") and k not in before:
            used.add(k[9:])


def _watch_unload(used):
    """Make ``compat.unload`` note the firmware modules it drops in ``used`` (and drop them): a
    module loaded and dropped within one call (store.mount and store.decode in Store.mount) is
    gone before :func:`_seen` looks. Only for the file's run: compat is forgotten with it."""
    try:
        from optoread import compat
    except ImportError:
        return
    real = compat.unload

    def unload(name):
        if "optoread." + name in sys.modules:
            used.add(name)
        real(name)

    compat.unload = unload


def run(modname, pattern="", host_only=None):
    """Run the ``test_*`` functions of ``modname`` (those whose ``mod::name`` contains
    ``pattern``); ``host_only``: ``{test name or "*": reason}`` of tests not run here."""
    global passed, failed, skipped
    import portable

    host_only = host_only or {}
    counts = [0, 0, 0]
    used = set()
    t0 = ticks_ms()
    before = set(sys.modules)
    gc.collect()
    try:
        if "*" in host_only:
            skipped += 1
            counts[2] += 1
            print("HOST-ONLY %s: %s" % (modname, host_only["*"]))
            return
        if "optoread.compat" not in before:
            _watch_unload(used)
        try:
            mod = __import__(modname)
            # pytest's module hooks: test_store takes its RAM disk before the tests fragment the heap
            hook = getattr(mod, "setup_module", None)
            if hook:
                hook()
        except Exception as e:  # an import error fails the whole file, loudly
            failed += 1
            counts[1] += 1
            failures.append(modname + " (import or setup_module)")
            print("FAIL %s (import or setup_module): %s: %s" % (modname, type(e).__name__, e))
            _print_exception(e)
            return
        names = sorted(n for n in dir(mod) if n.startswith("test_"))
        for name in names:
            full = modname + "::" + name
            if pattern and pattern not in full:
                continue
            fn = getattr(mod, name)
            if not callable(fn):
                continue
            if name in host_only:
                skipped += 1
                counts[2] += 1
                print("HOST-ONLY %s: %s" % (full, host_only[name]))
                continue
            t1 = ticks_ms()
            try:
                fn()
                passed += 1
                counts[0] += 1
            except portable.SkipTest as e:
                skipped += 1
                counts[2] += 1
                print("SKIP %s: %s" % (full, e))
            except Exception as e:
                failed += 1
                counts[1] += 1
                failures.append(full)
                print("FAIL %s: %s: %s" % (full, type(e).__name__, e))
                _print_exception(e)
            fn = None
            _seen(used, before)
            dt = ticks_diff(ticks_ms(), t1)
            if dt >= 30000:
                print("SLOW %s: %d ms" % (full, dt))
            gc.collect()
        hook = getattr(mod, "teardown_module", None)
        if hook:
            hook()
        mod = None
    finally:
        _seen(used, before)
        if used:
            print("MODULES %s: %s" % (modname, " ".join(sorted(used))))
        _forget(before)
        free = gc.mem_free() if hasattr(gc, "mem_free") else -1
        print("FILE %s: %d passed, %d failed, %d skipped, %d ms, heap free %d"
              % (modname, counts[0], counts[1], counts[2], ticks_diff(ticks_ms(), t0), free))


def interpreter():
    """``pico`` on the RP2040, else the platform (``linux`` for the unix port)."""
    return "pico" if sys.platform == "rp2" else sys.platform


def summary():
    """Print the closing line; return the number of failures."""
    print("%s: %d passed, %d failed, %d skipped" % (interpreter(), passed, failed, skipped))
    return failed


def _main():
    """``micropython host_tests/mprun_device.py [NAME_FILTER]``: every portable file, this way."""
    import os

    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    sys.path.insert(0, here + "/../firmware")
    setup(here + "/..")
    pattern = sys.argv[1] if len(sys.argv) > 1 else ""
    for name in sorted(os.listdir(here)):
        if name.startswith("test_") and name.endswith(".py"):
            with open(here + "/" + name) as f:
                portable_file = "\nPORTABLE = True" in f.read()
            if portable_file:
                run(name[:-3], pattern)
    sys.exit(1 if summary() else 0)


if __name__ == "__main__":
    _main()
