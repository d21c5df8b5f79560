"""The MicroPython unix port as a "board": the probe is a pty or TCP to the simulator.

Plain data, read from the environment so tests and the simulator can point it elsewhere:

* ``OPTOREAD_PROBE``: ``pty:/dev/pts/N`` (the simulator's pty runner), ``tty:/dev/ttyUSB0``
  (a USB IR head), or ``tcp:HOST:PORT`` (the simulator or an HDLC-over-TCP gateway).
* ``OPTOREAD_STORE``: the file holding the reading store's LittleFS image.

``optoread.probe.open_probe(board)`` turns ``PROBE`` into a ``unixport`` transport.
"""

import os

NAME = "MicroPython unix port"
PORT = "linux"

PROBE = os.getenv("OPTOREAD_PROBE") or "tcp:127.0.0.1:4059"
PROBE_MAX_BAUD = 19200
PROBE_MAX_INFO = 1024

# No LED, button, buzzer or display: the console is the terminal.
LED = None
LED_ACTIVE_LOW = False
BUTTON = None
BUTTON_PULL = None
BUZZER = None
I2C_ID = 0
I2C = None
SSD1306_ADDR = 0x3C

# The store's LittleFS image (a file-backed block device) is mounted here.
FLASH_MOUNT = "/flash"
STORE_IMAGE = os.getenv("OPTOREAD_STORE") or "optoread-store.img"
STORE_DIR = "/flash/data"
