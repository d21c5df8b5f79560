"""`make bench`: run the benchmark scripts and write docs/benchmarks.md and docs/benchmarks.json.

Figures, not pass/fail: protocol cost of a full readout by optoread (tools/bench_readout.py)
and by gurux-dlms's client (tools/bench_gurux.py) on the same simulator, decode speed of the
same recorded profile responses on CPython, the unix port and gurux, with callgrind
instruction counts (tools/bench_decode.py), flash density (host_tests/bench_store.py) and
per-item cost / write amplification (tools/bench_flash.py), RAM on the unix port with .mpy
modules (tools/bench_ram.py; default ``BENCH_RAM=full`` with the heap bisection, ``quick``:
working set only, min_heap_kb kept from the last full run), the device figures (tools/bench_pico.py:
RAM and CPU of the stock rp2 firmware on the emulated Pico, the smallest heaps on the 32-bit unix
port; ``BENCH_PICO=quick`` reads only the IS 15959 plan, ``skip`` leaves them out) and the .mpy
footprint of the board build (build/mpy/armv6m, written by `make mpy`).
"""

import json
import os
import re
import subprocess
import sys
import time

import mpbin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".venv", "bin")
DOCS = os.path.join(ROOT, "docs")


def run(cmd, timeout=1800):
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit("bench: %s failed" % " ".join(cmd))
    return p.stdout


def mpy_bytes(arch="armv6m"):
    total = 0
    base = os.path.join(ROOT, "build", "mpy", arch, "firmware", "optoread")
    for d, _dirs, names in os.walk(base):
        for name in names:
            if name.endswith(".mpy") and name != "server.mpy":  # the meter's side: not on a board
                total += os.path.getsize(os.path.join(d, name))
    return total


