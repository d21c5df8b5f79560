"""``optoread deploy``: compile the firmware for a board and copy it with mpremote (CPython).

    optoread deploy --board pico|esp32|unix --port DEV [--target DIR] [--romfs]

1. Compiles ``firmware/optoread/*.py`` (not the ``*_server.py`` ones) with mpy-cross for the
   board's architecture (pico: ``armv6m``, esp32: ``xtensawin``, unix: plain bytecode) into
   ``build/deploy/BOARD``;
   ``firmware/main.py`` is syntax-checked the same way but copied as source (a board only
   runs ``main.py``).
2. Asks the device (``mpremote connect DEV resume exec``) for its ``.mpy`` version and
   refuses files it could not import.
3. Creates the folders, removes ``lib/optoread/*.py`` left by an earlier source install
   (MicroPython imports ``x.py`` before ``x.mpy``), and copies in one mpremote session:

   ====================  ===========================================
   ``TARGET/lib/optoread/*.mpy``  the firmware package
   ``TARGET/main.py``             the device's main loop
   ``TARGET/board.py``            the board file (``boards/pico.py`` ...)
   ``TARGET/plans/*.json``        the default reading plans
   ====================  ===========================================

4. Imports the deployed package on the device and checks a CRC against the laptop's.

``--romfs``: the modules go into the board's ROMFS partition instead (``mpremote romfs
deploy`` of ``lib/optoread/*.mpy``, removed from the file system), where MicroPython runs
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
"""

import json
import os
import shutil
import subprocess
import sys

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


def firmware_modules(root):
    """Sorted paths (relative to root) of the firmware package's modules for a board.

    The ``*_server.py`` modules (the meter's side of ACSE and xDLMS, for the simulator and
    the tests) are left out: a reader never imports them.
    """
    d = os.path.join(root, "firmware", "optoread")
    return ["firmware/optoread/" + n for n in sorted(os.listdir(d))
            if n.endswith(".py") and not n.endswith("_server.py")]


def default_plans(root):
    """Sorted paths (relative to root) of the plans shipped with the firmware."""
    d = os.path.join(root, "firmware", "plans")
    return ["firmware/plans/" + n for n in sorted(os.listdir(d)) if n.endswith(".json")]


def package_manifest(root=None):
    """The mip ``package.json`` for this checkout (install with ``--target /``)."""
    root = root or repo_root()
    urls = [["lib/optoread/" + p.rsplit("/", 1)[1], p] for p in firmware_modules(root)]
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
        name = rel.rsplit("/", 1)[1][:-3] + ".mpy"
        is_main = rel == "firmware/main.py"
        out = os.path.join(out_dir, "main.check.mpy") if is_main else os.path.join(pkg, name)
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


_PREPARE = """
import os
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
for _d in ('/lib', '/lib/optoread', '/plans'):
    _mk(_p + _d)
_keep = %(keep)r
_n = 0
for _f in os.listdir(_p + '/lib/optoread'):
    if _f.endswith('.py') or (_f.endswith('.mpy') and _f not in _keep):
        os.remove(_p + '/lib/optoread/' + _f)
        _n += 1
print('@prepared', _n)
"""

_VERIFY = """
import sys, os
_t = %(target)r.rstrip('/')
_added = []
for _d in (_t + '/lib', _t or '/'):
    if _d not in sys.path:
        sys.path.insert(0, _d)
        _added.append(_d)
for _m in [k for k in sys.modules if k == 'board' or k.startswith('optoread')]:
    del sys.modules[_m]
try:
    from optoread import crc, errors
    import board
    print('@verify', crc.crc32(%(data)r), crc.crc16_x25(%(data)r), board.NAME)
    print('@from', crc.__file__)
    print('@files', ' '.join(sorted(os.listdir(_t + '/lib/optoread'))))
    print('@plans', ' '.join(sorted(os.listdir(_t + '/plans'))))
    print('@root', ' '.join(sorted(os.listdir(_t or '/'))))
finally:
    for _d in _added:
        sys.path.remove(_d)
"""


def _board_port(path):
    """The ``PORT = "..."`` (sys.platform) a board file is written for, read without importing it."""
    with open(path) as f:
        for line in f:
            if line.startswith("PORT") and "=" in line:
                return line.split("=", 1)[1].split("#")[0].strip().strip("\"'")
    return None


def _parse_tagged(out, tag):
    for line in out.splitlines():
        if line.startswith(tag + " ") or line == tag:
            return line[len(tag):].strip()
    raise DeployError("device gave no %s line: %s" % (tag, out.strip()[-400:]))


def stage_romfs(mpys, out_dir):
    """Lay the compiled modules out for a ROMFS image (``lib/optoread/*.mpy``: a board mounts the
    image at /rom and puts /rom/lib on sys.path); return the staging directory."""
    stage = os.path.join(out_dir, "romfs")
    if os.path.isdir(stage):
        shutil.rmtree(stage)
    os.makedirs(os.path.join(stage, "lib", "optoread"))
    for p in mpys:
        shutil.copy(p, os.path.join(stage, "lib", "optoread", os.path.basename(p)))
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


