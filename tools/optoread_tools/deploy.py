"""``optoread deploy``: compile the firmware for a board and copy it with mpremote (CPython).

    optoread deploy --board pico|esp32|unix --port DEV [--target DIR] [--romfs]

1. Compiles ``firmware/optoread/**.py`` (not the meter's side, ``server.py``) with mpy-cross for the
   board's architecture (pico: ``armv6m``, esp32: ``xtensawin``, unix: plain bytecode) into
   ``build/deploy/BOARD``;
   ``firmware/main.py`` is syntax-checked the same way but copied as source (a board only
   runs ``main.py``).
2. Asks the device (``mpremote connect DEV resume exec``) for its ``.mpy`` version and
   refuses files it could not import.
3. Creates the folders, removes ``lib/optoread/**.py`` left by an earlier source install
   (MicroPython imports ``x.py`` before ``x.mpy``), and copies in one mpremote session:

   ====================  ===========================================
   ``TARGET/lib/optoread/**.mpy`` the firmware package
   ``TARGET/main.py``             the device's main loop
   ``TARGET/board.py``            the board file (``boards/pico.py`` ...)
   ``TARGET/plans/*.json``        the default reading plans
   ====================  ===========================================

4. Imports the deployed package on the device and checks a CRC against the laptop's.

``--romfs``: the modules go into the board's ROMFS partition instead (``mpremote romfs
deploy`` of ``lib/optoread/**.mpy``, removed from the file system), where MicroPython runs
their bytecode in place: about half the RAM for imports. Refused, with nothing changed, when
the firmware has no ROMFS (``vfs.rom_ioctl``).

``resume`` is always used: it does not soft-reset the device, which the MicroPython unix
port behind a pty (``optoread_tools.ptybridge``) needs, and which leaves a board's files
alone; a board is soft-reset at the end (``--no-reset`` to skip) so its ``main.py`` starts.
On a board ``TARGET`` is the flash root ``/``; on the unix port (whose file system is the
host's) ``--target DIR`` is required.

On the unix port (what ``host_tests/test_deploy.py`` does)::

    python -m optoread_tools.ptybridge -- micropython     # prints /dev/pts/N, runs the REPL
    optoread deploy --board unix --port /dev/pts/N --target /tmp/optoread-dev

Installing the sources with mip from a checkout instead (no compilation)::

    mpremote connect DEV mip install --target / package.json tools/mip/pico.json

``package.json`` lists the same files; ``host_tests/test_deploy.py`` checks it stays in step
with the tree (:func:`package_manifest`).

A flash image instead of a device (no board needed)::

    optoread deploy --board pico|esp32 --image FILE [--no-main] [--add DEST=FILE ...] [--force]

writes a LittleFS v2 image of the board's whole file system (:func:`build_image`) with the same
files as ``--port`` copies (both take them from :func:`firmware_layout`) and the same manifest
``/optoread.json`` (:func:`make_manifest`); ``picotool`` / ``esptool`` write it to the board's
file-system partition (docs/hardware.md, "Flashing an image"). :func:`check_image` and
:func:`read_image_manifest` read an image back.
"""

import json
import os
import posixpath
import shutil
import subprocess
import sys
import tempfile
import zlib
from collections import namedtuple

BOARDS = {
    # name: (board file, mpy-cross -march or None for bytecode, default target)
    "pico": ("boards/pico.py", "armv6m", "/"),
    "esp32": ("boards/esp32_devkitc.py", "xtensawin", "/"),
    "unix": ("boards/unix.py", None, None),
}

# The board's bytecode carries no line-number tables: they are ~7 % of the .mpy files and, read
# from the file system, ~5 KB of the RAM the imports take (docs/benchmarks.md, RAM). Tracebacks
# then name the function but not the line; ``--source-lines`` keeps them for debugging.
MPY_FLAGS = ["-X", "no-source-lines"]

# mpy header byte 2 = (arch << 2) | sub-version; 0 = bytecode only (imports on every arch).
_ARCH_NAMES = {0: "bytecode", 1: "x86", 2: "x64", 3: "armv6", 4: "armv6m", 5: "armv7m", 6: "armv7em",
               7: "armv7emsp", 8: "armv7emdp", 9: "xtensa", 10: "xtensawin", 11: "rv32imc",
               12: "rv64imc"}

_CHECK_DATA = b"123456789"


class DeployError(Exception):
    """Deployment failed; the message says at which step."""


class UsageError(DeployError):
    """Bad input (unknown board, an option that does not apply, a bad path): the CLI exits 2."""


def repo_root():
    """The source checkout this module lives in (tools/optoread_tools/ -> the root)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tool(name):
    """A console script next to this interpreter (the venv), else on PATH."""
    cand = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(cand):
        return cand
    found = shutil.which(name)
    if not found:
        raise DeployError("%s not found (pip install %s)" % (name, name))
    return found


def firmware_modules(root, server=False):
    """Sorted paths (relative to root) of the firmware package's modules for a board, subpackages
    included (``firmware/optoread/dlms/hdlc/frame.py``).

    The meter's side of ACSE and xDLMS (``server.py`` of ``dlms/acse`` and ``dlms/xdlms``, for
    the simulator and the tests) is left out, as a reader never imports it, unless ``server``.
    """
    base = os.path.join(root, "firmware", "optoread")
    out = []
    for d, dirs, files in os.walk(base):
        dirs[:] = [x for x in dirs if not x.startswith((".", "__"))]
        rel = os.path.relpath(d, base).replace(os.sep, "/")
        for n in files:
            if n.endswith(".py") and (server or n != "server.py"):
                out.append("firmware/optoread/" + (n if rel == "." else rel + "/" + n))
    return sorted(out)


def module_path(path):
    """A module's path inside the package (``dlms/hdlc/frame.mpy``) from a source or compiled path."""
    return path.replace(os.sep, "/").rsplit("/optoread/", 1)[1]


def package_dirs(paths):
    """The package's folders (``dlms``, ``dlms/hdlc``, ...) that hold ``paths``, parents first."""
    out = set()
    for p in paths:
        parts = module_path(p).split("/")[:-1]
        for i in range(1, len(parts) + 1):
            out.add("/".join(parts[:i]))
    return sorted(out, key=lambda d: (d.count("/"), d))