def main():
    started = time.time()
    mp = mpbin.from_argv(sys.argv)  # --micropython PATH, $OPTOREAD_MICROPYTHON, else the venv's
    path_json = os.path.join(DOCS, "benchmarks.json")
    try:
        figures = json.load(open(path_json))
    except (OSError, ValueError):
        figures = {}
    sections = []

    readout = json.loads(run([os.path.join(BIN, "python"), "tools/bench_readout.py", "--json"]))
    table = run([os.path.join(BIN, "python"), "tools/bench_readout.py"])
    sections.append(("Protocol cost of a full readout", "python tools/bench_readout.py", table))
    big = readout[-1]
    figures["readout_frames"] = dict(figures.get("readout_frames", {}),
                                     optoread=big["frames_tx"] + big["frames_rx"])
    figures["readout_bytes"] = dict(figures.get("readout_bytes", {}),
                                    optoread=big["bytes_tx"] + big["bytes_rx"])
    figures["session_s_virtual"] = dict(figures.get("session_s_virtual", {}),
                                        optoread=big["session_s_virtual"], wire_floor=big["wire_floor_s"])

    peer = json.loads(run([os.path.join(BIN, "python"), "tools/bench_gurux.py", "--json"]))
    table = run([os.path.join(BIN, "python"), "tools/bench_gurux.py"])
    sections.append(("The peer: gurux-dlms's client, same readout, same simulator",
                     "python tools/bench_gurux.py", table))
    gbig = peer[-1]
    figures["readout_frames"]["gurux"] = gbig["frames_tx"] + gbig["frames_rx"]
    figures["readout_bytes"]["gurux"] = gbig["bytes_tx"] + gbig["bytes_rx"]
    figures["session_s_virtual"]["gurux"] = gbig["session_s_virtual"]
    figures["readout_max_info_128"] = {
        name: {"frames": r["frames_tx"] + r["frames_rx"], "bytes": r["bytes_tx"] + r["bytes_rx"],
               "session_s_virtual": r["session_s_virtual"], "wire_floor_s": r["wire_floor_s"]}
        for name, r in (("optoread", readout[0]), ("gurux", peer[0]))}

    dec = json.loads(run([os.path.join(BIN, "python"), "tools/bench_decode.py", "--json",
                          "--micropython", mp]))
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import bench_decode

    sections.append(("Decode speed: the same recorded profile responses", "python tools/bench_decode.py",
                     bench_decode.report(dec) + (bench_decode.WASM_NOTE if "wasm32_error" in dec else "")))
    figures["decode_rows_per_s"] = {k: dec[k + "_rows_per_s"] for k in (
        "optoread_cpython", "optoread_micropython", "gurux_cpython", "optoread_wasm32")
        if k + "_rows_per_s" in dec}
    if "decode_instructions" in dec:
        figures["decode_instructions"] = {"optoread_micropython_unix": dec["decode_instructions"],
                                          "per_row": round(dec["decode_instructions"] / dec["rows"])}
    if "wasm32_fuel" in dec:
        figures["decode_wasm32_fuel"] = dec["wasm32_fuel"]

    store = run([mp, "-X", "heapsize=16m", "host_tests/bench_store.py"])
    sections.append(("Flash: readings per 1.4 MB", "micropython host_tests/bench_store.py", store))
    m = re.search(r"clock \+ 1 energy column\s*:\s*(\d+) meters fit", store)
    if m:
        figures["meters_45d_per_1_4mb"] = int(m.group(1))
    flash = run([mp, "-X", "heapsize=16m", "tools/bench_flash.py"])
    m = re.search(r"^JSON (.*)$", flash, re.M)
    if m:
        figures["flash"] = json.loads(m.group(1))
        flash = flash[:m.start()] + flash[m.end() + 1:]
    sections.append(("Flash: bytes per item and write amplification", "micropython tools/bench_flash.py",
                     flash))

    mode = os.environ.get("BENCH_RAM", "full")  # about a minute since the meter is on loopback TCP
    if os.path.exists(os.path.join(ROOT, "tools", "bench_ram.py")) and mode != "skip":
        args = [] if mode == "full" else ["--quick"]
        ram = run([os.path.join(BIN, "python"), "tools/bench_ram.py", "--micropython", mp] + args,
                  timeout=3600)
        if mode != "full":
            ram += ("\n--quick: working sets only. The heap bisection takes too long for every "
                    "`make bench`;\n"
                    "min_heap_kb (%s) is from the last `BENCH_RAM=full make bench`.\n"
                    % json.dumps(figures.get("min_heap_kb", {}), sort_keys=True))
        sections.append(("RAM on the unix port (.mpy modules)",
                         "python tools/bench_ram.py" + (" --quick" if mode != "full" else ""), ram))
        try:
            new = json.load(open(path_json))
            figures.update({k: v for k, v in new.items() if k in ("min_heap_kb", "working_set_kb",
                                                                           "ram_phase_peak_kb",
                                                                           "stack_imports_kb", "romfs",
                                                                           "printing_peak_kb", "store_index",
                                                                           "link_buffers_kb")})
        except (OSError, ValueError):
            pass
        if mode != "full":
            m = re.findall(r"^(\w+)\s+(\d+)\s+[\d.]+ KB\s+[\d.]+ KB\s+([\d.]+) KB", ram, re.M)
            ws = {}
            for key, _days, w in m:
                ws[key] = max(ws.get(key, 0.0), float(w))
            figures["working_set_kb"] = dict(figures.get("working_set_kb", {}), **ws)

    # The device: the stock rp2 firmware on the emulated Pico, and the 32-bit unix port's smallest
    # heaps (tools/bench_pico.py; skipped, saying why, without ../shared/emu).
    pmode = os.environ.get("BENCH_PICO", "full")
    if pmode != "skip":
        quick = ["--quick"] if pmode == "quick" else []
        pico = run([os.path.join(BIN, "python"), "tools/bench_pico.py"] + quick, timeout=4 * 3600)
        sections.append(("The device: RAM and CPU on the emulated Pico, smallest heaps on 32-bit",
                         "python tools/bench_pico.py", pico))
        try:
            new = json.load(open(path_json))
            figures.update({k: v for k, v in new.items() if k in ("pico_emulated", "unix32")})
        except (OSError, ValueError):
            pass

    fz = figures.get("fuzz_inputs") or {}
    if fz:
        sections.append(("Robustness", "make fuzz; make test",
                         "fuzzing (docs/fuzzing.md, last `make fuzz`): %d parsers, %d to %d inputs each;\n"
                         "fault matrix (docs/fault-matrix.md), power-cut and interrupted-download matrices:\n"
                         "run by make test (host_tests/test_fault_matrix.py, test_store_powercut.py,\n"
                         "test_download.py).\n" % (len(fz), min(fz.values()), max(fz.values()))))

    run(["make", "-s", "mpy"])
    figures["mpy_bytes"] = mpy_bytes()
    sections.append(("Footprint", "make mpy",
                     "firmware .mpy for RP2040 (armv6m): %d bytes\n" % figures["mpy_bytes"]))

    with open(path_json, "w") as f:
        json.dump(figures, f, indent=1, sort_keys=True)
        f.write("\n")
    with open(os.path.join(DOCS, "benchmarks.md"), "w") as f:
        f.write("# Benchmarks\n\nRegenerated by `make bench` (%s, %.0f s). Figures only: no test "
                "asserts a time.\nMachine-readable copy: `docs/benchmarks.json`.\n"
                % (time.strftime("%Y-%m-%d"), time.time() - started))
        for title, cmd, text in sections:
            f.write("\n## %s\n\nCommand: `%s`\n\n```\n%s```\n" % (title, cmd, text))
    print(open(os.path.join(DOCS, "benchmarks.md")).read())


if __name__ == "__main__":
    main()
