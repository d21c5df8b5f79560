"""optoread deploy, package.json and the pty bridge, against the MicroPython unix port (CPython only).

The unix port's REPL runs under ``optoread_tools.ptybridge``; mpremote talks to the bridged
pty with ``resume`` (toolchain notes: "mpremote against the unix port"). The unix port's
file system is the host's, so every deploy goes into a temp folder given as ``--target``.
"""

import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import time
import zlib

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
    tree = {"lib/optoread/" + p for p in _tree(os.path.join(ROOT, "firmware", "optoread"))
            if p.endswith(".py") and posixpath.basename(p) != "server.py"}  # the meter's side stays home
    assert mods == tree and "lib/optoread/dlms/hdlc/frame.py" in mods
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
        assert ("/lib/optoread/" + deploy.module_path(p)).encode() in data
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
    mods = sorted(deploy.module_path(p)[:-3] + ".mpy" for p in deploy.firmware_modules(ROOT))
    assert "dlms/xdlms/server.mpy" not in mods  # the meter's side is not deployed
    lib = os.path.join(target, "lib", "optoread")
    assert sorted(_tree(lib)) == mods
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
    # The manifest lists every file (firmware_layout: the same list --image writes), size and CRC.
    with open(os.path.join(target, deploy.MANIFEST)) as f:
        manifest = json.load(f)
    assert manifest["board"] == "unix" and manifest["mpy"]["arch"] == "bytecode"
    layout = deploy.firmware_layout(ROOT, "unix", [os.path.join(build, "optoread", n) for n in mods])
    assert [e["path"] for e in manifest["files"]] == [d for d, _ in layout]
    assert _tree(target) == {d for d, _ in layout} | {deploy.MANIFEST}
    for e in manifest["files"]:
        with open(os.path.join(target, e["path"]), "rb") as f:
            data = f.read()
        assert (len(data), "%08x" % zlib.crc32(data)) == (e["size"], e["crc32"]), e

    # The deployed modules import on the device and work: parse a readout, a CRC, an OBIS code.
    code = ("import sys\nsys.path.insert(0, %r)\nsys.path.insert(0, %r)\n"
            "from optoread import crc, obis\nfrom optoread.iec62056_21 import readout as iec\nimport board\n"
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
    assert sorted(_tree(lib)) == mods
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
            "from optoread import crc\nfrom optoread.device import reader\n"
            "print('@rom', crc.crc32(b'123456789'), crc.__file__, reader.__file__)\n" % image)
    r = subprocess.run([MICROPYTHON, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("@rom")][0].split()
    assert line[1] == "3421780262"
    assert line[2] == "/rom/lib/optoread/crc.mpy" and line[3] == "/rom/lib/optoread/device/reader.mpy"


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


# -- flash images (deploy --image) ----------------------------------------------------------
def _tree(top):
    """Relative paths of the files under ``top`` (``/`` separated)."""
    out = set()
    for d, _dirs, names in os.walk(top):
        for n in names:
            out.add(os.path.relpath(os.path.join(d, n), top).replace(os.sep, "/"))
    return out


def _lfs(path, block_size, block_count):
    """littlefs-python on an image file, mounted with the board's geometry (never formatting)."""
    from littlefs import LittleFS, UserContext

    with open(path, "rb") as f:
        buf = bytearray(f.read())
    fs = LittleFS(context=UserContext(buffer=buf), block_size=block_size, block_count=block_count,
                  mount=False)
    fs.mount()
    return fs


_IMAGES = {}


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """``image(board)``: (image path, build dir) of the board's image, built once per module."""
    def get(board):
        if board not in _IMAGES:
            d = tmp_path_factory.mktemp("image-" + board)
            path = str(d / ("%s.img" % board))
            summary = deploy.build_image(board, path, build_dir=str(d / "build"))
            _IMAGES[board] = (path, str(d / "build"), summary)
        return _IMAGES[board]
    yield get
    _IMAGES.clear()


def _image_cli(*args, via="module"):
    """``python -m optoread_tools.deploy ARGS`` or ``optoread deploy ARGS`` (cli.py)."""
    cmd = ["-m", "optoread_tools.cli", "deploy"] if via == "cli" else ["-m", "optoread_tools.deploy"]
    return subprocess.run([sys.executable] + cmd + list(args), capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("board,arch,size", [("pico", 4, 1408 * 1024), ("esp32", 10, 2048 * 1024)])
def test_image_holds_what_deploy_copies(image, board, arch, size, tmp_path):
    path, build, summary = image(board)
    geom = deploy.IMAGE_GEOMETRY[board]
    assert os.path.getsize(path) == size == geom.block_size * geom.block_count
    fs = _lfs(path, 4096, geom.block_count)  # mounts with the board's geometry
    assert fs.fs_stat().block_count == geom.block_count and fs.fs_stat().name_max == 255

    # deploy --port to a board's root compiles the modules named by their device path
    # /lib/optoread/X.mpy and copies firmware_layout(): the image holds exactly those files, byte
    # for byte (the compile_firmware outputs build_image kept in its build dir), and the manifest.
    assert deploy._join("/", "lib/optoread") == "/lib/optoread"
    mpys = sorted(os.path.join(build, "optoread", p) for p in _tree(os.path.join(build, "optoread")))
    layout = deploy.firmware_layout(ROOT, board, mpys)
    files = deploy.read_image_files(path)
    assert set(files) == {d for d, _ in layout} | {deploy.MANIFEST}
    assert sorted(files) == sorted(summary["files"])
    for dest, src in layout:
        with open(src, "rb") as f:
            assert files[dest] == f.read(), dest
    assert files["board.py"] == open(os.path.join(ROOT, deploy.BOARDS[board][0]), "rb").read()
    assert files["main.py"] == open(os.path.join(ROOT, "firmware", "main.py"), "rb").read()
    mods = {d for d in files if d.startswith("lib/optoread/")}
    assert mods == {"lib/optoread/" + deploy.module_path(p)[:-3] + ".mpy"
                    for p in deploy.firmware_modules(ROOT)}
    for d in mods:
        assert ("/" + d).encode() in files[d], d  # its name on the device
        # .mpy v6 for the board's arch: the modules hold bytecode only, which mpy-cross marks as
        # arch 0 (imports on every arch); native code would carry armv6m (4) / xtensawin (10).
        assert files[d][:2] == b"M\x06" and files[d][2] >> 2 in (0, arch), d

    m = json.loads(files[deploy.MANIFEST])
    assert m == deploy.check_image(path, board) == deploy.read_image_manifest(path) == summary["manifest"]
    assert m["board"] == board and m["board_file"] == deploy.BOARDS[board][0]
    assert m["mpy"] == {"version": 6, "arch": deploy.BOARDS[board][1], "source_lines": False}
    assert m["main"] is True and "extra" not in m and m["optoread"] == deploy._version(ROOT)
    assert [e["path"] for e in m["files"]] == [d for d, _ in layout]
    for e in m["files"]:
        assert (e["size"], e["crc32"]) == (len(files[e["path"]]), "%08x" % zlib.crc32(files[e["path"]]))
    assert summary["used_blocks"] * 4096 + summary["free_bytes"] == size
    assert summary["free_bytes"] > 512 * 1024  # room for the readings
    assert summary["flash"] == {"pico": "picotool load -v %s -t bin -o 0x100A0000" % path,
                                "esp32": "esptool.py write_flash 0x200000 %s" % path}[board]
    # Reproducible: the same files give the same image, byte for byte (no time stamps anywhere).
    ordered = [(e["path"], files[e["path"]]) for e in m["files"]]
    ordered.append((deploy.MANIFEST, files[deploy.MANIFEST]))
    again, used = deploy._make_fs(ordered, geom, geom.block_count, board)
    assert again == open(path, "rb").read() and used == summary["used_blocks"]


def test_check_image_refuses_other_images(image, tmp_path):
    from littlefs import LittleFS, UserContext

    pico, _b, _s = image("pico")
    esp32, _b, _s = image("esp32")
    with pytest.raises(deploy.DeployError, match="was built for esp32, not pico$"):
        deploy.check_image(esp32, "pico")
    with pytest.raises(deploy.DeployError, match="was built for pico, not esp32$"):
        deploy.check_image(pico, "esp32")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\xff" * (1408 * 1024))
    with pytest.raises(deploy.DeployError, match="junk.bin is not a LittleFS image of 1408 KB"):
        deploy.check_image(str(junk), "pico")
    with pytest.raises(deploy.DeployError, match="not a LittleFS image"):
        deploy.read_image_manifest(str(junk))

    def relayout(name, block_count, edit=None):
        """The pico image's files in another LittleFS (``edit``: change the file list first)."""
        files = deploy.read_image_files(pico)
        if edit:
            edit(files)
        ctx = UserContext(buffsize=4096 * block_count)
        fs = LittleFS(context=ctx, block_size=4096, block_count=block_count, mount=False)
        fs.format()
        fs.mount()
        for p, data in files.items():
            if "/" in p:
                fs.makedirs(p.rsplit("/", 1)[0], exist_ok=True)
            with fs.open(p, "wb") as f:
                f.write(data)
        fs.unmount()
        out = tmp_path / name
        out.write_bytes(bytes(ctx.buffer))
        return str(out)

    small = relayout("small.img", 200)
    with pytest.raises(deploy.DeployError, match="small.img is not a LittleFS image of 1408 KB: it has 200 "):
        deploy.check_image(small, "pico")
    assert deploy.read_image_manifest(small)["board"] == "pico"  # still an optoread image
    bare = relayout("bare.img", 352, lambda f: f.pop(deploy.MANIFEST))
    with pytest.raises(deploy.DeployError, match="holds no valid /optoread.json: not an optoread image"):
        deploy.check_image(bare, "pico")
    bad = relayout("bad.img", 352, lambda f: f.update({"plans/generic.json": b"{}"}))
    with pytest.raises(deploy.DeployError, match="plans/generic.json does not match its manifest"):
        deploy.check_image(bad, "pico")
    gone = relayout("gone.img", 352, lambda f: f.pop("lib/optoread/crc.mpy"))
    with pytest.raises(deploy.DeployError, match="lib/optoread/crc.mpy is missing"):
        deploy.check_image(gone, "pico")
    more = relayout("more.img", 352, lambda f: f.update({"data/00000001.ses": b"reading"}))
    assert deploy.check_image(more, "pico")["board"] == "pico"  # readings a device stored: fine


def test_image_extra_files_and_no_main(tmp_path):
    script = tmp_path / "t.py"
    script.write_bytes(b"print('@t')\n")
    path = str(tmp_path / "test.img")
    s = deploy.build_image("pico", path, extra_files={"/tests/t.py": str(script), "config.json": b'{"a": 1}',
                                                      "plans/generic.json": b'{"steps": []}'}, main=False)
    files = deploy.read_image_files(path)
    assert "main.py" not in files and files["board.py"]
    assert files["tests/t.py"] == b"print('@t')\n" and files["config.json"] == b'{"a": 1}'
    assert files["plans/generic.json"] == b'{"steps": []}'  # an extra file replaces the firmware's
    m = deploy.check_image(path, "pico")
    assert m["main"] is False and m["extra"] == ["config.json", "plans/generic.json", "tests/t.py"]
    assert s["files"][-1] == deploy.MANIFEST
    for bad in ("../x.py", "a//b", "", "optoread.json"):
        with pytest.raises(deploy.UsageError):
            deploy.build_image("pico", str(tmp_path / "x.img"), extra_files={bad: b""})
    assert not os.path.exists(tmp_path / "x.img")


def test_full_filesystem_is_refused_and_nothing_left(tmp_path):
    path = tmp_path / "small.img"
    with pytest.raises(deploy.DeployError) as e:
        deploy.build_image("pico", str(path), block_count=40)
    msg = str(e.value)
    m = re.match(r"the files do not fit: they need (\d+) KB \((\d+) blocks of 4096 bytes\), the pico file "
                 r"system holds 160 KB \(40 blocks\): leave out (\d+) KB$", msg)
    assert m, msg
    assert int(m.group(1)) == 4 * int(m.group(2)) and int(m.group(2)) > 40
    assert int(m.group(3)) == int(m.group(1)) - 160
    assert os.listdir(tmp_path) == []  # no image, no temporary file


def test_existing_files_are_not_overwritten(image, tmp_path):
    precious = tmp_path / "readings.bin"
    precious.write_bytes(b"not an image" * 100)
    with pytest.raises(deploy.DeployError, match="readings.bin exists and is not an optoread image: not "
                       r"overwritten \(--force to replace it\)"):
        deploy.build_image("pico", str(precious))
    assert precious.read_bytes() == b"not an image" * 100
    other = tmp_path / "esp32.img"
    shutil.copy(image("esp32")[0], other)
    with pytest.raises(deploy.DeployError, match="is an optoread image for esp32, not pico"):
        deploy.build_image("pico", str(other))
    with pytest.raises(deploy.UsageError, match="is a folder"):
        deploy.build_image("pico", str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["esp32.img", "readings.bin"]
    for board in ("unix", "nope"):
        with pytest.raises(deploy.UsageError, match="has no flash image: its file system is the host's"
                           if board == "unix" else "unknown board 'nope'"):
            deploy.build_image(board, str(tmp_path / "u.img"))


def test_image_cli(image, tmp_path):
    ref, _b, _s = image("pico")
    out = str(tmp_path / "pico.img")
    r = _image_cli("--board", "pico", "--image", out)
    assert r.returncode == 0, r.stderr
    assert "picotool load -v %s -t bin -o 0x100A0000" % out in r.stdout
    assert deploy.check_image(out, "pico")["board"] == "pico"
    assert set(deploy.read_image_files(out)) == set(deploy.read_image_files(ref))
    # An older image of the same board is replaced (here: through `optoread deploy`, cli.py).
    with open(out, "r+b") as f:
        f.seek(4096 * 100)
        f.write(b"older")
    r = _image_cli("--board", "pico", "--image", out, "--quiet", via="cli")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    with open(out, "rb") as f:
        f.seek(4096 * 100)
        assert f.read(5) != b"older"
    assert deploy.check_image(out, "pico")["board"] == "pico"

    foreign = tmp_path / "notes.txt"
    foreign.write_text("keep me\n")
    huge = tmp_path / "huge.bin"
    huge.write_bytes(os.urandom(1500 * 1024))
    x = str(tmp_path / "x.img")
    bad = [
        (["--board", "pico", "--image", str(foreign)], 1, "not an optoread image: not overwritten"),
        (["--board", "pico", "--image", str(tmp_path / "full.img"), "--add", "big.bin=%s" % huge], 1,
         "the files do not fit: they need"),
        (["--board", "vax", "--image", x], 2, "unknown board 'vax' (choose esp32, pico, unix)"),
        (["--board", "unix", "--image", x], 2, "--board unix has no flash image"),
        (["--board", "pico", "--image", x, "--port", "/dev/null"], 2, "exclude each other"),
        (["--board", "pico"], 2, "give --port DEV (copy to a board) or --image FILE"),
        (["--board", "pico", "--image", x, "--romfs"], 2, "--romfs goes with --port"),
        (["--board", "pico", "--image", x, "--add", "nofile"], 2, "--add wants DEST=FILE"),
        (["--board", "pico", "--port", "/dev/null", "--no-main"], 2, "go with --image"),
        (["--board", "pico", "--port", "/dev/null", "--target", "lib"], 2,
         "--target must be an absolute device path"),
    ]
    for args, status, text in bad:
        r = _image_cli(*(args + ["--quiet"]))
        assert r.returncode == status, (args, r.stderr)
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("optoread deploy: ") and text in lines[0], \
            (args, r.stderr)
    assert foreign.read_text() == "keep me\n"
    assert sorted(os.listdir(tmp_path)) == ["huge.bin", "notes.txt", "pico.img"]


_MP_BDEV = """
import os, sys, vfs, json
class Bdev:  # the image file as a block device (a board's rp2.Flash / esp32.Partition)
    def __init__(self, path, bs=4096):
        self.f = open(path, 'r+b')
        self.bs = bs
        self.n = self.f.seek(0, 2) // bs
    def readblocks(self, n, buf, off=0):
        self.f.seek(n * self.bs + off)
        self.f.readinto(buf)
    def writeblocks(self, n, buf, off=None):
        if off is None:
            self.ioctl(6, n)
        self.f.seek(n * self.bs + (off or 0))
        self.f.write(buf)
    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return self.bs
        if op == 6:
            self.f.seek(arg * self.bs)
            self.f.write(b'\\xff' * self.bs)
        return 0
bdev = Bdev(sys.argv[1])
"""


@pytest.mark.skipif(not os.path.exists(MICROPYTHON), reason="no micropython in .venv")
@pytest.mark.parametrize("board", ["pico", "esp32"])
def test_image_mounts_with_micropython_vfslfs2(image, board, tmp_path):
    # MicroPython's own VfsLfs2 mounts the image as the board's _boot.py does (pico:
    # VfsLfs2(bdev, progsize=256); esp32: vfs.mount(bdev, "/") detecting LittleFS), the package
    # imports from it, and the firmware can write to it (a reading) with that configuration.
    path = str(tmp_path / "flash.img")
    shutil.copy(image(board)[0], path)
    mount = ("vfs.mount(vfs.VfsLfs2(bdev, progsize=256), '/fs')" if board == "pico"
             else "vfs.mount(bdev, '/fs')")
    code = _MP_BDEV + mount + """
print('@root', ' '.join(sorted(os.listdir('/fs'))))
def count(d):
    return sum(count(d + '/' + n) if os.stat(d + '/' + n)[0] & 0x4000 else 1 for n in os.listdir(d))
print('@mods', count('/fs/lib/optoread'))
with open('/fs/optoread.json') as f:
    m = json.load(f)
sys.path.insert(0, '/fs/lib')
sys.path.insert(0, '/fs')
from optoread import crc
import board
print('@import', crc.crc32(b'123456789'), board.PORT, m['board'], crc.__file__)
os.mkdir('/fs/data')
with open('/fs/data/reading.txt', 'w') as f:
    f.write('1.8.0(001234.5*kWh)')
print('@statvfs', os.statvfs('/fs')[0], os.statvfs('/fs')[2])
vfs.umount('/fs')
"""
    script = tmp_path / "mount.py"
    script.write_text(code)
    r = subprocess.run([MICROPYTHON, str(script), path], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    tags = {ln.split()[0]: ln.split()[1:] for ln in r.stdout.splitlines() if ln.startswith("@")}
    assert tags["@root"] == ["board.py", "lib", "main.py", "optoread.json", "plans"]
    assert int(tags["@mods"][0]) == len(deploy.firmware_modules(ROOT))
    assert tags["@import"] == ["3421780262", {"pico": "rp2", "esp32": "esp32"}[board], board,
                               "/fs/lib/optoread/crc.mpy"]
    assert tags["@statvfs"] == ["4096", str(deploy.IMAGE_GEOMETRY[board].block_count)]
    # littlefs-python reads what MicroPython wrote; the image still checks (readings are extra files).
    assert deploy.read_image_files(path)["data/reading.txt"] == b"1.8.0(001234.5*kWh)"
    assert deploy.check_image(path, board)["board"] == board


@needs_unix_port
def test_deploy_port_and_image_lay_out_the_same_files(image, repl, tmp_path):
    # deploy --port of the pico firmware into a folder of the unix port (--force: the port is
    # linux, not rp2; the bytecode imports anyway) gives the tree the pico image holds.
    target = str(tmp_path / "dev")
    r = _deploy_cli("--board", "pico", "--port", repl.path, "--target", target, "--build-dir",
                    str(tmp_path / "build"), "--force", "--no-reset")
    assert r.returncode == 0, r.stderr + r.stdout
    files = deploy.read_image_files(image("pico")[0])
    assert _tree(target) == set(files)
    for p in files:
        if not p.endswith(".mpy") and p != deploy.MANIFEST:
            with open(os.path.join(target, p), "rb") as f:
                assert f.read() == files[p], p
    # The manifests differ only in the modules' bytes (their names on the device: DIR/lib/... here).
    with open(os.path.join(target, deploy.MANIFEST)) as f:
        port_m = json.load(f)
    image_m = json.loads(files[deploy.MANIFEST])
    assert [e["path"] for e in port_m["files"]] == [e["path"] for e in image_m["files"]]
    strip = lambda m: {k: v for k, v in m.items() if k != "files"}  # noqa: E731
    assert strip(port_m) == strip(image_m)
    assert [e for e in port_m["files"] if not e["path"].endswith(".mpy")] == \
        [e for e in image_m["files"] if not e["path"].endswith(".mpy")]


# -- leaving the optoread console (issue 17: ^C no longer stops the firmware) ----------------


def _console_on_pty(tmp_path):
    """firmware/main.py (the unix port) behind a bridged pty, as a board running optoread."""
    env = dict(os.environ, OPTOREAD_BOARD="unix", OPTOREAD_PROBE="tcp:127.0.0.1:9",
               OPTOREAD_STORE=str(tmp_path / "flash.img"))
    br = PtyBridge([MICROPYTHON, "-X", "heapsize=1m", os.path.join(ROOT, "firmware", "main.py")], env=env)
    br.start()
    time.sleep(1.0)
    return br


def _say(port, line):
    import serial

    with serial.serial_for_url(port, baudrate=115200, timeout=0.2) as s:
        s.write(line.encode() + b"\r\n")
        out = b""
        end = time.monotonic() + 10
        while time.monotonic() < end and not out.endswith(b"> "):
            out += s.read(256)
        return out.decode()


def test_leave_console_needs_the_pin_then_ends_the_firmware(tmp_path):
    br = _console_on_pty(tmp_path)
    try:
        assert "PIN set" in _say(br.path, "pin set 2468")
        with pytest.raises(deploy.DeployError, match="needs the device PIN"):
            deploy.leave_console(br.path, None)
        with pytest.raises(deploy.DeployError, match="refused the PIN"):
            deploy.leave_console(br.path, "1111")
        assert deploy.leave_console(br.path, lambda: "2468") is True
        end = time.monotonic() + 10
        while br.proc.poll() is None and time.monotonic() < end:
            time.sleep(0.1)
        assert br.proc.poll() == 0  # main.py ended (a board's REPL follows)
    finally:
        br.stop()


def test_leave_console_leaves_a_plain_repl_alone(repl):
    assert deploy.leave_console(repl.path, lambda: pytest.fail("no PIN is needed for a REPL")) is False


def test_optoread_pin_sets_then_changes_the_device_pin(tmp_path):
    """``optoread pin --port``: the PINs from the environment (or a prompt), never argv."""
    br = _console_on_pty(tmp_path)
    try:
        def pin(*args, **env):
            return subprocess.run([sys.executable, "-m", "optoread_tools.cli", "pin", "--port", br.path]
                                  + list(args), capture_output=True, text=True, timeout=60,
                                  env=dict(os.environ, **env), stdin=subprocess.DEVNULL)

        r = pin(OPTOREAD_NEW_PIN="12")
        assert r.returncode == 2 and "4 to 12 digits" in r.stderr
        r = pin(OPTOREAD_NEW_PIN="2468")
        assert (r.returncode, r.stdout) == (0, "device PIN set\n"), r.stderr
        r = pin(OPTOREAD_NEW_PIN="1357")  # a PIN exists: changing it needs the current one
        assert r.returncode == 1 and "needs the device PIN" in r.stderr
        r = pin("--change", OPTOREAD_NEW_PIN="1357", OPTOREAD_PIN="0000")
        assert r.returncode == 1 and "refused the current PIN" in r.stderr
        r = pin("--change", OPTOREAD_NEW_PIN="1357", OPTOREAD_PIN="2468")
        assert (r.returncode, r.stdout) == (0, "device PIN changed\n"), r.stderr
        assert "unlocked" in _say(br.path, "unlock 1357") and "locked" in _say(br.path, "lock")
    finally:
        br.stop()