def deploy(board, port, target=None, root=None, build_dir=None, reset=None, mpremote=None,
           mpy_cross=None, force=False, log=None, romfs=False, source_lines=False):
    """Compile, copy and verify (the steps in the module docstring); return a summary dict.

    ``romfs``: write the modules into the board's ROMFS partition (``mpremote romfs deploy``)
    instead of its file system: MicroPython then runs their bytecode in place from flash, so
    importing them takes about half the RAM (``docs/benchmarks.md``, RAM). Needs a firmware
    built with ROMFS (``vfs.rom_ioctl``); refused, with nothing changed, otherwise.
    ``source_lines``: keep line numbers in the bytecode (tracebacks with lines, more RAM).
    """
    if board not in BOARDS:
        raise DeployError("unknown board %r (choose %s)" % (board, ", ".join(sorted(BOARDS))))
    root = root or repo_root()
    board_file, arch, default_target = BOARDS[board]
    target = target if target is not None else default_target
    if target in (":", ""):
        target = "/"
    if target is None:
        raise DeployError("--board unix needs --target DIR (its file system is the host's)")
    if target.startswith(":"):
        target = target[1:] or "/"
    if not target.startswith("/"):
        raise DeployError("--target must be an absolute device path, got %r" % target)
    for rel in ("firmware/main.py", board_file):
        if not os.path.exists(os.path.join(root, rel)):
            raise DeployError("%s is missing from the checkout" % rel)
    log = log or (lambda text: None)
    build_dir = build_dir or os.path.join(root, "build", "deploy", board)
    device_dir = "/rom/lib/optoread" if romfs else _join(target, "lib/optoread")
    mpys = compile_firmware(root, board, build_dir, mpy_cross, log, device_dir, source_lines)

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

    names = [os.path.basename(p) for p in mpys]
    if romfs:
        segments = _parse_tagged(dev.exec(_ROM_QUERY), "@rom").split()[0]
        if segments in ("0", "None", "False"):
            raise DeployError("the device's MicroPython has no ROMFS partition (vfs.rom_ioctl): "
                              "deploy without --romfs, or flash a MicroPython build with ROMFS")
        stage = stage_romfs(mpys, build_dir)
        size = build_romfs_image(stage, os.path.join(build_dir, "romfs.img"), mpremote)
        dev.run(["romfs", "--no-mpy", "deploy", stage])
        log("wrote %d modules (%d-byte image) to the ROMFS partition" % (len(names), size))
    out = dev.exec(_PREPARE % {"target": target, "keep": [] if romfs else names})
    removed = int(_parse_tagged(out, "@prepared"))
    if removed:
        log("removed %d stale files from lib/optoread" % removed)

    plans = [os.path.join(root, p) for p in default_plans(root)]
    dev.run(*([] if romfs else [["fs", "cp"] + mpys + [":" + _join(target, "lib/optoread/")]]),
            ["fs", "cp", os.path.join(root, "firmware/main.py"), ":" + _join(target, "main.py")],
            ["fs", "cp", os.path.join(root, board_file), ":" + _join(target, "board.py")],
            ["fs", "cp"] + plans + [":" + _join(target, "plans/")])
    log("copied %d modules, main.py, board.py (%s), %d plans to %s"
        % (len(mpys), board_file, len(plans), target))

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
            "board_name": fields[2], "removed": removed, "platform": platform, "device_mpy": device_mpy}


def add_deploy_parser(sub):
    """Add the ``deploy`` subcommand to an argparse subparsers object."""
    sp = sub.add_parser("deploy", help="compile the firmware for a board and copy it with mpremote")
    sp.add_argument("--board", required=True, choices=sorted(BOARDS))
    sp.add_argument("--port", required=True, help="the board's serial port (or a bridged pty)")
    sp.add_argument("--target", help="device folder to install into (default: the flash root /; "
                    "required for --board unix)")
    sp.add_argument("--build-dir", help="where the .mpy files go (default build/deploy/BOARD)")
    sp.add_argument("--no-reset", dest="reset", action="store_false", default=None,
                    help="do not soft-reset the board afterwards")
    sp.add_argument("--force", action="store_true", help="deploy even if the device's platform differs")
    sp.add_argument("--romfs", action="store_true",
                    help="put the modules in the board's ROMFS partition (run in place from flash: "
                    "about half the RAM); needs a MicroPython build with ROMFS")
    sp.add_argument("--source-lines", action="store_true",
                    help="keep line numbers in the bytecode (tracebacks with lines; ~5 KB more RAM)")
    sp.add_argument("--quiet", action="store_true")
    sp.set_defaults(func=cmd_deploy)
    return sp


def cmd_deploy(args):
    """Run ``optoread deploy``; 0 on success, 1 when a step failed."""
    log = None if args.quiet else (lambda text: sys.stderr.write("optoread deploy: %s\n" % text))
    try:
        s = deploy(args.board, args.port, target=args.target, build_dir=args.build_dir, reset=args.reset,
                   force=args.force, log=log, romfs=args.romfs, source_lines=args.source_lines)
    except DeployError as e:
        sys.stderr.write("optoread deploy: %s\n" % e)
        return 1
    print("deployed %d modules, main.py, board.py (%s), %d plans to %s:%s"
          % (len(s["modules"]), s["board_name"], len(s["plans"]), args.port, s["target"]))
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
