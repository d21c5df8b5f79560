"""Raspberry Pi Pico (RP2040): plain board data for the optoread firmware.

Pins are GPIO numbers (GPn), physical pin numbers are in docs/hardware.md.
Pico W / Pico 2 W: the LED is on the wireless chip, set ``LED = "LED"``.
"""

NAME = "Raspberry Pi Pico (RP2040)"
PORT = "rp2"  # sys.platform on the board

# Optical probe: UART0 on GP0 (TX, pin 1) / GP1 (RX, pin 2); the REPL is on USB CDC.
PROBE_UART = 0
PROBE_TX = 0
PROBE_RX = 1
PROBE_INVERT_TX = False  # True when an NPN transistor drives the IR LED (LED lit on TX high)
PROBE_INVERT_RX = False  # True for a receiver whose output is high while light falls on it
PROBE_MAX_BAUD = 19200  # highest rate the reader agrees to on this probe
PROBE_MAX_INFO = 1024  # largest HDLC information field proposed in SNRM
PROBE_RXBUF = None  # None: probe.rx_buffer_size(PROBE_MAX_BAUD, PROBE_MAX_INFO)
PROBE_DISCARD_ECHO = False  # the driver's EchoFilter removes the echo by content
PROBE_RECREATE_ON_FRAMING = True  # micropython #12410: re-create the UART on a parity change

# User interface.
LED = 25  # on-board LED (GP25)
LED_ACTIVE_LOW = False
BUTTON = 15  # GP15 (pin 20) to GND
BUTTON_PULL = "up"  # internal pull-up, pressed = 0
BUZZER = 16  # GP16 (pin 21): passive piezo driven by PWM, or an active buzzer via transistor
I2C_ID = 0
I2C = (4, 5)  # (SDA GP4 pin 6, SCL GP5 pin 7) for an SSD1306 128x64; None when absent
SSD1306_ADDR = 0x3C

# Storage: MicroPython's rp2 port mounts its LittleFS flash filesystem at "/".
FLASH_MOUNT = "/"
STORE_DIR = "/data"
