"""The emulated Pico: the stock MicroPython rp2 firmware on an emulated RP2040 (CPython, laptop side).

``../shared/emu/`` (beside the project root, or ``$OPTOREAD_EMU``) holds the unchanged upstream
MicroPython ``RPI_PICO`` firmware, the RP2040 bootrom and ``run-mpy.mjs``, a runner for the npm
package rp2040js (read its header comment and ``../shared/emu/README.md``). :func:`prepare` lays
the runner out in ``build/emu/`` (a copy of the script, links to the firmware, ``npm install``)
because node resolves ``rp2040js`` beside the script and ``../shared`` is read-only.

Two ways to use the board:

* :class:`Pico` boots it with a flash filesystem image (``optoread deploy --image``, so what is
  tested is what is shipped), puts its USB CDC behind a pty (:class:`~.ptybridge.PtyBridge`)
  and drives the firmware's console line by line; UART0 (the probe) listens on a loopback TCP
  port where a simulated meter connects (:mod:`optoread_tools.tcpline`). ``optoread download
  --port`` opens the same pty path while the console is released.
* :func:`run_scripts` boots an image and runs Python files over the raw REPL (an image
  without ``main.py``, whose console would hold the USB port), returning their output.

Everything here skips cleanly: :func:`unavailable` says why the board cannot run (no
``../shared/emu``, no node, npm failed) and tests turn that into a skip.
"""

import os
import select
import shutil
import socket
import subprocess
import sys
import time
import tty

from .ptybridge import PtyBridge

EMU_ENV = "OPTOREAD_EMU"
_SOURCE_FILES = ("run-mpy.mjs", "package.json")
_LINKED = ("firmware.uf2", "firmware-romfs.uf2", "bootrom_b1.bin")
BUTTON_PIN = 15  # boards/pico.py BUTTON: rp2040js has no pull-ups, the input would read pressed
PROMPT = b"\r\n> "


class EmuError(Exception):
    """The emulated board could not be set up or did not answer; the message says which step."""


def repo_root():
    """The checkout this module lives in (tools/optoread_tools/ -> the root)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def emu_source(root=None):
    """The folder with the emulator material (``$OPTOREAD_EMU`` or ``../shared/emu``), or None."""
    d = os.environ.get(EMU_ENV) or os.path.join(root or repo_root(), "..", "shared", "emu")
    d = os.path.abspath(d)
    need = _SOURCE_FILES + ("firmware.uf2", "bootrom_b1.bin")
    return d if all(os.path.exists(os.path.join(d, f)) for f in need) else None


def micropython32(root=None):
    """The 32-bit MicroPython unix port beside the emulator (``../shared/emu/micropython32``), or None."""
    d = os.environ.get(EMU_ENV) or os.path.join(root or repo_root(), "..", "shared", "emu")
    p = os.path.abspath(os.path.join(d, "micropython32"))
    return p if os.access(p, os.X_OK) else None


def unavailable(root=None):
    """Why the emulated board cannot run here (a sentence), or None when it can."""
    if emu_source(root) is None:
        return "../shared/emu (the RP2040 emulator material) is absent"
    if shutil.which("node") is None:
        return "node is not installed (the RP2040 emulator runs on node)"
    try:
        prepare(root)
    except EmuError as e:
        return str(e)
    return None


def build_dir(root=None):
    return os.path.join(root or repo_root(), "build", "emu")


def prepare(root=None, log=None):
    """Lay out ``build/emu`` (runner copy, firmware links, ``npm install``); return the runner path.

    Idempotent and cheap once done. EmuError when the material is missing or npm fails.
    """
    src = emu_source(root)
    if src is None:
        raise EmuError("../shared/emu (the RP2040 emulator material) is absent")
    out = build_dir(root)
    os.makedirs(out, exist_ok=True)
    for name in _SOURCE_FILES:
        s, d = os.path.join(src, name), os.path.join(out, name)
        with open(s, "rb") as f:
            data = f.read()
        old = None
        if os.path.exists(d):
            with open(d, "rb") as f:
                old = f.read()
        if old != data:
            with open(d, "wb") as f:
                f.write(data)
    for name in _LINKED:
        s, d = os.path.join(src, name), os.path.join(out, name)
        if os.path.exists(s) and os.path.realpath(d) != os.path.realpath(s):
            if os.path.lexists(d):
                os.remove(d)
            os.symlink(s, d)
    if not os.path.exists(os.path.join(out, "node_modules", "rp2040js", "package.json")):
        npm = shutil.which("npm")
        if npm is None:
            raise EmuError("npm is not installed (needed once to install rp2040js)")
        if log:
            log("npm install (rp2040js) in %s" % out)
        r = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=out,
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise EmuError("npm install of rp2040js failed: %s" % (r.stderr or r.stdout).strip()[-300:])
    return os.path.join(out, "run-mpy.mjs")


def free_port():
    """A free loopback TCP port (for the emulator's UART0 bridge)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _firmware(root, romfs):
    return os.path.join(build_dir(root), "firmware-romfs.uf2" if romfs else "firmware.uf2")


def check_image(image):
    """Refuse an image that is not an optoread image for the Pico (EmuError, the reason in one line):
    the emulated flash holds the stock RPI_PICO layout, as a real Pico would."""
    from . import deploy

    try:
        return deploy.check_image(image, "pico")
    except deploy.DeployError as e:
        raise EmuError(str(e)) from e


def run_scripts(image, scripts, timeout=600, romfs=None, execs=(), root=None, log_file=None):
    """Boot ``image`` and run each file of ``scripts`` (then each string of ``execs``) over the raw
    REPL; return ``(status, stdout, stderr)``: status 0 if none raised, 1 if one did, 2 on a
    time-out (the runner's own codes). The image must not start a console in ``main.py``."""
    check_image(image)
    runner = prepare(root)
    cmd = ["node", runner, "--uf2", _firmware(root, romfs), "--fs", image, "--pin-high", str(BUTTON_PIN),
           "--timeout", str(int(timeout))]
    if romfs:
        cmd += ["--romfs", romfs]
    for s in scripts:
        cmd += ["--run", s]
    for e in execs:
        cmd += ["--exec", e]
    if log_file:
        cmd += ["--log", log_file]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60)
    except subprocess.TimeoutExpired as e:
        raise EmuError("the emulator did not stop within %d s" % (timeout + 60)) from e
    return r.returncode, r.stdout, r.stderr


