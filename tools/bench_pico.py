"""Device figures: RAM and CPU of the firmware on the emulated Pico, and the 32-bit unix port's smallest heap.

    python tools/bench_pico.py [--quick] [--no-json] [--micropython32 PATH]

On the stock MicroPython rp2 firmware (RPI_PICO v1.28.0) on an emulated RP2040 (``../shared/emu``,
``optoread_tools.emu``), booted from the image ``optoread deploy --board pico --image`` writes:

* **RAM**: free heap at boot (an image without main.py, over the raw REPL), after main.py's
  imports (the console's ``status``), the lowest free heap during a reading (``config set
  heapwatch on``: a collection and ``gc.mem_free()`` at every progress message and every profile
  row block the store writes) and after the commit, for the two bench plans of
  tools/bench_ram.py (``bench-is15959``: the IS 15959 plan with 30 days of block load;
  ``bench-full``: browse, every register, 30 days), each read through the console from the
  simulated DLMS meter on UART0 and then downloaded by the laptop (``optoread download``).
* **CPU (an estimate)**: the emulator counts cycles at the stock 125 MHz clock (not calibrated
  against silicon; flash writes take no simulated time). Over the raw REPL, with no UART bridge
  (so no wall-clock throttling), with main.py's modules and a reading's imported and the
  collector's threshold as main.py sets it, the board decodes the recorded HDLC frames of a 2880-row
  profile GET (tools/bench_decode_mp.py: framing, reassembly, APDU, A-XDR rows) and appends
  2880 rows to a store on its flash; ``time.ticks_us`` gives the simulated time per frame and
  per row, set against that frame's and row's wire time at 9600 and 19200 baud (8N1).

And on ``../shared/emu/micropython32`` (32-bit unix port, a faithful RAM stand-in: README of
``../shared/emu``): the smallest heap that completes each bench plan (tools/bench_ram.py's
bisection with that binary).

Writes ``pico_emulated`` and ``unix32`` into docs/benchmarks.json (merged) and prints a table;
tools/bench.py puts the table into docs/benchmarks.md. Skips, saying why, without the emulator.
"""

import os
import re
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tools"), os.path.join(ROOT, "firmware")]

from optoread_tools import emu  # noqa: E402

PROFILE_ROWS = 2880  # 30 days of 15-minute block load (the simulator's profile)
BAUDS = (9600, 19200)
GOAL = 0.25  # the reader's CPU time per row and frame, at most this share of the wire time at 19200


def log(text):
    sys.stderr.write("bench_pico: %s\n" % text)
    sys.stderr.flush()


def _image(path, plans_dir, main=True, extra=None):
    from optoread_tools import deploy

    files = {}
    for name in sorted(os.listdir(plans_dir)):
        with open(os.path.join(plans_dir, name), "rb") as f:
            files["plans/" + name] = f.read()
    files.update(extra or {})
    deploy.build_image("pico", path, extra_files=files, main=main, force=True)
    return path


# main.py's module imports, as main.py makes them (collector threshold first), measured apart
# from what main.py then does (board file, store mount, config, asyncio tasks).
_IMPORTS = """import gc
gc.collect()
_a = gc.mem_alloc()
gc.threshold(4096)
import asyncio, select
from optoread.device import console
from optoread.device import services as device
gc.collect()
print('@imports', gc.mem_alloc() - _a)
"""


def boot_heap(tmp):
    """(free, alloc, imports) right after boot: the stock firmware with the image, main.py not run;
    ``imports``: the heap main.py's imports take (bytes, after a collection)."""
    img = _image(os.path.join(tmp, "noboot.img"), _plans(tmp), main=False)
    rc, out, err = emu.run_scripts(img, [], execs=["import gc\ngc.collect()\nprint('@heap', gc.mem_free(), "
                                                   "gc.mem_alloc())", _IMPORTS], timeout=300)
    m = re.search(r"@heap (\d+) (\d+)", out)
    i = re.search(r"@imports (\d+)", out)
    if rc != 0 or not m or not i:
        raise SystemExit("bench_pico: boot heap: %s %s" % (out, err))
    return int(m.group(1)), int(m.group(2)), int(i.group(1))


def _plans(tmp):
    import bench_ram

    d = os.path.join(tmp, "plans")
    if not os.path.isdir(d):
        os.makedirs(d)
        bench_ram.write_plans(d, 30)
    return d


def _heap_line(lines):
    for x in lines:
        m = re.match(r"heap +(\d+) bytes free", x)
        if m:
            return int(m.group(1))
    raise SystemExit("bench_pico: no heap line in status: %r" % (lines,))


