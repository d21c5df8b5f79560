"""optoread deploy, package.json and the pty bridge, against the MicroPython unix port (CPython only).

The unix port's REPL runs under ``optoread_tools.ptybridge``; mpremote talks to the bridged
pty with ``resume`` (toolchain notes: "mpremote against the unix port"). The unix port's
file system is the host's, so every deploy goes into a temp folder given as ``--target``.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from optoread_tools import deploy
from optoread_tools.ptybridge import PtyBridge

ROOT = deploy.repo_root()
BIN = os.path.dirname(sys.executable)
MICROPYTHON = os.path.join(BIN, "micropython")
MPREMOTE = os.path.join(BIN, "mpremote")

needs_unix_port = pytest.mark.skipif(
    not (os.path.exists(MICROPYTHON) and os.path.exists(MPREMOTE) and hasattr(os, "openpty")),
    reason="needs the micropython unix port, mpremote and ptys")


@pytest.fixture
def repl():
    """The unix port's REPL (no main.py) behind a bridged pty."""
    br = PtyBridge([MICROPYTHON, "-X", "heapsize=4m"])
    br.start()
    time.sleep(0.2)
    yield br
    br.stop()


def _mpremote(port, *args, cwd=None, timeout=60):
    r = subprocess.run([MPREMOTE, "connect", port, "resume"] + list(args), capture_output=True, text=True,
                       timeout=timeout, cwd=cwd)
    assert r.returncode == 0, r.stderr + r.stdout
    return r.stdout


def _deploy_cli(*args):
    """``optoread deploy ARGS`` (through cli.py once it has the subcommand, else the module's own main)."""
    from optoread_tools import cli

    wired = "deploy" in cli.build_parser()._subparsers._group_actions[0].choices
    cmd = ["-m", "optoread_tools.cli", "deploy"] if wired else ["-m", "optoread_tools.deploy"]
    return subprocess.run([sys.executable] + cmd + list(args), capture_output=True, text=True, timeout=180)


# -- package.json -------------------------------------------------------------------------
def test_package_json_matches_tree():
    with open(os.path.join(ROOT, "package.json")) as f:
        pkg = json.load(f)
    assert pkg == deploy.package_manifest(ROOT), (
        "package.json is out of step: python -m optoread_tools.deploy --package-json > package.json")
    dests = [d for d, _ in pkg["urls"]]
    assert len(dests) == len(set(dests))
    for dest, src in pkg["urls"]:
        assert os.path.exists(os.path.join(ROOT, src)), src
        assert not dest.startswith("/") and ".." not in dest
    mods = {d for d in dests if d.startswith("lib/optoread/")}
    assert mods == {"lib/optoread/" + n for n in os.listdir(os.path.join(ROOT, "firmware", "optoread"))
                    if n.endswith(".py") and not n.endswith("_server.py")}  # the meter's side stays home
    assert "main.py" in dests and any(d.startswith("plans/") for d in dests)


def test_board_packages_match():
    for board, (board_file, _arch, _t) in deploy.BOARDS.items():
        path = os.path.join(ROOT, "tools", "mip", board + ".json")
        with open(path) as f:
            pkg = json.load(f)
        assert pkg == deploy.board_manifest(board, ROOT), path
        (dest, src), = pkg["urls"]
        assert dest == "board.py"
        assert os.path.normpath(os.path.join(os.path.dirname(path), src)) == os.path.join(ROOT, board_file)


# -- compilation --------------------------------------------------------------------------
@pytest.mark.parametrize("board", ["pico", "esp32", "unix"])
def test_compile_for_each_board(board, tmp_path):
    outs = deploy.compile_firmware(ROOT, board, str(tmp_path))
    assert len(outs) == len(deploy.firmware_modules(ROOT))
    for p in outs:
        ver, arch, _sub = deploy.mpy_header(p)
        assert ver == 6
        # Bytecode-only modules carry arch 0 and import on every port; native code would name it.
        assert arch in (0, {"pico": 4, "esp32": 10, "unix": 0}[board])


def test_modules_are_named_by_their_path_on_the_device(tmp_path):
    # The traceback name is the module's file on the device (also its __file__: one qstr, not
    # two), never the laptop's checkout path.
    outs = deploy.compile_firmware(ROOT, "pico", str(tmp_path), device_dir="/lib/optoread")
    for p in outs:
        data = open(p, "rb").read()
        assert ("/lib/optoread/" + os.path.basename(p)).encode() in data
        assert ROOT.encode() not in data


