"""``show N`` at the console: one stored session for a person, loaded for the command only.

The session's head, its values with scaler and unit, events, each profile's first rows (the
rest counted) and the outcome, as the store reads them back. Off the heap while a reading runs.
"""

from optoread.compat import const

_ROWS = const(3)  # profile rows printed (the rest are counted)


def show(store, seq, write, iso):
    """Write session ``seq`` of ``store`` line by line with ``write``; ``iso`` formats a time."""
    st = [0]  # rows of the current profile

    def rows_done():
        if st[0] > _ROWS:
            write("    ... %d rows" % st[0])
        st[0] = 0

    def sink(kind, d):
        if kind == "head":
            write("session %d  meter %s  plan %s  device time %s  meter time %s" % (
                seq, d[0], d[1], iso(d[2]), iso(d[3])))
        elif kind == "value":
            scaler = d[2]
            unit = d[3]
            write("  %-22s %s%s%s" % (d[0], d[1], " e%d" % scaler if scaler else "",
                                      " " + str(unit) if unit is not None else ""))
        elif kind == "event":
            write("  event %s code %s %s" % (iso(d[0]), d[1], d[2] or ""))
        elif kind == "profile":
            rows_done()
            write("  profile %s period %s s, columns %s" % (d[0], d[1], " ".join(str(c[0]) for c in d[3])))
        elif kind == "row":
            st[0] += 1
            if st[0] <= _ROWS:
                write("    %s %s" % (iso(d[0]), " ".join(str(c) for c in d[1])))
        elif kind == "commit":
            rows_done()
            write("  %s%s" % (d[0], " (%s)" % d[1] if d[1] else ""))

    store.read(seq, sink)