def readings(tmp, plans=("bench-is15959", "bench-full")):
    """Each bench plan through the console of the emulated Pico, then the laptop's download."""
    from optoread_tools import tcpline

    img = _image(os.path.join(tmp, "flash.img"), _plans(tmp))
    board = emu.Pico(img, log_file=os.path.join(tmp, "emu.log"))
    res = {}
    try:
        board.start()
        board.cmd("config set heapwatch on")
        res["after_imports_free"] = _heap_line(board.cmd("status"))
        for plan in plans:
            meter = tcpline.connect_dlms_line(board.uart_port, rows=PROFILE_ROWS)
            t = time.monotonic()
            try:
                lines = board.cmd("read " + plan, timeout=7200)
            finally:
                meter.stop()
            wall = time.monotonic() - t
            done = [x for x in lines if x.startswith("session ")]
            low = [int(m.group(1)) for m in (re.match(r"heap: lowest free (\d+)", x) for x in lines) if m]
            if not done or " complete" not in done[-1] or not low:
                raise SystemExit("bench_pico: %s did not complete: %s" % (plan, "\n".join(lines[-20:])))
            m = re.match(r"session (\d+): \S+ complete, (\d+) values, (\d+) rows", done[-1])
            res[plan] = {"lowest_free": low[-1], "after_commit_free": _heap_line(board.cmd("status")),
                         "values": int(m.group(2)), "rows": int(m.group(3)), "wall_s": round(wall, 1)}
            log("%s: %s, lowest free heap %d B (%.0f s wall)" % (plan, done[-1], low[-1], wall))
        board.release()
        db = os.path.join(tmp, "readings.sqlite")
        rc, out = emu.download(board.path, db, device="pico-emu", extra=["--quiet"])
        if rc != 0:
            raise SystemExit("bench_pico: the laptop's download failed: %s" % out[-800:])
        from optoread_tools import readings_db

        d = readings_db.open_db(db)
        try:
            got = {s["plan"]: s for s in readings_db.session_dicts(d)}
        finally:
            d.close()
        for plan in plans:
            s = got.get(plan)
            n = sum(len(p["rows"]) for p in s["profiles"]) if s else -1
            res[plan]["downloaded_rows"] = n
            if n != res[plan]["rows"]:
                raise SystemExit("bench_pico: %s: downloaded %d rows, the device stored %d"
                                 % (plan, n, res[plan]["rows"]))
    finally:
        board.stop()
    return res


_CPU_SCRIPT = """
import gc, sys, time
gc.threshold(4096)  # as main.py: the imports of the console and a reading, then the run threshold
from optoread.device import console
from optoread.device import services as device
from optoread.device import reader
from optoread.dlms.client import session
sys.path.insert(0, '/bench')
import bench_decode_mp
from optoread.store import store as st
gc.collect()
gc.threshold(device.GC_THRESHOLD_RUN)
print('@live', gc.mem_alloc())
gc.collect()
with open('/bench/frames.bin', 'rb') as f:
    t0 = time.ticks_us()
    rows = bench_decode_mp.decode_file(f, 2048)
    dt = time.ticks_diff(time.ticks_us(), t0)
print('@decode', rows, dt)
s = st.Store(root='/benchstore')
s.mount()
w = s.begin('BENCH', 'bench', 0)
w.profile_begin('1.0.99.1.0.255', [('1.0.1.29.0.255', -2, 30), ('1.0.2.29.0.255', -2, 30),
                ('1.0.12.27.0.255', -1, 35)], 900, 1767225600)
cols = [12345, 678, 23012]
t0 = time.ticks_us()
for i in range(%(rows)d):
    cols[0] = i
    w.row(1767225600 + 900 * i, cols)
dt = time.ticks_diff(time.ticks_us(), t0)
w.commit()
print('@store', %(rows)d, dt)
"""


def _count_frames(data):
    from optoread.dlms.hdlc import frame as hdlc

    rx = hdlc.FrameReceiver(hdlc.frame_capacity(2030))
    mv = memoryview(data)
    off = n = 0
    while True:
        off = rx.feed(mv, off, len(data))
        if not rx.ready:
            return n
        n += 1