@pytest.mark.skipif(not os.path.exists(MICROPYTHON), reason="no micropython in .venv")
def test_board_bytecode_has_no_line_numbers_unless_asked(tmp_path):
    # Line-number tables cost ~5 KB of the board's RAM (docs/benchmarks.md): dropped by
    # default, kept with --source-lines for debugging. A traceback tells them apart.
    code = ("import sys\nsys.path.insert(0, %r)\nfrom optoread import obis\n"
            "try:\n    obis.parse('no')\nexcept Exception as e:\n    sys.print_exception(e)\n")
    lines = {}
    for keep in (False, True):
        out = str(tmp_path / str(keep))
        outs = deploy.compile_firmware(ROOT, "unix", out, source_lines=keep)
        lines[keep] = sum(os.path.getsize(p) for p in outs)
        r = subprocess.run([MICROPYTHON, "-c", code % out], capture_output=True, text=True, timeout=60)
        m = re.search(r'obis\.py", line (\d+), in parse', r.stdout)
        assert m, r.stdout + r.stderr
        assert (int(m.group(1)) > 1) is keep, r.stdout  # without the tables every line is 1
    assert lines[False] < 0.95 * lines[True]


def test_check_compatible_refuses_other_versions(tmp_path):
    p = tmp_path / "x.mpy"
    p.write_bytes(b"M\x06\x00\x1f")
    deploy.check_compatible(0x0B06, [str(p)])  # bytecode: any arch
    deploy.check_compatible(None, [str(p)])  # old firmware: not checked here
    with pytest.raises(deploy.DeployError, match="v6"):
        deploy.check_compatible(0x0B05, [str(p)])
    p.write_bytes(b"M\x06\x13\x1f")  # armv6m native code (arch 4, sub 3)
    with pytest.raises(deploy.DeployError, match="armv6m"):
        deploy.check_compatible(0x0B06, [str(p)])  # an x64 unix port
    deploy.check_compatible(0x1306, [str(p)])


def test_unix_needs_target():
    with pytest.raises(deploy.DeployError, match="--target"):
        deploy.deploy("unix", "/dev/null")


# -- the pty bridge -----------------------------------------------------------------------
@needs_unix_port
def test_bridge_survives_reconnects(repl):
    import serial

    for i in range(3):
        with serial.Serial(repl.path, 115200, timeout=0.2) as s:
            s.write(b"print(%d*7)\r" % (i + 6))
            seen = b""
            deadline = time.monotonic() + 5
            while str((i + 6) * 7).encode() not in seen and time.monotonic() < deadline:
                seen += s.read(64)
            assert str((i + 6) * 7).encode() in seen, seen
        time.sleep(0.15)  # let the bridge see the hang-up
    assert repl.alive()
    # Output produced while nobody holds the port is dropped, as by a board's USB CDC.
    assert repl.stats["reconnects"] >= 3


# -- deploy to the pty-backed unix port ---------------------------------------------------
@needs_unix_port
def test_deploy_to_unix_port(repl, tmp_path):
    target = str(tmp_path / "dev")
    build = str(tmp_path / "build")
    r = _deploy_cli("--board", "unix", "--port", repl.path, "--target", target, "--build-dir", build)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "deployed" in r.stdout
    mods = sorted(p.rsplit("/", 1)[1][:-3] + ".mpy" for p in deploy.firmware_modules(ROOT))
    assert "xdlms_server.mpy" not in mods  # the meter's side is not deployed
    assert sorted(os.listdir(os.path.join(target, "lib", "optoread"))) == mods
    for n in mods:  # the copies are the compiled files, byte for byte
        with open(os.path.join(target, "lib", "optoread", n), "rb") as a, \
                open(os.path.join(build, "optoread", n), "rb") as b:
            assert a.read() == b.read(), n
    with open(os.path.join(target, "main.py"), "rb") as a, open(os.path.join(ROOT, "firmware", "main.py"),
                                                                 "rb") as b:
        assert a.read() == b.read()
    with open(os.path.join(target, "board.py")) as f:
        assert 'PORT = "linux"' in f.read()
    plans = sorted(n for n in os.listdir(os.path.join(ROOT, "firmware", "plans")) if n.endswith(".json"))
    assert sorted(os.listdir(os.path.join(target, "plans"))) == plans

    # The deployed modules import on the device and work: parse a readout, a CRC, an OBIS code.
    code = ("import sys\nsys.path.insert(0, %r)\nsys.path.insert(0, %r)\n"
            "from optoread import crc, obis, iec62056_21 as iec\nimport board\n"
            "r = iec.parse_readout(b'\\x021.8.0(001234.5*kWh)\\r\\n!\\r\\n\\x03' + bytes([%d]))\n"
            "print('@check', crc.crc16_x25(b'123456789'), r.datasets[0][0], r.datasets[0][1][0][0],"
            " board.PORT, crc.__file__.endswith('.mpy'))\n"
            % (target + "/lib", target, _bcc(b"1.8.0(001234.5*kWh)\r\n!\r\n\x03")))
    out = _mpremote(repl.path, "exec", code)
    line = [ln for ln in out.splitlines() if ln.startswith("@check")][0]
    assert line.split()[1:] == ["36974", "1.8.0", "001234.5", "linux", "True"], out

    # Deploying again is idempotent, and a stale source module (left by a mip install) is removed:
    # MicroPython would import x.py before x.mpy.
    with open(os.path.join(target, "lib", "optoread", "crc.py"), "w") as f:
        f.write("raise ImportError('stale')\n")
    r = _deploy_cli("--board", "unix", "--port", repl.path, "--target", target, "--build-dir", build)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "removed 1 stale" in r.stderr
    assert sorted(os.listdir(os.path.join(target, "lib", "optoread"))) == mods
    assert repl.alive()


