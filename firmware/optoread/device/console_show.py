"""``show N`` at the console: one stored session for a person, loaded for the command only.

The session's head, its values scaled with their units (``230.12 V``; a number the meter gave
no scaler and unit for is shown raw with "unit unknown"), events, each profile's first rows
scaled the same way (the rest counted) and the outcome, as the store reads them back. Off the
heap while a reading runs.
"""

from optoread import units
from optoread.compat import const
from optoread.errors import OptoreadError

_ROWS = const(3)  # profile rows printed (the rest are counted)


def quantity(value, scaler, unit):
    """A stored value as a person reads it: scaled, with its unit's symbol."""
    if isinstance(unit, int) and not isinstance(unit, bool):
        unit = units.unit_name(unit) or "unit %d" % unit
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if scaler is None and unit is None:
            return "%s (unit unknown)" % value
        try:
            value = units.scaled_text(value, scaler or 0)
        except OptoreadError:
            pass
    return "%s %s" % (value, unit) if unit else str(value)


def show(store, seq, write, iso):
    """Write session ``seq`` of ``store`` line by line with ``write``; ``iso`` formats a time."""
    st = [0, ()]  # rows of the current profile, its columns

    def rows_done():
        if st[0] > _ROWS:
            write("    ... %d rows" % st[0])
        st[0] = 0

    def sink(kind, d):
        if kind == "head":
            write("session %d  meter %s  plan %s  device time %s  meter time %s" % (
                seq, d[0], d[1], iso(d[2]) if d[2] is not None else "unknown (clock not set)", iso(d[3])))
        elif kind == "value":
            write("  %-22s %s%s" % (d[0], quantity(d[1], d[2], d[3]), "  at " + d[4] if len(d) > 4 else ""))
        elif kind == "event":
            write("  event %s code %s %s" % (iso(d[0]), d[1], d[2] or ""))
        elif kind == "profile":
            rows_done()
            st[1] = d[3]
            write("  profile %s period %s s, columns %s" % (d[0], d[1], " ".join(str(c[0]) for c in d[3])))
        elif kind == "row":
            st[0] += 1
            if st[0] <= _ROWS:
                cols = st[1]
                write("    %s %s" % (iso(d[0]), ", ".join(
                    quantity(c, cols[i][1], cols[i][2]) if i < len(cols) else str(c)
                    for i, c in enumerate(d[1]))))
        elif kind == "commit":
            rows_done()
            write("  %s%s" % (d[0], " (%s)" % d[1] if d[1] else ""))

    store.read(seq, sink)
