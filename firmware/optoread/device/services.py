"""The device's services, shared by the board entry point and the unix-port tools: mount the
store, load the reading plans, open the probe, make a :class:`optoread.reader.Reader`.

Board glue (it touches the file system and the board file), not protocol.
"""

import json
import os
import time

from optoread.device import reader as reader_mod
from optoread.dlms.client import session as session_mod
from optoread.errors import SessionError, StoreError
from optoread.store import store as store_mod

BLOCK_SIZE = 4096
PICO_FS_BLOCKS = 352  # 1.4 MB: the filesystem a Pico leaves for data

# The device's DLMS buffer sizes (Reader(dlms=...) defaults; the config may override them).
# HDLC frames of 512 info bytes and a receive PDU that fits one of them (512 less the 3-byte
# LLC) keep the link buffers near 2 KB instead of 7 KB at the 2030-byte maximum; meters
# negotiate down to them and answer in more blocks, each in one frame when the meter takes
# 512-byte frames (no segments, so no RR round trip per segment; many meters negotiate 128
# and segment anyway). Requests are small (the largest, an AARQ with HLS and ciphering,
# ~150 bytes); longer SET values go out in blocks.
DLMS_BUFFERS = {"max_info": 512, "max_pdu": 512 - 3, "element_max": 512, "tx_pdu": 256}


# Allocated once, when the firmware is imported (at boot): every reading's session uses these
# instead of taking ~2.5 KB from a heap that earlier readings and imports have fragmented.
LINK_BUFFERS = session_mod.LinkBuffers(**DLMS_BUFFERS)

# The collector's threshold once the boot imports are done (main.py sets 4096 before them, so
# that import garbage does not fragment the heap). During a reading each collection scans the
# whole live heap (~80 ms on an RP2040 at 125 MHz with ~130 KB live): at 4096 bytes a 30-day
# profile spent more time collecting than decoding (4.9 ms a row, ~25 % of the wire time at
# 19200 baud); at 16384 it is 2.9 ms (tools/bench_pico.py). The link buffers are already
# allocated, and the lowest free heap of a reading stays far above the garbage this allows.
GC_THRESHOLD_RUN = 16384


def dlms_defaults(settings=None):
    """``DLMS_BUFFERS`` overridden by ``settings`` (e.g. :func:`optoread.console.dlms_settings`),
    with the boot-time :data:`LINK_BUFFERS` (a session uses those large enough for its sizes)."""
    out = dict(DLMS_BUFFERS)  # type: dict
    if settings:
        out.update(settings)
    out["buffers"] = LINK_BUFFERS
    return out


