"""Decode the optoread store from a raw flash dump (recovery when the device itself is dead).

    optoread decode-flash IMAGE [--block-size 4096] [--json]

The dump is the LittleFS file-system area as MicroPython's VfsLfs2 wrote it
(block size 4096 on rp2 and esp32). littlefs-python mounts it in memory; the
firmware's own :class:`optoread.store.Store` then reads it *without repairing
anything* (torn sessions are listed as interrupted, never as complete).

Damage is recovered around, as the device's mount does: in a session whose records no longer
all verify (bit rot) every record that verifies is decoded and the damaged stretches are listed
(``damaged``, ``damaged_list``: ``[offset, bytes]``); a session file that cannot be read (an
unreadable block: LittleFS reports corruption) is listed with its error and the other files are
decoded.

Exit status: 0 every session decoded whole; 3 decoded, but some sessions are damaged or
unreadable (listed; what verified is there); 1 not a LittleFS image, or a session could not be
read back at all (``read_error``).
"""

import json
import sys

from optoread.errors import StoreError
from optoread.store.store import Store

from optoread_tools.readings_db import SESSION_FACTS, unit_scaled  # the exports' presentation

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_DAMAGED = 3


def _os_error(e):
    """littlefs-python's LittleFSError (not an OSError) as the board's OSError: the errno of its
    code (-84 corrupt, -28 no space, -5 I/O ...), as VfsLfs2 raises it."""
    code = getattr(e, "code", None)
    if not isinstance(code, int) or not code:
        code = -28 if "NOSPC" in str(e) else -5
    return OSError(-code if code < 0 else code, str(e))


class _File:
    """A littlefs-python file whose errors are OSErrors, as on the board (LittleFSError is not one)."""

    def __init__(self, f):
        self.f = f

    def _call(self, name, *args):
        try:
            return getattr(self.f, name)(*args)
        except OSError:
            raise
        except Exception as e:
            raise _os_error(e)

    def write(self, data):
        return self._call("write", data)

    def readinto(self, buf):
        return self._call("readinto", buf)

    def read(self, *n):
        return self._call("read", *n)

    def flush(self):
        return self._call("flush")

    def tell(self):
        return self._call("tell")

    def seek(self, off, whence=0):
        return self._call("seek", off, whence)

    def close(self):
        return self._call("close")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LittleFsAdapter:
    """The store's file-system interface on a littlefs-python ``LittleFS`` object."""

    def __init__(self, lfs, block_size=4096):
        self.lfs = lfs
        self.block_size = block_size

    def open(self, path, mode):
        # Unbuffered: the raw handle's flush() is lfs_file_sync, as on the board.
        try:
            try:
                return _File(self.lfs.open(path, mode, buffering=0))
            except FileNotFoundError:
                if mode != "ab":  # littlefs-python's append does not create the file
                    raise
                return _File(self.lfs.open(path, "wb", buffering=0))
        except OSError:
            raise
        except Exception as e:
            raise _os_error(e)

    def listdir(self, path):
        try:
            return self.lfs.listdir(path)
        except Exception as e:  # littlefs-python raises LittleFSError (not an OSError) for ENOENT
            raise OSError(str(e))

    def mkdir(self, path):
        self.lfs.mkdir(path)

    def remove(self, path):
        self.lfs.remove(path)

    def rename(self, old, new):
        self.lfs.rename(old, new)

    def free(self, path):
        return max(0, self.lfs.block_count - self.lfs.used_block_count) * self.block_size


def open_image(data, block_size=4096, block_count=None):
    """Mount a LittleFS image held in ``data`` (bytes); return a :class:`LittleFsAdapter`."""
    from littlefs import LittleFS, UserContext

    if block_count is None:
        block_count = len(data) // block_size
    if block_count < 2 or len(data) < block_count * block_size:
        raise StoreError("image too small for %d blocks of %d" % (block_count, block_size), "image")
    buf = bytearray(data[:block_count * block_size])
    try:
        # mount=False: LittleFS(mount=True) silently *formats* an image it cannot mount.
        lfs = LittleFS(context=UserContext(buffer=buf), block_size=block_size, block_count=block_count,
                       mount=False)
        lfs.mount()
    except Exception as e:
        raise StoreError("not a LittleFS image (%s)" % e, "image")
    return LittleFsAdapter(lfs, block_size)