def default_plans(root):
    """Sorted paths (relative to root) of the plans shipped with the firmware."""
    d = os.path.join(root, "firmware", "plans")
    return ["firmware/plans/" + n for n in sorted(os.listdir(d)) if n.endswith(".json")]


def firmware_layout(root, board, mpys, main=True, romfs=False):
    """The board's file system as ``(device path, host file)`` pairs, in copy order.

    ``lib/optoread/**.mpy`` (``mpys``: the :func:`compile_firmware` outputs; none with ``romfs``,
    the modules then live in the ROMFS partition), ``main.py`` (source; left out with
    ``main=False``), ``board.py`` (from ``boards/...``), ``plans/*.json``. Device paths are
    relative to the target folder (the flash root ``/`` on a board). ``deploy --port`` copies
    exactly this list and :func:`build_image` writes exactly this list (plus the manifest
    :data:`MANIFEST` of both), so what the tests check is what a board gets.
    """
    out = [] if romfs else [("lib/optoread/" + module_path(p), p) for p in mpys]
    if main:
        out.append(("main.py", os.path.join(root, "firmware", "main.py")))
    out.append(("board.py", os.path.join(root, BOARDS[board][0])))
    out += [("plans/" + p.rsplit("/", 1)[1], os.path.join(root, p)) for p in default_plans(root)]
    return out


MANIFEST = "optoread.json"  # at the root of the board's file system (or of --target)


def make_manifest(board, files, mpys, root=None, source_lines=False, main=True, extra=(), romfs=None):
    """The manifest :data:`MANIFEST` (a dict) describing a deployed file system.

    ``files``: ``(device path, bytes)`` of every file written besides the manifest; ``mpys``: the
    compiled modules (their header gives the .mpy version); ``extra``: device paths that are not
    part of the firmware (:func:`build_image`'s ``extra_files``); ``romfs``: ``(path, bytes)`` of
    the modules put in the ROMFS partition instead. No time stamp: the same checkout gives the
    same manifest, and the same image byte for byte.
    """
    root = root or repo_root()
    board_file, arch, _target = BOARDS[board]
    path = os.path.join(root, board_file)
    m = {
        "format": "optoread-fs/1",
        "board": board,
        "board_file": board_file,
        "board_name": _board_value(path, "NAME"),
        "platform": _board_value(path, "PORT"),
        "optoread": _version(root),
        "mpy": {"version": mpy_header(mpys[0])[0] if mpys else None, "arch": arch or "bytecode",
                "source_lines": bool(source_lines)},
        "main": bool(main),
        "files": [_file_entry(dest, data) for dest, data in files],
    }
    if extra:
        m["extra"] = sorted(extra)
    if romfs is not None:
        m["romfs"] = [_file_entry(dest, data) for dest, data in romfs]
    return m


def format_fs_manifest(manifest):
    """The manifest as the bytes written to :data:`MANIFEST` (one file entry per line)."""
    head = {k: v for k, v in manifest.items() if k not in ("files", "romfs")}
    lines = ["{"] + ["  %s: %s," % (json.dumps(k), json.dumps(v)) for k, v in head.items()]
    for key in ("files", "romfs"):
        if key in manifest:
            entries = ",\n".join("    " + json.dumps(e) for e in manifest[key])
            lines.append('  "%s": [\n%s\n  ],' % (key, entries))
    lines[-1] = lines[-1].rstrip(",")
    return ("\n".join(lines) + "\n}\n").encode()


def _file_entry(dest, data):
    return {"path": dest, "size": len(data), "crc32": "%08x" % (zlib.crc32(data) & 0xFFFFFFFF)}


def _read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def package_manifest(root=None):
    """The mip ``package.json`` for this checkout (install with ``--target /``)."""
    root = root or repo_root()
    urls = [["lib/optoread/" + module_path(p), p] for p in firmware_modules(root)]
    urls.append(["main.py", "firmware/main.py"])
    urls += [["plans/" + p.rsplit("/", 1)[1], p] for p in default_plans(root)]
    return {"urls": urls, "deps": [], "version": _version(root)}


def board_manifest(board, root=None):
    """The mip package of one board file (``tools/mip/BOARD.json``): installs it as board.py."""
    return {"urls": [["board.py", "../../" + BOARDS[board][0]]], "deps": [], "version": _version(root)}


def format_manifest(d):
    """A package manifest as JSON text, one ``[dest, source]`` pair per line."""
    urls = ",\n".join("    " + json.dumps(u) for u in d["urls"])
    return '{\n  "urls": [\n%s\n  ],\n  "deps": %s,\n  "version": %s\n}\n' % (
        urls, json.dumps(d["deps"]), json.dumps(d["version"]))


def _version(root):
    try:
        with open(os.path.join(root or repo_root(), "pyproject.toml")) as f:
            for line in f:
                if line.startswith("version"):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "0.0.0"


# -- compilation ---------------------------------------------------------------------------
def mpy_header(path):
    """(version, arch, sub_version) of a compiled .mpy file."""
    with open(path, "rb") as f:
        h = f.read(4)
    if len(h) < 4 or h[0] != 0x4D:  # 'M'
        raise DeployError("%s is not an .mpy file" % path)
    return h[1], h[2] >> 2, h[2] & 3