class FileBlockDevice:
    """A LittleFS block device in an image file (the unix port's "flash"), created if missing.

    littlefs-python on the laptop reads the same image (``optoread decode-flash``).
    """

    def __init__(self, path, block_size=BLOCK_SIZE, blocks=PICO_FS_BLOCKS):
        self.block_size = block_size
        try:
            size = os.stat(path)[6]
        except OSError:
            size = 0
        if size == 0:
            with open(path, "wb") as f:
                chunk = b"\xff" * 256  # small: the heap may be tight on a board
                for _ in range(blocks * block_size // 256):
                    f.write(chunk)
            size = block_size * blocks
        self.blocks = size // block_size
        self.created = size == 0
        self._f = open(path, "r+b")

    def readblocks(self, n, buf, off=0):
        self._f.seek(n * self.block_size + off)
        self._f.readinto(buf)

    def writeblocks(self, n, buf, off=None):
        self._f.seek(n * self.block_size + (off or 0))
        self._f.write(buf)
        self._f.flush()

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return self.block_size
        if op == 6:  # erase: LittleFS writes whole blocks anyway
            return 0
        return None


def mount_image(path, mount_point="/flash", format=False):
    """Mount a LittleFS image file at ``mount_point`` (unix port). A file this call creates is
    formatted; an existing one only with ``format`` (it may be anything: OSError otherwise)."""
    import vfs  # pyright: ignore[reportMissingImports]

    try:
        new = os.stat(path)[6] == 0
    except OSError:
        new = True
    bdev = FileBlockDevice(path)
    try:
        fs = vfs.VfsLfs2(bdev)  # pyright: ignore[reportArgumentType]
    except OSError:
        if not (new or format):
            raise OSError("%s is not a LittleFS image: not formatting it" % path)
        vfs.VfsLfs2.mkfs(bdev)  # pyright: ignore[reportArgumentType]
        fs = vfs.VfsLfs2(bdev)  # pyright: ignore[reportArgumentType]
    vfs.mount(fs, mount_point)
    return fs


def _mkdirs(path):
    cur = ""
    for part in path.strip("/").split("/"):
        cur += "/" + part
        try:
            os.mkdir(cur)
        except OSError:
            pass


def open_store(root):
    """The store under ``root`` (created if missing), mounted: returns (store, mount report)."""
    _mkdirs(root)
    st = store_mod.Store(root=root)
    report = st.mount()
    return st, report


class Plans:
    """The reading plans on the device: name (the file name without ``.json``) -> plan dict.

    Nothing but the folder names is kept in RAM: a plan is read from its file when it is asked
    for (one IS 15959 plan is a few hundred bytes of JSON but ~2.4 KB of dicts on the heap),
    and :meth:`step` reads one step again, so that a reading holds only the step it is doing.
    Acts as a read-only mapping (``get``, ``[]``, ``in``, iteration over names, ``len``).
    """

    def __init__(self, *dirs):
        self._dirs = dirs  # later directories override earlier ones

    def _path(self, name):
        if not isinstance(name, str) or "/" in name:
            return None  # a plan name, not a path
        for i in range(len(self._dirs) - 1, -1, -1):
            path = self._dirs[i] + "/" + name + ".json"
            try:
                os.stat(path)
                return path
            except OSError:
                pass
        return None

    def get(self, name, default=None):
        path = self._path(name)
        if path is None:
            return default
        try:
            return reader_mod.load_plan(path)
        except MemoryError:
            raise  # not the plan's fault: say so, don't pretend the plan is missing
        except (OSError, ValueError, StoreError):
            return default
        except Exception:  # a broken user plan must not stop the device
            return default

    def step(self, name, i):
        """Step ``i`` of plan ``name``, read from its file again. SessionError when the plan can
        no longer be read or has fewer steps now: a reading must not end early as if complete."""
        path = self._path(name)
        try:
            steps = reader_mod.load_plan(path).get("steps", []) if path is not None else []
        except (OSError, ValueError) as e:
            raise SessionError("plan %s became unreadable during the reading: %s" % (name, e), "plan")
        if i >= len(steps):
            raise SessionError("plan %s changed during the reading (step %d is gone)" % (name, i + 1),
                               "plan")
        return steps[i]

    def __getitem__(self, name):
        p = self.get(name)
        if p is None:
            raise KeyError(name)
        return p

    def __contains__(self, name):
        return self._path(name) is not None

    def __iter__(self):
        names = set()
        for d in self._dirs:
            try:
                for n in os.listdir(d):
                    if n.endswith(".json"):
                        names.add(n[:-5])
            except OSError:
                pass
        return iter(sorted(names))

    def __len__(self):
        return len(list(iter(self)))


def load_plans(*dirs):
    """The plans in ``dirs`` (later directories override earlier ones), read on demand."""
    return Plans(*dirs)


def device_time():
    """Seconds since 1970 from the device's RTC (MicroPython's epoch may be 2000)."""
    t = time.time()
    if t < 946684800:  # a 2000-epoch port
        t += 946684800
    return int(t)


def session_json(store, seq):
    """The stored session ``seq`` as one JSON-able dict (values, profiles with rows, commit)."""
    out = {"values": [], "profiles": [], "events": []}
    cur = [{"rows": []}]  # the profile whose rows are arriving

    def sink(kind, d):
        if kind == "head":
            out["meter"], out["plan"], out["device_time"], out["meter_time"] = d[0], d[1], d[2], d[3]
        elif kind == "value":
            v = {"obis": d[0], "value": d[1], "scaler": d[2], "unit": d[3]}
            if len(d) > 4:
                v["time"] = d[4]  # the value's own time (a maximum demand's)
            out["values"].append(v)
        elif kind == "event":
            out["events"].append({"time": d[0], "code": d[1], "text": d[2]})
        elif kind == "profile":
            cur[0] = {"obis": d[0], "period": d[1], "columns": d[3], "rows": []}
            out["profiles"].append(cur[0])
        elif kind == "row":
            cur[0]["rows"].append([d[0]] + list(d[1]))
        elif kind == "commit":
            out["outcome"], out["error"] = d[0], d[1]

    s = store.read(seq, sink)
    out["seq"] = seq
    out["complete"] = s.complete
    return out


def dumps(obj):
    return json.dumps(obj)