def _jsonable(v):
    if isinstance(v, (bytes, bytearray)):
        return {"hex": bytes(v).hex()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def value_dict(data):
    """A stored value (obis, value, scaler, unit[, time]) as the exports give it: the raw value,
    scaler, unit symbol and DLMS unit code, the scaled value (None when unknown: a number with
    neither scaler nor unit has unit "unknown"), and the value's own time."""
    obis, value, scaler, unit = data[:4]
    utext, ucode, scaled = unit_scaled(value, scaler, unit, fact=obis in SESSION_FACTS)
    return {"obis": obis, "value": _jsonable(value), "scaler": scaler, "unit": utext, "unit_code": ucode,
            "scaled": scaled, "time": data[4] if len(data) > 4 else None}


def decode_store(fs, root="/store", rows=True):
    """Read every session of the store at ``root`` on ``fs``; return a list of session dicts."""
    store = Store(fs, root)
    report = store.mount(repair=False)
    out = []
    for s in list(store.sessions()):
        d = s.as_dict()
        d["values_list"] = []
        d["events_list"] = []
        d["profiles_list"] = []
        d["damaged_list"] = []

        def sink(kind, data, d=d):
            if kind == "value":
                d["values_list"].append(value_dict(data))
            elif kind == "event":
                d["events_list"].append(_jsonable(data))
            elif kind == "profile":
                obis, period, first, columns = data
                d["profiles_list"].append({"obis": obis, "capture_period": period, "first_time": first,
                                           "columns": _jsonable(columns), "rows": []})
            elif kind == "row" and rows:
                p = d["profiles_list"][-1]
                p["rows"].append([data[0], list(data[1])])
                cols = p["columns"]
                p.setdefault("scaled", []).append([
                    value_dict((None, v) + tuple(cols[i][1:3]))["scaled"] if i < len(cols) else None
                    for i, v in enumerate(data[1])])
            elif kind == "commit":
                d["outcome"], d["error"] = data[0], data[1]
            elif kind == "damaged":
                d["damaged_list"].append(list(data))

        try:
            store.read(s.seq, sink)
        except (StoreError, OSError) as e:
            d["read_error"] = str(e)
        out.append(d)
    return out, report


def decode_flash(image_path, block_size=4096, block_count=None, root="/store"):
    """Decode the sessions stored in a raw flash dump file; return a list of session dicts."""
    with open(image_path, "rb") as f:
        data = f.read()
    fs = open_image(data, block_size, block_count)
    sessions, _ = decode_store(fs, root)
    return sessions


def print_text(sessions, out):
    """Human-readable listing of decoded sessions."""
    for d in sessions:
        state = "complete" if d["complete"] else "INCOMPLETE"
        out.write("session %d  meter %s  plan %s  device_time %s  meter_time %s  %s%s%s\n" % (
            d["seq"], d["meter"], d["plan"], d["device_time"], d["meter_time"], state,
            "" if not d.get("error") else " (%s)" % d["error"],
            "  downloaded" if d["downloaded"] else ""))
        for off, n in d.get("damaged_list", ()):
            if n:
                out.write("  damaged: %d bytes at offset %d skipped\n" % (n, off))
        for v in d["values_list"]:
            out.write("  %-20s %r  scaler %s  unit %s%s%s\n" % (
                v["obis"], v["value"], v["scaler"], v["unit"],
                "" if v["scaled"] is None else "  = %s %s" % (v["scaled"], v["unit"] or ""),
                "  at %s" % v["time"] if v["time"] else ""))
        for t, code, text in d["events_list"]:
            out.write("  event %s code %s %s\n" % (t, code, text or ""))
        for p in d["profiles_list"]:
            out.write("  profile %s  period %s s  %d rows  columns %s\n" % (
                p["obis"], p["capture_period"], len(p["rows"]), ", ".join(str(c[0]) for c in p["columns"])))
            rows = p["rows"]
            shown = rows if len(rows) <= 6 else rows[:3] + rows[-3:]
            for i, (clock, cols) in enumerate(shown):
                if len(rows) > 6 and i == 3:
                    out.write("    ...\n")
                out.write("    %s %s\n" % (clock, " ".join(str(c) for c in cols)))
        if d.get("read_error"):
            out.write("  read error: %s\n" % d["read_error"])


def run(image, block_size=4096, as_json=False, out=None, block_count=None, root="/store"):
    """CLI body for ``optoread decode-flash``; returns the exit status."""
    out = out or sys.stdout
    try:
        sessions = decode_flash(image, block_size, block_count, root)
    except (StoreError, OSError) as e:
        out.write("error: %s\n" % e)
        return EXIT_FAILED
    if as_json:
        json.dump(sessions, out, indent=1)
        out.write("\n")
    else:
        print_text(sessions, out)
    if any(s.get("read_error") is not None for s in sessions):
        return EXIT_FAILED
    return EXIT_DAMAGED if any(s["damaged"] for s in sessions) else EXIT_OK