def cpu(tmp):
    """Simulated time per frame and per row (decode + store append) on the emulated Pico."""
    import bench_decode

    if not os.path.exists(bench_decode.FRAMES):
        log("recording the profile's frames (tools/bench_decode.py, gurux's client)")
        frames = bench_decode.record()[0]
        os.makedirs(os.path.dirname(bench_decode.FRAMES), exist_ok=True)
        with open(bench_decode.FRAMES, "wb") as f:
            f.write(b"".join(frames))
    with open(bench_decode.FRAMES, "rb") as f:
        data = f.read()
    nframes = _count_frames(data)
    with open(os.path.join(ROOT, "tools", "bench_decode_mp.py"), "rb") as f:
        mod = f.read()
    script = os.path.join(tmp, "cpu.py")
    with open(script, "w") as f:
        f.write(_CPU_SCRIPT % {"rows": PROFILE_ROWS})
    img = _image(os.path.join(tmp, "cpu.img"), _plans(tmp), main=False,
                 extra={"bench/frames.bin": data, "bench/bench_decode_mp.py": mod})
    rc, out, err = emu.run_scripts(img, [script], timeout=1800)
    md = re.search(r"@decode (\d+) (\d+)", out)
    ms = re.search(r"@store (\d+) (\d+)", out)
    if rc != 0 or not md or not ms:
        raise SystemExit("bench_pico: cpu script failed (%d): %s %s" % (rc, out[-500:], err[-1500:]))
    rows, dec_us, nbytes = int(md.group(1)), int(md.group(2)), len(data)
    store_us = int(ms.group(2))
    per_row_us = (dec_us + store_us) / rows
    per_frame_us = dec_us / max(nframes, 1)
    row_bytes = nbytes / rows
    frame_bytes = nbytes / max(nframes, 1)
    res = {"rows": rows, "frames": nframes, "wire_bytes": nbytes, "decode_us": dec_us, "store_us": store_us,
           "per_row_us": round(per_row_us, 1), "per_frame_decode_us": round(per_frame_us, 1),
           "row_wire_bytes": round(row_bytes, 2), "frame_wire_bytes": round(frame_bytes, 1)}
    for baud in BAUDS:
        wire_row = row_bytes * 10 / baud * 1e6
        wire_frame = frame_bytes * 10 / baud * 1e6
        res["row_share_%d" % baud] = round(per_row_us / wire_row, 3)
        res["frame_share_%d" % baud] = round(per_frame_us / wire_frame, 3)
    res["goal_19200"] = GOAL
    res["meets_goal"] = res["row_share_19200"] <= GOAL
    return res


def unix32_min_heap(mp32, quick=False):
    """The smallest heap (KB) that completes each bench plan on the 32-bit unix port."""
    import bench_ram

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        mpy_dir = bench_ram.compile_mpy(os.path.join(tmp, "mpy"))
        plan_dir = os.path.join(tmp, "plans")
        os.makedirs(plan_dir)
        bench_ram.write_plans(plan_dir, 30)
        old = bench_ram.MICROPYTHON
        bench_ram.MICROPYTHON = mp32
        try:
            for key, plan in bench_ram.PLANS.items():
                if quick and key != "is15959_plan":
                    continue
                out[key] = bench_ram.min_heap(mpy_dir, plan_dir, plan, PROFILE_ROWS, lo=64, hi=512)
                log("micropython32: %s completes in %d KB" % (key, out[key]))
        finally:
            bench_ram.MICROPYTHON = old
    return out


# The device budgets of the package restructure (issue #16): the figures measured before it (the
# flat firmware, this tool, commit 191cbfa) plus at most 6 KB, or the issue's own limits where
# those are lower. bench_pico fails (exit 1) when a figure breaks its budget. Issue #17 (the fault
# model: reading deadlines, the device PIN, settings repair, damaged sessions) moved one of them,
# measured: its code on the reading path takes the IS 15959 plan's smallest heap from 140 KB to
# 141-142 KB on micropython32, with no margin left at 140; the budget is 144 KB. On the Pico its
# device-path code (PIN, a console that answers during a reading, deadlines, store format 2) takes
# bench-is15959's lowest free heap to 72,064 B (76,272 after #16): the floor is 70 KB, above the
# 64 KB #16 asked for.
BEFORE = {"imports_alloc": 127168, "bench-is15959": 79168, "is15959_plan": 136, "full_readout": 152}
BUDGET = {"imports_alloc": 130 * 1024,  # <= 130 KB (before + 6 KB = 133312 B)
          "bench-is15959": 70 * 1024,  # #16: >= 73024 B (before - 6 KB; the issue: >= 64 KB); #17: 70 KB
          "is15959_plan": 144,  # #16: <= 140 KB (before + 6 = 142); #17: 144
          "full_readout": 156}  # <= 156 KB (before + 6 = 158)


