"""Run a program on a pseudo-terminal and expose a second pty bridged to it (CPython, Linux/POSIX).

The MicroPython unix port (its REPL, or ``firmware/main.py`` with the console) uses its
stdin/stdout as the "USB serial" of a board. Tools that open a serial *path* (pyserial,
``mpremote connect PATH resume``, ``optoread download --port PATH``) need a device node,
so the bridge:

* starts the program with stdin/stdout/stderr on pty A (raw mode: no echo, no CR/LF
  translation, Ctrl-C arrives as a byte as on a board's USB CDC);
* creates pty B and publishes its slave path (:attr:`PtyBridge.path`);
* copies bytes both ways between the two masters in a thread.

Like a board's USB CDC with no host attached, output written while nobody has the B side
open is dropped (a pty would otherwise hand stale output to the next opener); a client can
close and reopen the path any number of times (an "unplug"). ``transcript`` keeps the
last bytes in each direction for failure messages.

    with PtyBridge(["micropython"]) as br:
        subprocess.run(["mpremote", "connect", br.path, "resume", "exec", "print(1)"])

``python -m optoread_tools.ptybridge -- CMD ...`` prints the path and runs until CMD exits.
"""

import errno
import os
import select
import subprocess
import sys
import threading
import time
import tty

_KEEP = 16384  # transcript bytes kept per direction


class PtyBridge:
    """``argv`` runs on pty A; :attr:`path` is pty B's slave, bridged to it.

    ``drop_when_closed``: discard the program's output while no client has B open (as a
    board's CDC does); False queues it for the next client instead.
    """

    def __init__(self, argv, env=None, cwd=None, drop_when_closed=True, poll_ms=20):
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.drop_when_closed = drop_when_closed
        self.poll_ms = poll_ms
        self.path = None
        self.proc = None
        self.to_program = bytearray()
        self.from_program = bytearray()
        self.stats = {"to_program": 0, "from_program": 0, "dropped": 0, "reconnects": 0}
        self._ma = self._mb = None
        self._stop = threading.Event()
        self._thread = None

    # -- life cycle -----------------------------------------------------------------------
    def start(self):
        """Start the program and the bridge thread; return the client path (pty B's slave)."""
        ma, sa = os.openpty()
        tty.setraw(sa)
        mb, sb = os.openpty()
        tty.setraw(sb)
        self.path = os.ttyname(sb)
        # Keep no B slave fd: a client closing the path must show as a hang-up on master B.
        os.close(sb)
        try:
            self.proc = subprocess.Popen(self.argv, stdin=sa, stdout=sa, stderr=sa, env=self.env,
                                         cwd=self.cwd, close_fds=True, start_new_session=True)
        except OSError:
            for fd in (ma, sa, mb):
                os.close(fd)
            raise
        os.close(sa)
        self._ma, self._mb = ma, mb
        for fd in (ma, mb):
            os.set_blocking(fd, False)
        self._thread = threading.Thread(target=self._run, name="ptybridge", daemon=True)
        self._thread.start()
        return self.path

    def stop(self, timeout=5.0):
        """Stop the program (SIGTERM, then SIGKILL) and the bridge; return its exit status."""
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout)
            rc = self.proc.returncode
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for fd in (self._ma, self._mb):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._ma = self._mb = None
        return rc

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def alive(self):
        """True while the program runs."""
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout=None):
        """Wait for the program to exit; return its status."""
        return self.proc.wait(timeout)

    # -- the copying thread ---------------------------------------------------------------
    def _client_connected(self):
        p = select.poll()
        p.register(self._mb, select.POLLIN)
        for _fd, ev in p.poll(0):
            if ev & select.POLLHUP:
                return False
        return True

    @staticmethod
    def _keep(buf, data):
        buf += data
        if len(buf) > _KEEP:
            del buf[:len(buf) - _KEEP]

    def _write_all(self, fd, data):
        """Write everything (the fds are non-blocking); False when the other side is gone."""
        view = memoryview(data)
        deadline = time.monotonic() + 5.0
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                n = 0
            except OSError as e:
                if e.errno in (errno.EIO, errno.EBADF):
                    return False
                raise
            view = view[n:]
            if view:
                if time.monotonic() > deadline or self._stop.is_set():
                    return False
                select.select([], [fd], [], 0.05)
        return True

    def _run(self):
        connected = False
        while not self._stop.is_set():
            now = self._client_connected()
            if now and not connected:
                self.stats["reconnects"] += 1
            connected = now
            fds = [self._ma] + ([self._mb] if connected else [])
            try:
                r, _, _ = select.select(fds, [], [], self.poll_ms / 1000.0)
            except (OSError, ValueError):
                return
            if self._ma in r:
                try:
                    data = os.read(self._ma, 4096)
                except BlockingIOError:
                    data = None
                except OSError as e:
                    if e.errno != errno.EIO:
                        return
                    # The program closed its terminal (it exited): nothing more will come.
                    if not self.alive():
                        self._stop.wait(self.poll_ms / 1000.0)
                        continue
                    data = None
                if data:
                    self.stats["from_program"] += len(data)
                    self._keep(self.from_program, data)
                    if connected or not self.drop_when_closed:
                        if not self._write_all(self._mb, data):
                            self.stats["dropped"] += len(data)
                    else:
                        self.stats["dropped"] += len(data)
            if connected and self._mb in r:
                try:
                    data = os.read(self._mb, 4096)
                except BlockingIOError:
                    data = None
                except OSError as e:
                    if e.errno != errno.EIO:
                        return
                    data = None  # the client closed the path: an unplug
                if data:
                    self.stats["to_program"] += len(data)
                    self._keep(self.to_program, data)
                    self._write_all(self._ma, data)


def main(argv=None):
    """``python -m optoread_tools.ptybridge [--] CMD ARGS...``: print the path, run until CMD exits."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        sys.stderr.write("usage: python -m optoread_tools.ptybridge -- CMD [ARGS...]\n")
        return 2
    import signal

    # SIGTERM ends the program too (finally: below), not only the bridge.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    br = PtyBridge(argv)
    print(br.start(), flush=True)
    try:
        return br.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        br.stop()


if __name__ == "__main__":
    sys.exit(main())
