"""The device PIN's checks for the console (``unlock PIN``, ``pin set NEW``): loaded on first use.

The PIN is kept as ``"<salt hex>:<hex>"``, 500 rounds of SHA-256 over salt and PIN, in
``config.json`` (key ``pin``): a copy of the flash does not give it away at a glance, and
each guess costs a few tens of milliseconds on an RP2040. Three wrong PINs in a row shut
``unlock`` for a minute. Loaded by the console for these two commands and dropped again: the
hashing is never on the heap while a reading runs (RAM).
"""

from optoread.compat import const
from optoread.errors import ConsoleError

_PIN_KEY = "pin"  # as console.PIN_KEY (the console loads this module: no import back)
_UNLOCK_S = const(300)  # as in console
_ROUNDS = const(500)
_TRIES = const(3)  # wrong PINs in a row before unlock shuts for _PAUSE_S
_PAUSE_S = const(60)


def pin_hash(pin, salt):
    """The stored form of ``pin`` with ``salt`` (bytes)."""
    import hashlib
    from binascii import hexlify

    h = salt + pin.encode()
    for _ in range(_ROUNDS):
        h = hashlib.sha256(h).digest()
    return hexlify(salt).decode() + ":" + hexlify(h).decode()


def pin_ok(stored, pin):
    """True when ``pin`` hashes to ``stored`` with its salt."""
    from binascii import unhexlify

    try:
        salt = unhexlify(stored.split(":")[0])
    except (ValueError, AttributeError):
        return False
    return pin_hash(pin, salt) == stored


def unlock(console, args):
    """``unlock PIN``: open the commands that need the PIN until lock, @hello or 5 idle minutes."""
    if len(args) != 1:
        raise ConsoleError("usage: unlock PIN", field="args")
    stored = console.config.get(_PIN_KEY)
    if not stored:
        raise ConsoleError("no device PIN is set yet: choose one with 'pin set NEW'", field="pin")
    now = console.clock.now()
    if console.wrong_pins >= _TRIES and 0 <= now - console.wrong_at < _PAUSE_S:
        raise ConsoleError("too many wrong PINs: try again in a minute", field="pin")
    if not pin_ok(stored, args[0]):
        console.wrong_pins += 1
        console.wrong_at = now
        raise ConsoleError("wrong PIN", field="pin")
    console.wrong_pins = 0
    console.unlocked_at = now
    console.say("unlocked until 'lock', @hello or %d minutes without a command" % (_UNLOCK_S // 60))


def set_pin(console, args):
    """``pin set NEW``: the first PIN, or a new one (then the console must be unlocked)."""
    if len(args) != 2 or args[0] != "set":
        raise ConsoleError("usage: pin set NEW (4 to 12 digits)", field="args")
    new = args[1]
    if not 4 <= len(new) <= 12 or not all("0" <= c <= "9" for c in new):
        raise ConsoleError("the PIN is 4 to 12 digits", field="pin")
    if console.config.get(_PIN_KEY):
        console.need_pin("changing the PIN")
    try:
        import os

        salt = os.urandom(8)
    except (ImportError, AttributeError, NotImplementedError):  # a port without urandom
        import random

        salt = bytes(random.getrandbits(8) for _ in range(8))
    console.config.set(_PIN_KEY, pin_hash(new, salt))
    console.unlocked_at = None
    console.say("PIN set; 'unlock PIN' before erase, clock set, secrets or maintenance")


def set_clock(console, args):
    """``@clock EPOCH``: the laptop (``optoread download`` with the PIN) sets the device clock;
    the answer says where its time came from before."""
    if len(args) != 1 or not args[0].isdigit():
        raise ConsoleError("usage: @clock EPOCH", field="args")
    console.need_pin("@clock")
    clock = console.clock
    was = clock.source
    clock.set(int(args[0]), "laptop")
    console.say("@ok clock %d was=%s" % (clock.now(), was or "unknown"))