def compile_firmware(root, board, out_dir, mpy_cross=None, log=None, device_dir=None,
                     source_lines=False):
    """Compile the firmware package for ``board`` into ``out_dir/optoread``; return the .mpy paths.

    main.py is compiled to a scratch file only to catch syntax errors before it is copied.
    ``device_dir``: where the modules will be on the device (e.g. ``/lib/optoread``); each
    module's source name (tracebacks) is then its own path there, which is also its
    ``__file__``: one interned name per module instead of two, and no laptop path on the board.
    ``source_lines``: keep the line-number tables (:data:`MPY_FLAGS` drops them).
    """
    arch = BOARDS[board][1]
    mpy_cross = mpy_cross or _tool("mpy-cross")
    pkg = os.path.join(out_dir, "optoread")
    if os.path.isdir(pkg):
        shutil.rmtree(pkg)
    os.makedirs(pkg)
    outs = []
    sources = firmware_modules(root) + ["firmware/main.py"]
    for rel in sources:
        src = os.path.join(root, rel)
        is_main = rel == "firmware/main.py"
        name = "main.mpy" if is_main else module_path(rel)[:-3] + ".mpy"
        out = os.path.join(out_dir, "main.check.mpy") if is_main else os.path.join(pkg, *name.split("/"))
        if not is_main:
            os.makedirs(os.path.dirname(out), exist_ok=True)
        source = ["-s", device_dir.rstrip("/") + "/" + name] if device_dir and not is_main else []
        cmd = ([mpy_cross] + (["-march=" + arch] if arch else []) + ([] if source_lines else MPY_FLAGS)
               + source + ["-o", out, src])
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise DeployError("mpy-cross failed on %s:\n%s" % (rel, (r.stderr or r.stdout).strip()))
        if not is_main:
            outs.append(out)
    if log:
        log("compiled %d modules for %s (%s)" % (len(outs), board, arch or "bytecode"))
    return outs


def check_compatible(device_mpy, mpy_paths):
    """Raise DeployError unless the device (``sys.implementation._mpy``) can import every file."""
    if device_mpy is None:
        return  # firmware older than 1.19: nothing to compare, the import check will tell
    dver, dflags = device_mpy & 0xFF, (device_mpy >> 8) & 0xFF
    darch, dsub = dflags >> 2, dflags & 3
    for p in mpy_paths:
        ver, arch, sub = mpy_header(p)
        if ver != dver:
            raise DeployError("%s is .mpy v%d, the device imports v%d: use a matching mpy-cross"
                              % (os.path.basename(p), ver, dver))
        if arch and (arch != darch or sub != dsub):
            raise DeployError("%s holds %s code, the device is %s: wrong --board?"
                              % (os.path.basename(p), _ARCH_NAMES.get(arch, arch),
                                 _ARCH_NAMES.get(darch, darch)))


# -- talking to the device -----------------------------------------------------------------
class Remote:
    """mpremote against one port, always with ``resume`` (no soft reset on connect)."""

    def __init__(self, port, mpremote=None, timeout=120, log=None):
        self.port = port
        self.mpremote = mpremote or _tool("mpremote")
        self.timeout = timeout
        self.log = log

    def run(self, *chain):
        """Run a chain of mpremote commands (lists, joined with ``+``); return stdout."""
        cmd = [self.mpremote, "connect", self.port, "resume"]
        for i, c in enumerate(chain):
            if i:
                cmd.append("+")
            cmd += list(c)
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise DeployError("mpremote timed out: %s" % " ".join(cmd[3:])[:200])
        if r.returncode != 0:
            raise DeployError("mpremote %s failed (%d): %s" % (" ".join(cmd[4:])[:200], r.returncode,
                                                                (r.stderr or r.stdout).strip()[-800:]))
        return r.stdout

    def exec(self, code):
        return self.run(["exec", code])


def _join(target, rel):
    """Device path of ``rel`` under ``target`` ("/" or a directory)."""
    t = target.rstrip("/")
    return t + "/" + rel if t else "/" + rel


# Device-side: the files below a folder as (path, path relative to it), folders walked down.
_WALK = """
def _walk(d, rel=''):
    for _f in os.listdir(d):
        if os.stat(d + '/' + _f)[0] & 0x4000:
            yield from _walk(d + '/' + _f, rel + _f + '/')
        else:
            yield d + '/' + _f, rel + _f
"""

_PREPARE = """
import os
""" + _WALK + """
def _mk(p):
    try:
        os.mkdir(p)
    except OSError:
        pass
_t = %(target)r
_p = ''
for _c in _t.strip('/').split('/'):
    if _c:
        _p += '/' + _c
        _mk(_p)
for _d in ['/lib', '/lib/optoread', '/plans'] + ['/lib/optoread/' + _s for _s in %(dirs)r]:
    _mk(_p + _d)
_keep = %(keep)r
_n = 0
for _f, _r in list(_walk(_p + '/lib/optoread')):
    if _r.endswith('.py') or (_r.endswith('.mpy') and _r not in _keep):
        os.remove(_f)
        _n += 1
print('@prepared', _n)
"""

_VERIFY = """
import sys, os
""" + _WALK + """
_t = %(target)r.rstrip('/')
_added = []
for _d in (_t + '/lib', _t or '/'):
    if _d not in sys.path:
        sys.path.insert(0, _d)
        _added.append(_d)
for _m in [k for k in sys.modules if k == 'board' or k.startswith('optoread')]:
    del sys.modules[_m]
try:
    from optoread import crc
    from optoread import errors
    import board
    print('@verify', crc.crc32(%(data)r), crc.crc16_x25(%(data)r), board.NAME)
    print('@from', crc.__file__)
    print('@files', ' '.join(sorted(_r for _f, _r in _walk(_t + '/lib/optoread'))))
    print('@plans', ' '.join(sorted(os.listdir(_t + '/plans'))))
    print('@root', ' '.join(sorted(os.listdir(_t or '/'))))
finally:
    for _d in _added:
        sys.path.remove(_d)
"""


def _board_port(path):
    """The ``PORT = "..."`` (sys.platform) a board file is written for, read without importing it."""
    return _board_value(path, "PORT")


def _board_value(path, name):
    """A ``NAME = "..."`` string setting of a board file, read without importing it (or None)."""
    with open(path) as f:
        for line in f:
            if line.startswith(name) and line[len(name):].lstrip().startswith("="):
                return line.split("=", 1)[1].split("#")[0].strip().strip("\"'")
    return None


def _parse_tagged(out, tag):
    for line in out.splitlines():
        if line.startswith(tag + " ") or line == tag:
            return line[len(tag):].strip()
    raise DeployError("device gave no %s line: %s" % (tag, out.strip()[-400:]))