def _bcc(data):
    v = 0
    for b in data:
        v ^= b
    return v


@needs_unix_port
def test_deploy_refuses_wrong_board(repl, tmp_path):
    r = _deploy_cli("--board", "pico", "--port", repl.path, "--target", str(tmp_path / "dev"),
                    "--build-dir", str(tmp_path / "build"), "--no-reset")
    assert r.returncode == 1
    assert "the device runs linux" in r.stderr and "rp2" in r.stderr
    assert not os.path.exists(tmp_path / "dev")


@needs_unix_port
def test_deploy_romfs_is_refused_without_a_rom_partition(repl, tmp_path):
    # The unix port has VfsRom but no ROM partition (no vfs.rom_ioctl): nothing may be changed.
    r = _deploy_cli("--board", "unix", "--port", repl.path, "--target", str(tmp_path / "dev"),
                    "--build-dir", str(tmp_path / "build"), "--romfs")
    assert r.returncode == 1
    assert "no ROMFS partition" in r.stderr, r.stderr
    assert not os.path.exists(tmp_path / "dev")
    assert repl.alive()


@pytest.mark.skipif(not os.path.exists(MICROPYTHON) or not os.path.exists(MPREMOTE),
                    reason="needs the micropython unix port and mpremote")
def test_romfs_image_runs_the_package_in_place(tmp_path):
    # What --romfs writes to a board: the image mpremote builds from the staged .mpy files.
    # Mounted with VfsRom (from a buffer here, from flash on a board) the package imports from it.
    build = str(tmp_path / "build")
    mpys = deploy.compile_firmware(ROOT, "unix", build)
    stage = deploy.stage_romfs(mpys, build)
    image = str(tmp_path / "romfs.img")
    size = deploy.build_romfs_image(stage, image)
    assert size > 50000
    code = ("import sys, vfs\nimg = open(%r, 'rb').read()\nvfs.mount(vfs.VfsRom(img), '/rom')\n"
            "sys.path.insert(0, '/rom/lib')\n"
            "from optoread import crc, reader\n"
            "print('@rom', crc.crc32(b'123456789'), crc.__file__, reader.__file__)\n" % image)
    r = subprocess.run([MICROPYTHON, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("@rom")][0].split()
    assert line[1] == "3421780262"
    assert line[2] == "/rom/lib/optoread/crc.mpy" and line[3] == "/rom/lib/optoread/reader.mpy"


@needs_unix_port
def test_mip_install_from_checkout(repl, tmp_path):
    target = str(tmp_path / "mip")
    os.mkdir(target)
    _mpremote(repl.path, "mip", "install", "--target", target, "package.json", "tools/mip/unix.json",
              cwd=ROOT, timeout=120)
    with open(os.path.join(ROOT, "package.json")) as f:
        pkg = json.load(f)
    for dest, src in pkg["urls"]:
        with open(os.path.join(target, dest), "rb") as a, open(os.path.join(ROOT, src), "rb") as b:
            assert a.read() == b.read(), dest
    assert os.path.exists(os.path.join(target, "board.py"))
    out = _mpremote(repl.path, "exec", "import sys\nsys.path.insert(0, %r)\nfrom optoread import crc\n"
                    "print('@crc', crc.crc32(b'123456789'))" % (target + "/lib"))
    assert "@crc 3421780262" in out
    shutil.rmtree(target)
