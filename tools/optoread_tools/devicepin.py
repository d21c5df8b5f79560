"""``optoread pin --port DEV``: choose or change the device PIN over the console (CPython).

The PIN guards what a stranger with a USB cable must not do (erase, credentials, the clock,
maintenance: ``optoread.device.console``). A device has none until the laptop sets one, at first
boot. The PINs come from the environment (``OPTOREAD_NEW_PIN``, and ``OPTOREAD_PIN`` for the
current one) or a prompt, never from the command line. Also the console helpers ``deploy`` uses.
"""

import os
import sys
import time

PIN_ENV = "OPTOREAD_PIN"  # the device's current PIN
NEW_PIN_ENV = "OPTOREAD_NEW_PIN"


class PinError(Exception):
    """The console refused, or is not there."""


def open_console(port):
    """The device's USB serial port (pyserial; a pty path works too)."""
    import serial

    try:
        return serial.serial_for_url(port, baudrate=115200, timeout=0.1)
    except (serial.SerialException, OSError, ValueError) as e:
        raise PinError("cannot open %s: %s" % (port, e))


def say(ser, line, want, wait=5.0):
    """Send ``line`` (bytes, with its line end); return what came back until one of ``want``
    (bytes) appeared or ``wait`` seconds passed."""
    ser.reset_input_buffer()
    ser.write(line)
    got = b""
    end = time.monotonic() + wait
    while time.monotonic() < end:
        got += ser.read(256)
        if any(w in got for w in want):
            break
    return got


def is_console(ser):
    """True when the optoread console answers an empty line with its prompt (not the REPL's)."""
    got = say(ser, b"\r\n", (b">>> ", b"> "), 1.5)
    return b">>>" not in got and got.rstrip().endswith(b">")


def _text(got):
    return got.decode("utf-8", "replace").replace("\r", "").strip().split("\n")[0][:120]


def set_pin(port, new, old=None):
    """Set the device PIN to ``new``; ``old``: the current one, when the device has a PIN."""
    ser = open_console(port)
    try:
        if not is_console(ser):
            raise PinError("%s: no optoread console answers (is the firmware running?)" % port)
        if old:
            got = say(ser, b"unlock " + old.encode() + b"\r\n", (b"unlocked", b"error"))
            if b"unlocked" not in got:
                raise PinError("the device refused the current PIN: %s" % _text(got))
        got = say(ser, b"pin set " + new.encode() + b"\r\n", (b"PIN set", b"error"))
        if b"PIN set" not in got:
            raise PinError(_text(got))
        say(ser, b"lock\r\n", (b"locked",), 2.0)
    finally:
        ser.close()


def _ask(env, prompt, confirm=False):
    value = os.environ.get(env)
    if value is None and sys.stdin.isatty():
        import getpass

        value = getpass.getpass(prompt)
        if confirm and value != getpass.getpass("again: "):
            raise PinError("the two entries differ")
    return value


def cmd_pin(args):
    """``optoread pin``: 0 when the PIN is set, 1 when the device refused, 2 for bad input."""
    try:
        new = _ask(NEW_PIN_ENV, "new device PIN (4-12 digits): ", confirm=True)
        if not new or not new.isdigit() or not 4 <= len(new) <= 12 or not new.isascii():
            sys.stderr.write("optoread pin: the new PIN is 4 to 12 digits (from %s or the prompt)\n"
                             % NEW_PIN_ENV)
            return 2
        old = _ask(PIN_ENV, "current device PIN (empty at first boot): ") if args.change else None
        set_pin(args.port, new, old)
    except PinError as e:
        sys.stderr.write("optoread pin: %s\n" % e)
        return 1
    sys.stdout.write("device PIN %s\n" % ("changed" if args.change else "set"))
    return 0


def add_pin_parser(sub):
    sp = sub.add_parser("pin", help="choose the device PIN at first boot, or change it (--change); the PINs "
                        "come from %s / %s or a prompt" % (NEW_PIN_ENV, PIN_ENV))
    sp.add_argument("--port", required=True, help="the device's serial port")
    sp.add_argument("--change", action="store_true", help="the device has a PIN: unlock with it first")
    sp.set_defaults(func=cmd_pin)
    return sp
