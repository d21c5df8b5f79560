"""The console's settings file (``config.json``): JSON that survives a power cut.

:func:`save` writes the new text to ``NAME.tmp`` and closes it, renames the current ``NAME`` to
``NAME.bak``, then ``NAME.tmp`` to ``NAME``. LittleFS commits a file at close and renames
atomically, so a cut at any point leaves a complete copy in ``NAME``, ``NAME.tmp`` (the new
version, between the renames) or ``NAME.bak`` (the previous one). :func:`load` takes the first of
them that parses, puts it back as ``NAME``, keeps a damaged ``NAME`` as ``NAME.bad`` and says
what happened (the boot banner shows it and blinks the failure pattern). ``reader.MeterProfiles``
writes ``meters.json`` the same way, inline (the reading's interned names, test_ram).

Loaded on first use and dropped again (``compat.unload``) by ``console.Config``: only the boot
and ``config set`` need it, never a reading's rows (RAM).
"""

import json

from optoread.store.store import OsFs  # the store's file operations on the port's VFS

_TMP = ".tmp"
_BAK = ".bak"
_BAD = ".bad"


def _read(fs, path):
    """The object in ``path``; None if it is missing; False if it is damaged."""
    try:
        with fs.open(path, "r") as f:
            text = f.read()
    except OSError as e:
        code = e.args[0] if e.args else None
        return None if code in (2, -2) else False  # ENOENT (LittleFS: -2): missing; else damaged
    try:
        d = json.loads(text)
    except ValueError:
        return False
    return d if isinstance(d, dict) else False


def load(path, fs=None):
    """``(object, problem)``: the stored object (``{}`` when there is none) and None, or a text
    saying what was repaired after a cut or damage. ``fs``: ``open``, ``rename`` and ``remove``
    (``store.OsFs``, the laptop's LittleFS adapter); default: the port's own files."""
    fs = fs or OsFs()
    name = path.rsplit("/", 1)[-1]
    d = _read(fs, path)
    if isinstance(d, dict):
        try:
            fs.remove(path + _TMP)  # a save cut before its renames: the old version stands
        except OSError:
            pass
        return d, None
    damaged = d is False
    if damaged:
        try:
            fs.rename(path, path + _BAD)  # kept for a look, never read again
        except OSError:
            pass
    for suffix, what in ((_TMP, "the copy being saved"), (_BAK, "the last good copy")):
        d = _read(fs, path + suffix)
        if isinstance(d, dict):
            try:
                save(path, d, fs)
            except OSError:
                pass
            return d, "%s was %s: restored from %s" % (
                name, "damaged (kept as %s%s)" % (name, _BAD) if damaged else "missing", what)
    if damaged:
        return {}, "%s was damaged (kept as %s%s), no good copy: defaults" % (name, name, _BAD)
    return {}, None


def save(path, data, fs=None):
    """Write ``data`` (a dict) so that a power cut leaves this version or the previous one."""
    fs = fs or OsFs()
    with fs.open(path + _TMP, "w") as f:
        f.write(json.dumps(data))
    try:
        fs.rename(path, path + _BAK)
    except OSError:  # no file yet
        pass
    fs.rename(path + _TMP, path)


def device_id(path, unique=None, fs=None):
    """The device's id (hex): ``unique`` (the board's ``machine.unique_id()``), or where there is
    none or it is all zeros (the emulated Pico, the unix port) a random one made at first boot and
    kept in the file ``path``, written as ``config.json`` is (a power cut leaves none or all)."""
    if unique and any(unique):
        return "".join("%02x" % b for b in unique)
    fs = fs or OsFs()
    for p in (path, path + _TMP, path + _BAK):
        got = _read(fs, p)  # {"id": "..."}
        if got and isinstance(got.get("id"), str) and got["id"]:
            return got["id"]
    try:
        import os

        raw = os.urandom(8)
    except (ImportError, AttributeError, NotImplementedError):  # a port without urandom
        import random

        raw = bytes(random.getrandbits(8) for _ in range(8))
    t = "".join("%02x" % b for b in raw)
    save(path, {"id": t}, fs)
    return t