class Pico:
    """The emulated Pico booted from a filesystem image, its console on a pty.

    ``uart_port``: UART0 listens on 127.0.0.1:PORT (default: a free port, :attr:`uart_port`); a
    simulated meter connects there, and a new connection replaces the last one (a new meter at
    the probe). ``log_file`` keeps the runner's own log (boot, UART, simulated time).
    """

    def __init__(self, image, uart_port=None, romfs=None, log_file=None, root=None, boot_timeout=120):
        self.image = image
        self.uart_port = uart_port or free_port()
        self.romfs = romfs
        self.log_file = log_file
        self.root = root
        self.boot_timeout = boot_timeout
        self.bridge = None
        self.path = None
        self.fd = None
        self.buf = b""
        self.banner = None
        self.transcript = bytearray()

    # -- life cycle -----------------------------------------------------------------------
    def start(self):
        """Boot; wait for the console's banner and prompt; return the banner text."""
        check_image(self.image)
        runner = prepare(self.root)
        cmd = ["node", runner, "--uf2", _firmware(self.root, self.romfs), "--fs", self.image,
               "--pin-high", str(BUTTON_PIN), "--stdio", "--uart0-tcp", str(self.uart_port)]
        if self.romfs:
            cmd += ["--romfs", self.romfs]
        if self.log_file:
            cmd += ["--log", self.log_file]
        self.bridge = PtyBridge(cmd)
        self.path = self.bridge.start()
        self.attach()
        self.banner = self.until(b"> ", self.boot_timeout).decode("utf-8", "replace")
        return self.banner

    def stop(self):
        """Close the console and stop the emulator."""
        self.release()
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def alive(self):
        return self.bridge is not None and self.bridge.alive()

    # -- the console ----------------------------------------------------------------------
    def attach(self):
        """Open the console (the pty path), as a terminal on the USB port would."""
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY)
            tty.setraw(self.fd)
            self.buf = b""

    def release(self):
        """Close the console so that another program (``optoread download``) can open the port."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def until(self, marker, timeout=60.0):
        """Read until ``marker``; return everything up to and including it. EmuError on a time-out."""
        end = time.monotonic() + timeout
        while marker not in self.buf:
            left = end - time.monotonic()
            if left <= 0 or not self.alive():
                raise EmuError("no %r from the emulated Pico within %.0f s (%s); last output: %r"
                               % (marker, timeout, "running" if self.alive() else "emulator exited",
                                  self.buf[-600:]))
            r, _, _ = select.select([self.fd], [], [], min(left, 0.5))
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    data = b""
                self.buf += data
                self.transcript += data
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def cmd(self, line, timeout=60.0, progress=None):
        """Type ``line`` at the console; return the answer's lines (up to the next prompt)."""
        os.write(self.fd, line.encode() + b"\r")
        self.transcript += b"<typed " + line.encode() + b">"
        text = self.until(PROMPT, timeout).decode("utf-8", "replace")[:-len(PROMPT)]
        return [x for x in text.replace("\r\n", "\n").split("\n") if x and x != "> "]

    def tail(self, n=2000):
        """The last ``n`` characters the console showed (for failure messages)."""
        return bytes(self.transcript[-n:]).decode("utf-8", "replace")


def download(port, out_db, device="pico-emu", extra=(), timeout=900, env_extra=None):
    """``optoread download --port PORT --out DB`` in a child process; return (status, stdout+stderr).
    ``device`` None: the device's own id (from @hello); ``env_extra``: e.g. the device PIN."""
    cmd = [sys.executable, "-m", "optoread_tools.cli", "download", "--port", port, "--out", out_db]
    cmd += (["--device", device] if device else []) + list(extra)
    env = dict(os.environ)
    env.update(env_extra or {})
    root = repo_root()
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(root, "tools"), os.path.join(root, "firmware")]
                                        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    return r.returncode, r.stdout + r.stderr
