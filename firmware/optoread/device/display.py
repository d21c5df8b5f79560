"""The optional SSD1306 status display (128x64 on I2C): the last meter, the outcome, a few values.

main.py loads this only on a board whose file sets ``I2C`` (and drops it again when no display
answers): a board without one keeps its code off the heap (RAM).
"""


class Display:
    """Lines of text on an ``ssd1306.SSD1306_I2C``; a failing display is ignored."""

    def __init__(self, oled):
        self.oled = oled

    def show(self, lines):
        o = self.oled
        try:
            o.fill(0)
            for i, text in enumerate(lines[:6]):
                o.text(str(text)[:16], 0, i * 10)
            o.show()
        except Exception:  # a display that stopped answering must not stop the device
            pass

    def summary(self, store, outcome, summary, error):
        """After a reading: meter id, outcome, up to three values of the session."""
        lines = ["optoread", {"ok": "OK", "noanswer": "NO ANSWER", "failed": "FAILED"}.get(outcome, outcome)]
        if summary is None:
            lines.append("check probe" if outcome == "noanswer" else (error or "")[:16])
            self.show(lines)
            return
        lines[0] = str(summary.meter)[:16]

        def sink(kind, d):
            if kind == "value" and len(lines) < 5:
                o = str(d[0])
                lines.append("%s %s" % (o[-8:] if len(o) > 8 else o, d[1]))

        try:
            store.read(summary.seq, sink)
        except Exception:  # the summary is a courtesy: never a reason to fail
            pass
        self.show(lines)


def open_display(board, machine):
    """The board's display (``I2C``, ``I2C_ID``, ``SSD1306_ADDR`` in its board file), or None
    when there is no ``ssd1306`` module or nothing answers on the bus."""
    try:
        import ssd1306  # pyright: ignore[reportMissingImports]

        sda, scl = board.I2C
        Pin = machine.Pin
        i2c = machine.I2C(getattr(board, "I2C_ID", 0), sda=Pin(sda), scl=Pin(scl))
        d = Display(ssd1306.SSD1306_I2C(128, 64, i2c, addr=getattr(board, "SSD1306_ADDR", 0x3C)))
    except Exception:  # no module, no display on the bus: run without one
        return None
    d.show(("optoread", "ready"))
    return d
