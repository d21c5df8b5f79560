"""English names for OBIS codes (``obis.name``), kept out of :mod:`optoread.obis` so a reading
that never asks for a name does not load these tables."""

# ---- names ---------------------------------------------------------------
# Electricity quantities by C (A = 1): C = 1..20 for the sum of phases,
# +20 / +40 / +60 for L1 / L2 / L3. "%s" takes "power" or "energy".
_QTY = (
    "active %s import", "active %s export", "reactive %s import", "reactive %s export",
    "reactive %s QI", "reactive %s QII", "reactive %s QIII", "reactive %s QIV",
    "apparent %s import", "apparent %s export", "current", "voltage", "power factor", "frequency",
    "active %s absolute", "active %s net", "active %s QI", "active %s QII", "active %s QIII",
    "active %s QIV",
)
_PHASE = ("", " L1", " L2", " L3")
_QTY_MORE = ((81, "phase angle"), (90, "current sum"), (91, "current neutral"), (92, "voltage neutral"))
# Processing by D (IEC 62056-61): D = 0..6, then D = 31..42 limit monitoring.
_D_PRE = ("billing period average", "cumulative minimum", "cumulative maximum", "minimum",
          "current average", "last average", "maximum")
_D_LIMIT = ("under limit", "over limit", "missing")
_D_LIMIT_WHAT = ("threshold", "count", "duration", "magnitude")


def _k(c, d, e):
    return (c << 16) | (d << 8) | e


# (C << 16 | D << 8 | E, name) pairs: constant tuples, which stay in flash when frozen.
# C = 0: electricity general purpose (A = 1); C = 1..93: abstract (A = 0); C >= 94: any A.
_NAMES = (
    (0x000100, "billing period counter"),
    (0x000101, "number of billing periods"),
    (0x000102, "billing period reset time"),
    (0x000200, "firmware version"),
    (0x000201, "parameter version"),
    (0x000202, "tariff program version"),
    (0x000208, "version information"),
    (0x000300, "active energy meter constant"),
    (0x000301, "reactive energy meter constant"),
    (0x000302, "apparent energy meter constant"),
    (0x000800, "demand period"),
    (0x000804, "load profile period"),
    (0x000901, "local time"),
    (0x000902, "local date"),
    (0x010000, "clock"),
    (0x110000, "limiter"),
    (0x140000, "optical port setup"),
    (0x160000, "HDLC setup"),
    (0x180100, "M-Bus device type"),
    (0x180201, "M-Bus meter reading"),
    (0x180400, "M-Bus valve state"),
    (0x290000, "SAP assignment"),
    (0x2A0000, "logical device name"),
    (0x2B0000, "security setup"),
    (0x2B0100, "invocation counter"),
    (0x5E5B00, "instantaneous profile"),
    (0x5E5B03, "instantaneous scaler profile"),
    (0x5E5B04, "block load scaler profile"),
    (0x5E5B05, "daily load scaler profile"),
    (0x5E5B06, "billing scaler profile"),
    (0x5E5B07, "event scaler profile"),
    (0x5E5B0A, "name plate"),
    (0x600100, "meter serial number"),
    (0x60030A, "breaker state"),
    (0x600500, "operating status"),
    (0x600709, "long power failures"),
    (0x600715, "power failures"),
    (0x600D00, "text message"),
    (0x600D01, "text message code"),
    (0x600E00, "tariff indicator"),
    (0x616100, "error register"),
    (0x616200, "alarm register"),
    (0x620100, "billing profile"),
    (0x630100, "load profile"),
    (0x630200, "daily load profile"),
    (0x636100, "power failure log"),
)


def _lookup(table, key):
    for k, s in table:
        if k == key:
            return s
    return None


def _f_suffix(f):
    if f == 255:
        return ""
    if f <= 99:
        return " (billing period %d)" % f
    if 101 <= f <= 125:
        return " (billing period -%d)" % (f - 100)
    return None


def _electricity(c, d, e, f):
    if c <= 80:
        q = _QTY[(c - 1) % 20] + _PHASE[(c - 1) // 20]
    else:
        q = _lookup(_QTY_MORE, c)
        if q is None:
            return None
    power = "%s" in q
    rated = False  # E carries a tariff rate
    if d == 7:
        if e and c != 81:  # E = harmonics etc.; angles use E for the phase pair
            return None
        s = q % "power" if power else q
    elif d == 8 or d == 9 or d == 29:
        if not power:
            return None
        s = q % "energy"
        if d == 9:
            s += " (billing period)"
        elif d == 29:
            s += " (profile interval)"
        rated = True
    elif d <= 6:
        if power:
            q = q % "power"
            if d == 2 or d == 6:
                q = "demand " + q
        s = _D_PRE[d] + " " + q
        rated = d in (1, 2, 3, 6)
    elif 31 <= d <= 42:
        s = (q % "power" if power else q) + " " + _D_LIMIT[(d - 31) // 4] + " " + _D_LIMIT_WHAT[(d - 31) % 4]
    else:
        return None
    if e and c != 81:
        if not rated or e > 63:
            return None
        s += " rate %d" % e
    t = _f_suffix(f)
    return None if t is None else s + t


def name(code, class_id=None):
    """A short English name for common codes, or None.

    Electricity quantities (A = 1, C = 1..92) are built from C, D and E
    ("active energy import rate 1", "voltage L1", "maximum demand active power
    import"), a historical F adds "(billing period N)". Abstract objects need
    F = 255. ``class_id`` only separates association LN (15) from SN (12).
    """
    a = code[0]
    c = code[2]
    d = code[3]
    e = code[4]
    f = code[5]
    if a == 1 and 1 <= c <= 92:
        return _electricity(c, d, e, f)
    if c == 0:
        if a != 1:
            return None
        if d == 0 and e <= 9:
            s = "device ID %d" % (e + 1)
        else:
            s = _lookup(_NAMES, _k(0, d, e))
            if s is None:
                return None
        t = _f_suffix(f)
        return None if t is None else s + t
    if f != 255 or (c < 94 and a != 0):
        return None
    if c == 40 and d == 0:  # association objects, one per client association
        if e:
            return "association %d" % e
        if class_id == 15:
            return "association LN"
        if class_id == 12:
            return "association SN"
        return "current association"
    if c == 96 and d == 1 and 1 <= e <= 9:
        return "device ID %d" % (e + 1)
    if c == 99 and d == 98:
        return "event log %d" % e
    return _lookup(_NAMES, _k(c, d, e))
