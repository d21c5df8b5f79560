"""Espressif ESP32-DevKitC (ESP32-WROOM-32): plain board data for the optoread firmware.

Pins are GPIO numbers. UART0 carries the REPL (and MicroPython refuses it on some
versions), so the probe uses UART2 on its usual pins. The DevKitC has no user LED:
fit one on GPIO2 (many clones already have it there).
"""

NAME = "ESP32-DevKitC"
PORT = "esp32"  # sys.platform on the board

# Optical probe: UART2, TX GPIO17, RX GPIO16.
PROBE_UART = 2
PROBE_TX = 17
PROBE_RX = 16
PROBE_INVERT_TX = False  # True when an NPN transistor drives the IR LED (LED lit on TX high)
PROBE_INVERT_RX = False  # True for a receiver whose output is high while light falls on it
PROBE_MAX_BAUD = 19200
PROBE_MAX_INFO = 1024
PROBE_RXBUF = None  # None: probe.rx_buffer_size(PROBE_MAX_BAUD, PROBE_MAX_INFO)
PROBE_DISCARD_ECHO = False
PROBE_RECREATE_ON_FRAMING = False  # init() with every parameter is enough on esp32

# User interface.
LED = 2  # external LED + 330 R to GND (on-board on many clones)
LED_ACTIVE_LOW = False
BUTTON = 0  # the BOOT button (GPIO0, has an external pull-up; a strapping pin: input only)
BUTTON_PULL = "up"
BUZZER = 25  # GPIO25 via PWM
I2C_ID = 0
I2C = (21, 22)  # (SDA, SCL) for an SSD1306 128x64; None when absent
SSD1306_ADDR = 0x3C

# Storage: MicroPython's esp32 port mounts its flash filesystem at "/".
FLASH_MOUNT = "/"
STORE_DIR = "/data"
