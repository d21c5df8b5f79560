"""Run the portable tests on the MicroPython unix port (it has no unittest or pytest).

Usage: micropython host_tests/mprun.py [NAME_FILTER]  (from the project root)
Prints one line per failure and a closing line ``NAME: N passed, N failed, N skipped``, NAME
saying which interpreter ran them (:func:`interpreter`); exits 1 if anything failed.
"""

import os
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
ROOT = HERE + "/.."
sys.path.insert(0, ROOT + "/firmware")
sys.path.insert(0, HERE)

import portable  # noqa: E402


def portable_files():
    for name in sorted(os.listdir(HERE)):
        if not (name.startswith("test_") and name.endswith(".py")):
            continue
        with open(HERE + "/" + name) as f:
            if "\nPORTABLE = True" in f.read():
                yield name[:-3]


def interpreter():
    """``micropython`` on a 64-bit build, ``micropython32`` where small ints end at 2**30 (the
    32-bit unix port, boards), plus the platform when it is not the unix port."""
    name = "micropython" if sys.maxsize > 0x7FFFFFFF else "micropython32"
    if sys.platform not in ("linux", "darwin"):
        name += " (%s)" % sys.platform
    return name


def main():
    pattern = sys.argv[1] if len(sys.argv) > 1 else ""
    passed = failed = skipped = 0
    for modname in portable_files():
        try:
            mod = __import__(modname)
            # pytest's module hooks, which a file uses to take memory before its tests fragment it
            hook = getattr(mod, "setup_module", None)
            if hook:
                hook()
        except Exception as e:  # an import error fails the whole file, loudly
            failed += 1
            print("FAIL %s (import or setup_module): %s: %s" % (modname, type(e).__name__, e))
            sys.print_exception(e)
            continue
        names = sorted(n for n in dir(mod) if n.startswith("test_"))
        for name in names:
            if pattern and pattern not in modname + "::" + name:
                continue
            fn = getattr(mod, name)
            if not callable(fn):
                continue
            try:
                fn()
                passed += 1
            except portable.SkipTest:
                skipped += 1
            except Exception as e:
                failed += 1
                print("FAIL %s::%s: %s: %s" % (modname, name, type(e).__name__, e))
                sys.print_exception(e)
        hook = getattr(mod, "teardown_module", None)
        if hook:
            hook()
    print("%s: %d passed, %d failed, %d skipped" % (interpreter(), passed, failed, skipped))
    sys.exit(1 if failed else 0)


main()