def budget_lines(p, u):
    """``(lines, ok)``: each device figure against its budget (:data:`BUDGET`)."""
    rows = []
    if p.get("imports_alloc") is not None:
        rows.append(("heap main.py's imports take (B)", BEFORE["imports_alloc"], p["imports_alloc"],
                     "<=", BUDGET["imports_alloc"]))
    r = p.get("bench-is15959")
    if r:
        rows.append(("bench-is15959 lowest free heap (B)", BEFORE["bench-is15959"], r["lowest_free"], ">=",
                     BUDGET["bench-is15959"]))
    for k in ("is15959_plan", "full_readout"):
        if u and k in u:
            rows.append(("micropython32 smallest heap, %s (KB)" % k, BEFORE[k], u[k], "<=", BUDGET[k]))
    ok = True
    lines = ["budgets (issue #16: before + at most 6 KB, or the issue's limit if lower; "
             "#17: is15959_plan 144, bench-is15959 70 KB):"]
    for name, before, now, op, limit in rows:
        good = now <= limit if op == "<=" else now >= limit
        ok = ok and good
        lines.append("  %-48s before %7d  now %7d  %s %7d  %s" % (name, before, now, op, limit,
                                                                     "ok" if good else "OVER BUDGET"))
    return lines, ok


def table(p, u):
    lines = []
    if p:
        lines.append("emulated Pico (stock MicroPython v1.28.0 RPI_PICO, rp2040js, 125 MHz):")
        lines.append("  free heap at boot                   %7d B" % p["boot_free"])
        if "imports_alloc" in p:
            lines.append("  heap main.py's imports take         %7d B (modules, link buffers; collected)"
                         % p["imports_alloc"])
        lines.append("  free heap after main.py's start     %7d B (store mounted, console up)"
                     % p["after_imports_free"])
        for plan in ("bench-is15959", "bench-full"):
            r = p.get(plan)
            if r:
                lines.append("  %-14s lowest free %7d B, after commit %7d B (%d values, %d rows, "
                             "downloaded %d; %.0f s wall)" % (plan, r["lowest_free"], r["after_commit_free"],
                                                               r["values"], r["rows"], r["downloaded_rows"],
                                                               r["wall_s"]))
        c = p.get("cpu")
        if c:
            lines.append("  CPU (estimate, simulated 125 MHz; flash writes take no simulated time):")
            lines.append("    per profile row: %.0f us (decode + store append), wire %.1f B/row: %.0f%% of "
                         "its wire time at 9600, %.0f%% at 19200 (goal <= %d%%)"
                         % (c["per_row_us"], c["row_wire_bytes"], 100 * c["row_share_9600"],
                            100 * c["row_share_19200"], 100 * GOAL))
            lines.append("    per HDLC frame (decode): %.0f us, %.0f B/frame: %.0f%% at 9600, %.0f%% at 19200"
                         % (c["per_frame_decode_us"], c["frame_wire_bytes"], 100 * c["frame_share_9600"],
                            100 * c["frame_share_19200"]))
    if u:
        lines.append("micropython32 (32-bit unix port), smallest heap that completes:")
        for k, v in sorted(u.items()):
            lines.append("  %-14s %d KB" % (k, v))
    lines += budget_lines(p, u)[0]
    return "\n".join(lines)


def main(argv):
    quick = "--quick" in argv
    mp32 = emu.micropython32()
    if "--micropython32" in argv:
        mp32 = argv[argv.index("--micropython32") + 1]
    why = emu.unavailable()
    pico = {}
    tmp = tempfile.mkdtemp(prefix="bench-pico-")
    try:
        if why:
            log("emulated Pico skipped: %s" % why)
        else:
            pico["boot_free"], pico["boot_alloc"], pico["imports_alloc"] = boot_heap(tmp)
            pico["cpu"] = cpu(tmp)
            pico.update(readings(tmp, ("bench-is15959",) if quick else ("bench-is15959", "bench-full")))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    unix32 = {}
    if mp32:
        unix32 = {"min_heap_kb": unix32_min_heap(mp32, quick)}
    else:
        log("micropython32 skipped: ../shared/emu/micropython32 is absent")
    print(table(pico, unix32.get("min_heap_kb")))
    within = budget_lines(pico, unix32.get("min_heap_kb"))[1]
    if "--no-json" not in argv:
        import bench_ram

        def update(data):
            if pico:
                data["pico_emulated"] = pico
            if unix32:
                data["unix32"] = unix32

        bench_ram.merge_json(update)
    if not within:
        log("a device figure is over its budget (above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
