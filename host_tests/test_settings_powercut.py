"""Power cuts while the device rewrites its settings files (config.json, meters.json).

The console's ``config set`` and the reader's remembered meter profiles rewrite a small JSON
file whole. The scenario runs once on the unix port's VfsLfs2 over a RAM block device that
logs every block write (program and erase); the flash after a cut at write k is the start
image plus the first k writes (a "torn" variant applies half of write k). Every such image
is mounted again and both files loaded: each must hold the last version whose save
returned before the cut, or the one being saved: never the defaults, never an older one.

CPython launches the unix port (``micropython host_tests/test_settings_powercut.py``).
"""

import sys

if __name__ == "__main__":  # run as a script on the unix port
    _here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    sys.path.insert(0, _here + "/../firmware")
    sys.path.insert(0, _here)

import portable  # noqa: E402

BS = 4096
BLOCKS = 16
POINT = "/scut"


def _mount(data, log=None):
    import vfs
    from test_store import RamBdev

    bdev = RamBdev(BS, BLOCKS, data)
    bdev.log = log
    vfs.mount(vfs.VfsLfs2(bdev), POINT)
    return bdev


def _umount():
    import vfs

    vfs.umount(POINT)


def _load():
    from optoread.device.console import Config
    from optoread.device.reader import MeterProfiles

    cfg = Config(POINT + "/config.json")
    prof = MeterProfiles(POINT + "/meters.json")
    return cfg.data, dict((m, prof.get(m)) for m in prof.meters())


def scenario(log):
    """Rewrite both files several times; return the versions and the write count after each."""
    from optoread.device.console import Config
    from optoread.device.reader import MeterProfiles

    cfg = Config(POINT + "/config.json")
    prof = MeterProfiles(POINT + "/meters.json")
    versions = [({}, {}, 0)]
    c = {}
    p = {}
    for i in range(5):
        cfg.set("key%d" % i, "value %d %s" % (i, "x" * (40 * i)))
        c = dict(cfg.data)
        versions.append((c, p, len(log)))
        prof.put("M%d" % i, {"protocol": "dlms", "client": 16 + i, "settle_ms": 200 * i})
        p = dict((m, prof.get(m)) for m in prof.meters())
        versions.append((c, p, len(log)))
    return versions


def run_matrix(torn=True):
    """Return (writes, images checked, problems)."""
    data = bytearray(BS * BLOCKS)
    import vfs
    from test_store import RamBdev

    vfs.VfsLfs2.mkfs(RamBdev(BS, BLOCKS, data))
    start = bytes(data)
    log = []
    _mount(data, log)
    try:
        versions = scenario(log)
    finally:
        _umount()
    writes = len(log)
    problems = []
    checked = 0
    image = bytearray(start)
    for k in range(writes + 1):
        for half in (False, True) if torn and k < writes else (False,):
            img = bytearray(image)
            if half:  # write k lands only half way
                a, d = log[k]
                n = len(d) // 2
                img[a:a + n] = d[:n]
            _mount(img)
            try:
                got = _load()
            finally:
                _umount()
            checked += 1
            # versions[j] completed at or before write k; versions[j + 1] may be in flight
            j = 0
            while j + 1 < len(versions) and versions[j + 1][2] <= k:
                j += 1
            ok = [(v[0], v[1]) for v in versions[j:j + 2]]
            if got not in ok:
                problems.append("cut at write %d%s: config has %d keys, meters %d (expected %d/%d)" % (
                    k, " (torn)" if half else "", len(got[0]), len(got[1]), len(ok[0][0]), len(ok[0][1])))
        if k < writes:
            a, d = log[k]
            image[a:a + len(d)] = d
    return writes, checked, problems


def test_settings_survive_every_power_cut():
    """Every cut image of a run of config and meter-profile saves keeps the last saved version."""
    if not portable.IS_MICROPYTHON:
        portable.skip("runs on the unix port (CPython launches it: test_settings_powercut_on_unix_port)")
    writes, checked, problems = run_matrix()
    assert writes > 20 and checked > writes
    assert not problems, "%d of %d images lost settings: %s" % (len(problems), checked, problems[:3])


def test_settings_powercut_on_unix_port():
    """CPython side: run the matrix on the MicroPython unix port."""
    if portable.IS_MICROPYTHON:
        portable.skip("the CPython side launches the unix port")
    import os
    import subprocess

    import mpbin

    mp = mpbin.MICROPYTHON
    if not os.path.exists(mp):
        portable.skip("no MicroPython at %s" % mp)
    here = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run([mp, "-X", "heapsize=16m", os.path.join(here, "test_settings_powercut.py")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "0 lost" in r.stdout, r.stdout[-2000:]


if __name__ == "__main__":
    n, c, problems = run_matrix()
    for p in problems[:10]:
        print(p)
    print("settings powercut: %d block writes, %d cut images, %d lost" % (n, c, len(problems)))
    sys.exit(1 if problems else 0)