def stage_romfs(mpys, out_dir):
    """Lay the compiled modules out for a ROMFS image (``lib/optoread/**.mpy``: a board mounts the
    image at /rom and puts /rom/lib on sys.path); return the staging directory."""
    stage = os.path.join(out_dir, "romfs")
    if os.path.isdir(stage):
        shutil.rmtree(stage)
    os.makedirs(os.path.join(stage, "lib", "optoread"))
    for p in mpys:
        dest = os.path.join(stage, "lib", "optoread", *module_path(p).split("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy(p, dest)
    return stage


def build_romfs_image(stage, image, mpremote=None):
    """``mpremote romfs build`` of ``stage`` into the file ``image`` (no device needed)."""
    cmd = [mpremote or _tool("mpremote"), "romfs", "--no-mpy", "--output", image, "build", stage]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or not os.path.exists(image):
        raise DeployError("mpremote romfs build failed: %s" % (r.stderr or r.stdout).strip()[-400:])
    return os.path.getsize(image)


_ROM_QUERY = """
try:
    import vfs
    print('@rom', vfs.rom_ioctl(1) if hasattr(vfs, 'rom_ioctl') else 0)
except Exception as e:
    print('@rom 0', repr(e))
"""


PIN_ENV = "OPTOREAD_PIN"  # where deploy --port takes the device PIN from (or --pin-env VAR, or a prompt)


def leave_console(port, pin=None, timeout=5.0, log=None):
    """If the optoread firmware's console holds ``port`` (^C no longer stops it), end the firmware
    with ``unlock PIN`` and ``maintenance`` so that mpremote finds the REPL. Returns True if it
    did, False when no optoread console answered (a board with plain MicroPython, or none yet).
    ``pin``: a str, or a callable returning one (asked only when a console answers)."""
    import time

    from .devicepin import PinError, is_console, open_console, say

    log = log or (lambda text: None)
    try:
        ser = open_console(port)
    except PinError as e:
        raise DeployError(str(e))
    try:
        if not is_console(ser):
            return False  # the REPL (or silence): nothing holds the port
        if callable(pin):
            pin = pin()
        if not pin:
            raise DeployError("%s runs the optoread console, which ^C no longer stops: deploy needs the "
                              "device PIN to enter maintenance (set %s, or --pin-env VAR)" % (port, PIN_ENV))
        got = say(ser, b"unlock " + pin.encode() + b"\r\n", (b"unlocked", b"error"), timeout)
        if b"unlocked" not in got:
            raise DeployError("the device refused the PIN: %s" % got.decode("utf-8", "replace").strip()[:120])
        got = say(ser, b"maintenance\r\n", (b"leaving the firmware",), timeout)
        if b"leaving the firmware" not in got:
            raise DeployError("the device did not enter maintenance: %s"
                              % got.decode("utf-8", "replace").strip()[:120])
        log("left the optoread console for the REPL (maintenance)")
        time.sleep(0.5)  # main.py ends; the REPL starts
        return True
    finally:
        ser.close()


def deploy(board, port, target=None, root=None, build_dir=None, reset=None, mpremote=None,
           mpy_cross=None, force=False, log=None, romfs=False, source_lines=False, pin=None):
    """Compile, copy and verify (the steps in the module docstring); return a summary dict.

    ``romfs``: write the modules into the board's ROMFS partition (``mpremote romfs deploy``)
    instead of its file system: MicroPython then runs their bytecode in place from flash, so
    importing them takes about half the RAM (``docs/benchmarks.md``, RAM). Needs a firmware
    built with ROMFS (``vfs.rom_ioctl``); refused, with nothing changed, otherwise.
    ``source_lines``: keep line numbers in the bytecode (tracebacks with lines, more RAM).
    ``pin``: the device PIN (or a callable asking for it) when the optoread console holds the
    port (:func:`leave_console`).
    """
    if board not in BOARDS:
        raise UsageError("unknown board %r (choose %s)" % (board, ", ".join(sorted(BOARDS))))
    root = root or repo_root()
    board_file, arch, default_target = BOARDS[board]
    target = target if target is not None else default_target
    if target in (":", ""):
        target = "/"
    if target is None:
        raise UsageError("--board unix needs --target DIR (its file system is the host's)")
    if target.startswith(":"):
        target = target[1:] or "/"
    if not target.startswith("/"):
        raise UsageError("--target must be an absolute device path, got %r" % target)
    for rel in ("firmware/main.py", board_file):
        if not os.path.exists(os.path.join(root, rel)):
            raise DeployError("%s is missing from the checkout" % rel)
    log = log or (lambda text: None)
    build_dir = build_dir or os.path.join(root, "build", "deploy", board)
    device_dir = "/rom/lib/optoread" if romfs else _join(target, "lib/optoread")
    mpys = compile_firmware(root, board, build_dir, mpy_cross, log, device_dir, source_lines)

    if board != "unix" and "://" not in port:  # a real (or bridged) board's console
        leave_console(port, pin, log=log)
    dev = Remote(port, mpremote, log=log)
    out = dev.exec("import sys\nprint('@mpy', getattr(sys.implementation, '_mpy', None), sys.platform)")
    mpy_s, platform = _parse_tagged(out, "@mpy").split()[:2]
    device_mpy = None if mpy_s == "None" else int(mpy_s)
    check_compatible(device_mpy, mpys)
    want_platform = _board_port(os.path.join(root, board_file))
    if want_platform and platform != want_platform and not force:
        raise DeployError("the device runs %s, %s is for %s: wrong --board? (--force to deploy anyway)"
                          % (platform, board_file, want_platform))
    log("device: %s, mpy 0x%s" % (platform, "%04x" % device_mpy if device_mpy is not None else "?"))

    names = [module_path(p) for p in mpys]
    if romfs:
        segments = _parse_tagged(dev.exec(_ROM_QUERY), "@rom").split()[0]
        if segments in ("0", "None", "False"):
            raise DeployError("the device's MicroPython has no ROMFS partition (vfs.rom_ioctl): "
                              "deploy without --romfs, or flash a MicroPython build with ROMFS")
        stage = stage_romfs(mpys, build_dir)
        size = build_romfs_image(stage, os.path.join(build_dir, "romfs.img"), mpremote)
        dev.run(["romfs", "--no-mpy", "deploy", stage])
        log("wrote %d modules (%d-byte image) to the ROMFS partition" % (len(names), size))
    out = dev.exec(_PREPARE % {"target": target, "keep": [] if romfs else names,
                               "dirs": [] if romfs else package_dirs(mpys)})
    removed = int(_parse_tagged(out, "@prepared"))
    if removed:
        log("removed %d stale files from lib/optoread" % removed)

    plans = [os.path.join(root, p) for p in default_plans(root)]
    layout = firmware_layout(root, board, mpys, romfs=romfs)
    manifest = make_manifest(board, [(dest, _read_bytes(src)) for dest, src in layout], mpys, root,
                             source_lines, romfs=[("lib/optoread/" + module_path(p), _read_bytes(p))
                                                  for p in mpys] if romfs else None)
    manifest_path = os.path.join(build_dir, MANIFEST)
    with open(manifest_path, "wb") as f:
        f.write(format_fs_manifest(manifest))
    # The manifest goes last: a device holding it got every file before it.
    dev.run(*_copy_commands(layout, target), ["fs", "cp", manifest_path, ":" + _join(target, MANIFEST)])
    log("copied %d modules, main.py, board.py (%s), %d plans, %s to %s"
        % (0 if romfs else len(mpys), board_file, len(plans), MANIFEST, target))

    out = dev.exec(_VERIFY % {"target": target, "data": _CHECK_DATA})
    fields = _parse_tagged(out, "@verify").split(" ", 2)
    sys.path.insert(0, os.path.join(root, "firmware"))
    from optoread import crc as host_crc  # the same module, on CPython

    want = [str(host_crc.crc32(_CHECK_DATA)), str(host_crc.crc16_x25(_CHECK_DATA))]
    if fields[:2] != want:
        raise DeployError("deployed optoread.crc gives %s, expected %s" % (fields[:2], want))
    files = _parse_tagged(out, "@files").split()
    if sorted(files) != ([] if romfs else sorted(names)):
        raise DeployError("lib/optoread holds %s, expected %s" % (files, [] if romfs else names))
    got_plans = _parse_tagged(out, "@plans").split()
    missing = [os.path.basename(p) for p in plans if os.path.basename(p) not in got_plans]
    if missing:
        raise DeployError("plans missing on the device: %s" % missing)
    if MANIFEST not in _parse_tagged(out, "@root").split():
        raise DeployError("%s is missing on the device" % MANIFEST)
    origin = _parse_tagged(out, "@from")
    if romfs and not origin.startswith("/rom"):
        raise DeployError("optoread was imported from %s, not from the ROMFS partition" % origin)
    log("verified: package imports (%s), crc ok, board %r" % (origin, fields[2]))

    if reset is None:
        reset = board != "unix"
    if reset:
        try:
            dev.run(["soft-reset"])
            log("soft reset: main.py starts")
        except DeployError as e:  # the files are in place; a reset failure is only a warning
            log("warning: soft reset failed: %s" % e)
    return {"board": board, "target": target, "modules": names, "plans": [os.path.basename(p) for p in plans],
            "board_name": fields[2], "removed": removed, "platform": platform, "device_mpy": device_mpy,
            "manifest": manifest}


def _copy_commands(layout, target):
    """mpremote ``fs cp`` commands for ``(device path, host file)`` pairs under ``target``: one
    command per folder for the files that keep their name, one per renamed file."""
    groups, order = {}, []
    for dest, src in layout:
        folder, name = posixpath.split(dest)
        key = (folder,) if name == os.path.basename(src) else (folder, name)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(src)
    cmds = []
    for key in order:
        where = _join(target, key[0] + "/" if key[0] else "") if len(key) == 1 else \
            _join(target, posixpath.join(key[0], key[1]))
        cmds.append(["fs", "cp"] + groups[key] + [":" + where])
    return cmds


# -- flash images --------------------------------------------------------------------------
ImageGeometry = namedtuple("ImageGeometry", "block_size block_count flash_offset address prog_size flash")

# The file system of the stock MicroPython builds, where ``picotool`` / ``esptool`` write an image.
IMAGE_GEOMETRY = {
    # RPI_PICO (MicroPython v1.28): ports/rp2/boards/RPI_PICO/mpconfigboard.h sets
    # MICROPY_HW_FLASH_STORAGE_BYTES = 1408 KB; ports/rp2/rp2_flash.c puts it at the top of the
    # 2 MB flash (PICO_FLASH_SIZE_BYTES - 1408 KB = 0xA0000; XIP address 0x100A0000) in 4096-byte
    # sectors; modules/_boot.py mounts it at / with vfs.VfsLfs2(bdev, progsize=256).
    "pico": ImageGeometry(4096, 352, 0xA0000, 0x100A0000, 256,
                          "picotool load -v {image} -t bin -o 0x100A0000"),
    # ESP32_GENERIC (4 MB flash): ports/esp32/partitions-4MiB.csv has "vfs, data, fat, 0x200000,
    # 0x200000" (newer builds use partitions-4MiBplus.csv, whose vfs partition is the flash after
    # the 0x1F0000-byte app at 0x10000: the same 0x200000-0x400000 on a 4 MB module; one revision
    # of that table has a 0x210000-byte app instead, moving vfs to 0x220000: docs/hardware.md says
    # to check esp32.Partition(...).info() on the board);
    # esp32_partition.c serves it in 4096-byte blocks; modules/_boot.py mounts it with
    # vfs.mount(bdev, "/"), which detects LittleFS and uses VfsLfs2's default progsize=32.
    "esp32": ImageGeometry(4096, 512, 0x200000, None, 32, "esptool.py write_flash 0x200000 {image}"),
}

# extmod/vfs_lfs.c and vfs_lfsx.c: readsize=32 and lookahead=32 by default, block_cycles=100,
# cache_size=4*max(readsize, progsize); the name, file and attribute limits are littlefs's
# defaults (LFS2_NAME_MAX 255), as in littlefs-python. Disk version: littlefs-python's (2.1), what
# MicroPython's own mkfs writes (its lib/littlefs is v2.8+).
_LFS_READ_SIZE = 32
_LFS_LOOKAHEAD = 32
_LFS_BLOCK_CYCLES = 100
_LFS_NAME_MAX = 255
_IMAGE_MAX_BYTES = 64 << 20  # larger files are not read as images
_BLOCK_SIZES = (4096, 512, 1024, 2048, 8192, 16384, 32768, 65536)


def image_geometry(board):
    """The :class:`ImageGeometry` of ``board``'s file system; UsageError for unix or an unknown board."""
    if board not in BOARDS:
        raise UsageError("unknown board %r (choose %s)" % (board, ", ".join(sorted(BOARDS))))
    if board not in IMAGE_GEOMETRY:
        raise UsageError("--board %s has no flash image: its file system is the host's "
                         "(deploy --port DEV --target DIR)" % board)
    return IMAGE_GEOMETRY[board]


def flash_command(board, image):
    """The command that writes ``image`` to ``board``'s file-system partition (docs/hardware.md)."""
    return image_geometry(board).flash.format(image=image)


def _kb(n):
    return "%d KB" % (n // 1024) if n % 1024 == 0 else "%.1f KB" % (n / 1024)


def _lfs_config(geom, block_count):
    return dict(block_size=geom.block_size, block_count=block_count, read_size=_LFS_READ_SIZE,
                prog_size=geom.prog_size, cache_size=4 * max(_LFS_READ_SIZE, geom.prog_size),
                lookahead_size=_LFS_LOOKAHEAD, block_cycles=_LFS_BLOCK_CYCLES, name_max=_LFS_NAME_MAX)


def _lfs_build(files, geom, block_count):
    """A formatted LittleFS holding ``files`` ((path, bytes)): (image bytes, blocks in use)."""
    from littlefs import LittleFS, UserContext

    ctx = UserContext(buffsize=geom.block_size * block_count)  # 0xFF: erased flash
    fs = LittleFS(context=ctx, mount=False, **_lfs_config(geom, block_count))
    fs.format()
    fs.mount()
    for dest, data in files:
        folder = posixpath.dirname(dest)
        if folder:
            fs.makedirs(folder, exist_ok=True)
        with fs.open(dest, "wb") as f:
            f.write(data)
    used = fs.used_block_count
    fs.unmount()
    return bytes(ctx.buffer), used


def _blocks_needed(files, geom):
    """How many blocks ``files`` take in a file system with room to spare."""
    from littlefs import LittleFSError

    n = 2 * sum(len(d) // geom.block_size + 2 for _, d in files) + 16
    while True:
        try:
            return _lfs_build(files, geom, n)[1]
        except LittleFSError as e:
            if e.code != LittleFSError.Error.LFS_ERR_NOSPC or n > (1 << 20):
                raise
            n *= 2


def _make_fs(files, geom, block_count, board):
    from littlefs import LittleFSError

    try:
        return _lfs_build(files, geom, block_count)
    except LittleFSError as e:
        if e.code != LittleFSError.Error.LFS_ERR_NOSPC:
            raise DeployError("LittleFS refused the files: %s" % e)
    need = _blocks_needed(files, geom)
    have = block_count * geom.block_size
    raise DeployError("the files do not fit: they need %s (%d blocks of %d bytes), the %s file system holds "
                      "%s (%d blocks): leave out %s"
                      % (_kb(need * geom.block_size), need, geom.block_size, board, _kb(have), block_count,
                         _kb(max(need - block_count, 1) * geom.block_size)))


class _Image:
    """A LittleFS image file read into memory and mounted (never written back)."""

    def __init__(self, path):
        from littlefs import LittleFS, UserContext

        self.path = path
        try:
            self.size = os.path.getsize(path)
            if self.size > _IMAGE_MAX_BYTES:
                raise DeployError("%s is not a LittleFS image (%s)" % (path, _kb(self.size)))
            data = _read_bytes(path)
        except OSError as e:
            raise DeployError("cannot read %s: %s" % (path, e.strerror or e))
        self.fs = None
        for bs in _BLOCK_SIZES:
            if len(data) < 2 * bs or b"littlefs" not in (data[8:16], data[bs + 8:bs + 16]):
                continue
            # mount=False: LittleFS(mount=True) formats what it cannot mount.
            fs = LittleFS(context=UserContext(buffer=bytearray(data)), block_size=bs, block_count=0,
                          mount=False)
            try:
                fs.mount()
                fs.listdir("/")
            except Exception:
                continue
            self.fs, self.block_size, self.block_count = fs, bs, fs.block_count
            break

    def read(self, name):
        with self.fs.open(name, "rb") as f:
            return f.read()

    def files(self):
        """Every file's device path (no leading /) -> its bytes."""
        out = {}
        for top, _dirs, names in self.fs.walk("/"):
            for n in names:
                p = posixpath.join(top, n).lstrip("/")
                out[p] = self.read(p)
        return out

    def manifest(self):
        """The image's :data:`MANIFEST` dict, or None when it has none (not an optoread image)."""
        try:
            text = self.read(MANIFEST)
        except Exception:
            return None
        try:
            m = json.loads(text)
        except ValueError:
            return None
        return m if isinstance(m, dict) and "board" in m else None


def _open_image(path, what="a LittleFS image"):
    img = _Image(path)
    if img.fs is None:
        raise DeployError("%s is not %s" % (path, what))
    return img


def read_image_manifest(path):
    """The manifest (a dict, see :func:`make_manifest`) of the optoread image file ``path``.

    Raises DeployError when ``path`` is not a LittleFS image or holds no ``/optoread.json``.
    """
    m = _open_image(path).manifest()
    if m is None:
        raise DeployError("%s holds no valid /%s: not an optoread image" % (path, MANIFEST))
    return m


def read_image_files(path):
    """Every file of the LittleFS image ``path``: device path (``lib/optoread/crc.mpy``) -> bytes."""
    img = _open_image(path)
    try:
        return img.files()
    except Exception as e:  # a truncated or damaged image
        raise DeployError("%s: cannot read its files (%s)" % (path, e))


def check_image(path, board):
    """Check that ``path`` is an optoread image for ``board``; return its manifest (a dict).

    ``check_image(path: str, board: str) -> dict``. Raises :class:`DeployError` with one line
    saying what is wrong: not a LittleFS image of the board's size ("image.bin is not a LittleFS
    image of 1408 KB"), no manifest, built for another board ("image.bin was built for esp32, not
    pico"), another geometry, or a file that no longer matches its manifest entry (size, CRC-32).
    Files the manifest does not list (readings stored by a device whose flash was read back) are
    allowed.
    """
    geom = image_geometry(board)
    size = geom.block_size * geom.block_count
    img = _open_image(path, "a LittleFS image of %s (the %s file system)" % (_kb(size), board))
    m = img.manifest()
    if m is None:
        raise DeployError("%s holds no valid /%s: not an optoread image" % (path, MANIFEST))
    if m.get("board") != board:
        raise DeployError("%s was built for %s, not %s" % (path, m.get("board"), board))
    if (img.block_size, img.block_count, img.size) != (geom.block_size, geom.block_count, size):
        raise DeployError("%s is not a LittleFS image of %s: it has %d blocks of %d bytes in a %s file"
                          % (path, _kb(size), img.block_count, img.block_size, _kb(img.size)))
    for e in m.get("files", []):
        try:
            data = img.read(e["path"])
        except Exception:
            raise DeployError("%s: %s is missing" % (path, e["path"]))
        if _file_entry(e["path"], data) != e:
            raise DeployError("%s: %s does not match its manifest entry (size, CRC-32): damaged image?"
                              % (path, e["path"]))
    return m


def _extra_files(extra_files):
    """``{device path: bytes or host path}`` -> [(path, bytes)] with clean relative paths."""
    out = []
    items = extra_files.items() if hasattr(extra_files, "items") else (extra_files or ())
    for dest, src in items:
        d = str(dest).strip("/")
        if not d or any(part in ("", ".", "..") for part in d.split("/")) or "\\" in d:
            raise UsageError("bad device path %r for an extra file" % (dest,))
        if d == MANIFEST:
            raise UsageError("/%s is written by deploy itself" % MANIFEST)
        if isinstance(src, (bytes, bytearray, memoryview)):
            data = bytes(src)
        else:
            try:
                data = _read_bytes(src)
            except OSError as e:
                raise UsageError("cannot read %s (for /%s): %s" % (src, d, e.strerror or e))
        out.append((d, data))
    return out


def _check_output(path, board, force):
    """Refuse to overwrite anything but an optoread image of ``board`` (any file with ``force``)."""
    if os.path.isdir(path):
        raise UsageError("%s is a folder" % path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError("no folder %s for %s" % (folder, path))
    if not os.path.lexists(path) or force:
        return
    if not os.path.isfile(path):
        raise DeployError("%s exists and is not a regular file: not overwritten" % path)
    try:
        img = _Image(path)
        m = img.manifest() if img.fs is not None else None
    except DeployError:  # unreadable, or too large for an image
        m = None
    if m is None:
        raise DeployError("%s exists and is not an optoread image: not overwritten (--force to replace it)"
                          % path)
    if m.get("board") != board:
        raise DeployError("%s is an optoread image for %s, not %s: not overwritten (--force to replace it)"
                          % (path, m.get("board"), board))


def _write_atomic(path, data):
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def build_image(board, path, root=None, build_dir=None, extra_files=None, main=True, force=False,
                block_count=None, source_lines=False, mpy_cross=None, log=None):
    """Write a LittleFS image of ``board``'s whole file system to ``path``; return a summary dict.

    ``build_image(board: str, path: str, *, extra_files: dict = None, main: bool = True,
    force: bool = False, ...) -> dict``

    The files are :func:`firmware_layout`'s (what ``deploy --port`` copies: ``lib/optoread/*.mpy``
    compiled for the board with the names they have on it, ``main.py``, ``board.py``,
    ``plans/*.json``) and the manifest ``/optoread.json`` (:func:`make_manifest`), in a
    LittleFS v2 file system with the geometry and parameters of the stock MicroPython build
    (:data:`IMAGE_GEOMETRY`), ready for ``picotool`` / ``esptool`` (:func:`flash_command`).

    ``extra_files``: ``{device path: bytes or host file}`` added to the image (test scripts, a
    config, more plans); a path the firmware also has replaces the firmware's file. ``main``:
    False leaves out main.py (the board then boots to the REPL: a test image whose raw REPL runs
    scripts without main.py's console holding the USB port). ``force``: replace ``path`` whatever
    it is; without it only a missing file or an optoread image of the same board is replaced.
    ``block_count``: another size than the board's (tests). ``build_dir``: keep the compiled
    modules there (default: a temporary folder, removed).

    Raises :class:`UsageError` (unix or an unknown board, a bad extra path) or
    :class:`DeployError` (``path`` not replaceable, the files do not fit: the message says how
    much they need and how much there is); ``path`` is then untouched. The image is written
    to a temporary file and renamed into place. The summary: ``path``, ``board``, ``size``,
    ``block_size``, ``block_count``, ``used_blocks``, ``free_bytes``, ``files`` (device paths),
    ``manifest``, ``flash`` (the command that writes it).
    """
    geom = image_geometry(board)
    path = os.fspath(path)
    _check_output(path, board, force)
    extras = _extra_files(extra_files)
    root = root or repo_root()
    board_file = BOARDS[board][0]
    for rel in ("firmware/main.py", board_file):
        if not os.path.exists(os.path.join(root, rel)):
            raise DeployError("%s is missing from the checkout" % rel)
    log = log or (lambda text: None)
    count = block_count or geom.block_count
    if count < 2:
        raise UsageError("a LittleFS image needs at least 2 blocks")
    with tempfile.TemporaryDirectory(prefix="optoread-image-") as scratch:
        # The device path of the modules is /lib/optoread, as for deploy --port to a board's root.
        mpys = compile_firmware(root, board, build_dir or scratch, mpy_cross, log, "/lib/optoread",
                                source_lines)
        files = [(dest, _read_bytes(src)) for dest, src in firmware_layout(root, board, mpys, main=main)]
        index = {dest: i for i, (dest, _d) in enumerate(files)}
        for dest, data in extras:
            if dest in index:
                files[index[dest]] = (dest, data)
            else:
                index[dest] = len(files)
                files.append((dest, data))
        manifest = make_manifest(board, files, mpys, root, source_lines, main=main,
                                 extra=[d for d, _ in extras])
    files.append((MANIFEST, format_fs_manifest(manifest)))
    data, used = _make_fs(files, geom, count, board)
    _write_atomic(path, data)
    size = geom.block_size * count
    log("wrote %s: %d files, %s of %s used" % (path, len(files), _kb(used * geom.block_size), _kb(size)))
    return {"path": path, "board": board, "size": size, "block_size": geom.block_size, "block_count": count,
            "used_blocks": used, "free_bytes": (count - used) * geom.block_size,
            "files": [d for d, _ in files], "manifest": manifest, "flash": flash_command(board, path)}


def add_deploy_parser(sub):
    """Add the ``deploy`` subcommand to an argparse subparsers object."""
    sp = sub.add_parser("deploy", help="compile the firmware for a board and copy it with mpremote "
                        "(--port), or write a flash image of the board's file system (--image)")
    sp.add_argument("--board", required=True, metavar="|".join(sorted(BOARDS)))
    sp.add_argument("--port", help="the board's serial port (or a bridged pty)")
    sp.add_argument("--image", metavar="FILE",
                    help="instead of --port: write a LittleFS image of the board's whole file system to FILE "
                    "(pico, esp32; no device needed), to flash with picotool / esptool (docs/hardware.md)")
    sp.add_argument("--target", help="device folder to install into (default: the flash root /; "
                    "required for --board unix)")
    sp.add_argument("--build-dir", help="where the .mpy files go (default build/deploy/BOARD; "
                    "--image: a temporary folder)")
    sp.add_argument("--no-reset", dest="reset", action="store_false", default=None,
                    help="do not soft-reset the board afterwards")
    sp.add_argument("--force", action="store_true", help="deploy even if the device's platform differs; "
                    "--image: replace FILE even if it is not an optoread image for this board")
    sp.add_argument("--romfs", action="store_true",
                    help="put the modules in the board's ROMFS partition (run in place from flash: "
                    "about half the RAM); needs a MicroPython build with ROMFS")
    sp.add_argument("--source-lines", action="store_true",
                    help="keep line numbers in the bytecode (tracebacks with lines; ~5 KB more RAM)")
    sp.add_argument("--no-main", dest="main", action="store_false", default=True,
                    help="--image: leave out main.py (the board boots to the REPL: test images)")
    sp.add_argument("--add", action="append", default=[], metavar="DEST=FILE",
                    help="--image: also put the host FILE at DEST on the board (repeatable)")
    sp.add_argument("--pin-env", metavar="VAR", default=PIN_ENV,
                    help="--port: the environment variable holding the device PIN (default %(default)s; "
                    "asked for on a terminal otherwise), to leave the optoread console for the REPL")
    sp.add_argument("--quiet", action="store_true")
    sp.set_defaults(func=cmd_deploy)
    return sp


def _ask_pin(var):
    """The device PIN: from the environment variable ``var``, else a prompt on a terminal."""
    pin = os.environ.get(var or PIN_ENV)
    if not pin and sys.stdin.isatty():
        import getpass

        pin = getpass.getpass("device PIN: ")
    return pin


def _fail(text, status):
    sys.stderr.write("optoread deploy: %s\n" % text)
    return status


def cmd_deploy(args):
    """Run ``optoread deploy``: 0 on success, 1 when a step failed, 2 for bad input (one line on stderr)."""
    log = None if args.quiet else (lambda text: sys.stderr.write("optoread deploy: %s\n" % text))
    if args.board not in BOARDS:
        return _fail("unknown board %r (choose %s)" % (args.board, ", ".join(sorted(BOARDS))), 2)
    if args.port and args.image:
        return _fail("--port and --image exclude each other: copy to a board, or write an image", 2)
    if not args.port and not args.image:
        return _fail("give --port DEV (copy to a board) or --image FILE (write a flash image)", 2)
    if args.image:
        return _cmd_image(args, log)
    if not args.main or args.add:
        return _fail("--no-main and --add go with --image", 2)
    try:
        s = deploy(args.board, args.port, target=args.target, build_dir=args.build_dir, reset=args.reset,
                   force=args.force, log=log, romfs=args.romfs, source_lines=args.source_lines,
                   pin=lambda: _ask_pin(args.pin_env))
    except UsageError as e:
        return _fail(e, 2)
    except DeployError as e:
        return _fail(e, 1)
    print("deployed %d modules, main.py, board.py (%s), %d plans to %s:%s"
          % (len(s["modules"]), s["board_name"], len(s["plans"]), args.port, s["target"]))
    return 0


def _cmd_image(args, log):
    if args.target:
        return _fail("--target goes with --port: an image is the board's whole file system", 2)
    if args.romfs:
        return _fail("--romfs goes with --port: an image holds the file system, not the ROMFS partition", 2)
    extra = {}
    for spec in args.add:
        dest, sep, src = spec.partition("=")
        if not sep or not dest or not src:
            return _fail("--add wants DEST=FILE, got %r" % spec, 2)
        extra[dest] = src
    try:
        s = build_image(args.board, args.image, build_dir=args.build_dir, extra_files=extra, main=args.main,
                        force=args.force, source_lines=args.source_lines, log=log)
    except UsageError as e:
        return _fail(e, 2)
    except DeployError as e:
        return _fail(e, 1)
    m = s["manifest"]
    mods = sum(1 for f in m["files"] if f["path"].startswith("lib/optoread/"))
    print("wrote %s: the %s file system (LittleFS, %d blocks of %d bytes: %s), %d modules, %sboard.py (%s), "
          "%d plans, %s; %s used, %s free"
          % (s["path"], s["board"], s["block_count"], s["block_size"], _kb(s["size"]), mods,
             "main.py, " if m["main"] else "", m["board_name"],
             sum(1 for f in m["files"] if f["path"].startswith("plans/")), MANIFEST,
             _kb(s["used_blocks"] * s["block_size"]), _kb(s["free_bytes"])))
    print("flash it (replaces the board's whole file system, stored readings included): %s" % s["flash"])
    return 0


def main(argv=None):
    """``python -m optoread_tools.deploy`` (also ``--package-json`` / ``--board-json B``)."""
    import argparse

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--package-json"]:
        sys.stdout.write(format_manifest(package_manifest()))
        return 0
    if argv[:1] == ["--board-json"] and len(argv) > 1:
        sys.stdout.write(format_manifest(board_manifest(argv[1])))
        return 0
    p = argparse.ArgumentParser(prog="optoread")
    add_deploy_parser(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(["deploy"] + argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
