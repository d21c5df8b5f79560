"""IS 15959 event codes and their names, and decoding of IS 15959 event-log profiles (CPython only).

An IS 15959 meter (Indian DLMS/COSEM companion standard: IS 15959 Part 1:2011 static meters, Part 2:2016
smart meters, Part 3:2017 transformer-operated smart meters, and the CEA / utility specifications derived
from them) keeps seven event logs. Each log is a profile generic ``0.0.99.98.k.255`` whose capture objects
are the clock, the event code object ``0.0.96.11.k.255`` (class 1, long-unsigned) and a snapshot of
instantaneous values (currents, voltages, power factors, energies...). Each category owns a band of codes:
voltage 1..50, current 51..100, power 101..150, transaction 151..200, other 201..250, non-rollover 251..300,
control 301..350.

Public API
----------
* :data:`CATEGORIES` -- ordered; index ``k`` -> ``(name, event code OBIS text, event profile OBIS text)``.
* :data:`EVENTS` -- ``code -> (category name, event name)``, built from the one table below.
* :func:`event_name` -- name of a code, ``"unknown event"`` for a code not in the table.
* :func:`category_of_profile` -- category name of ``0.0.99.98.k.255``, None for any other OBIS.
* :func:`events_from_profile` -- decode an event profile's rows into event dicts.
* :func:`codes_of` -- the codes of category ``k`` in ascending order (the simulated meter cycles them).

Sources
-------
The standard itself is sold by BIS; the codes and names below were gathered from public code that
implements it and cross-checked between sources. Codes and names are facts; the table is written here, no
code was copied. Each entry's comment names the sources that list it:

[A] PankajChandel1997/crystal_power_g_intdm, ``Infrastructure/Enums/EventCodeTypeEnum.cs``
    (commit 9963a6fa4c0999c22e157d7d3693c6e69ea2cccd) -- a meter-reading tool for IS 15959 meters: one
    enum of every code it decodes, with one service per event log in ``Infrastructure/API/EventAPIs/``
    (VoltageRelated, CurrentRelated, PowerRelated, Transaction, Other, NonRollover, Control).
[B] A JSP/JavaScript HT-meter viewer whose ``getEventDesc(eCode)`` names the IS 15959:2011 codes with the
    2011 wording ("PT link Missing (Missing Potential)", "Very Low PF", "Meter Cover Opening", "Meter
    Disconnected/Connected"). Public GitHub file found with the code index's exact-string search (index
    ids 30408007318, 30300323352, 30591408074 -- three copies of the same table); the index does not
    name its repository.
[C] A C# ``DataContext`` seeding ``EventStatusMapping`` (namespace ``PQM.Infrastructure``) and a React
    ``EventStatusCheckboxCard`` -- both group the codes by event code object 0.0.96.11.0..4.255 (voltage,
    current, power, transaction, others). Index ids 58270392617 and 57982390738; repository not named.
[D] A JavaScript HES front end (``eventCode`` map next to ``getBlockLoadCommmandSequence``) listing Part 2
    smart-meter codes (earth loading, load limit, key changes, overload, load switch). Index id
    21759414892; repository not named.
[E] A Java head-end enum ``com.hes.data.enums.MeterEvent`` giving code, event profile OBIS and name.
    Index id 3491121840; repository not named.
Further reference (not read here beyond its overview): the Go package documentation
https://pkg.go.dev/github.com/cB-Sigma/dlms/is15959 says it catalogues the event logs and event codes of
IS 15959 Parts 1..3. The standard's text: https://www.scribd.com/document/657044393/IS-15959-2-2016-recognized
(Part 2) and https://scribd.com/document/569196190/IS-15959-PART-3 (Part 3).

Where the sources disagree the entry's comment says so and which reading was kept.
"""

from optoread import units
from optoread.errors import AxdrError

UNKNOWN = "unknown event"

# index k -> (category name, event code object, event log profile)
CATEGORIES = tuple(
    (name, "0.0.96.11.%d.255" % k, "0.0.99.98.%d.255" % k)
    for k, name in enumerate((
        "voltage related",
        "current related",
        "power failure related",
        "transaction related",
        "other",
        "non-rollover",
        "control",
    ))
)

# The table: one tuple per category, in CATEGORIES order; each (code, name).
_TABLE = (
    # k = 0 -- voltage related, 0.0.96.11.0.255 / 0.0.99.98.0.255.
    # 1..12 in [A][B][C][D][E]. Part 1:2011 says "PT link missing (missing potential)" [B]; Parts 2/3 and the
    # HES tools say "voltage missing" [A][C][E]; the name carries both.
    (
        (1, "R-phase voltage missing (PT link missing) - occurrence"),
        (2, "R-phase voltage missing (PT link missing) - restoration"),
        (3, "Y-phase voltage missing (PT link missing) - occurrence"),
        (4, "Y-phase voltage missing (PT link missing) - restoration"),
        (5, "B-phase voltage missing (PT link missing) - occurrence"),
        (6, "B-phase voltage missing (PT link missing) - restoration"),
        (7, "over voltage in any phase - occurrence"),
        (8, "over voltage in any phase - restoration"),
        (9, "low voltage in any phase - occurrence"),
        (10, "low voltage in any phase - restoration"),
        (11, "voltage unbalance - occurrence"),
        (12, "voltage unbalance - restoration"),
        # 21/22 only in [E] (CT/PT meters); no source disagrees, kept.
        (21, "phase sequence reversal - occurrence"),
        (22, "phase sequence reversal - restoration"),
    ),
    # k = 1 -- current related, 0.0.96.11.1.255 / 0.0.99.98.1.255.
    (
        (51, "R-phase current reverse - occurrence"),  # 51..56 [A][B][C][D][E]
        (52, "R-phase current reverse - restoration"),
        (53, "Y-phase current reverse - occurrence"),
        (54, "Y-phase current reverse - restoration"),
        (55, "B-phase current reverse - occurrence"),
        (56, "B-phase current reverse - restoration"),
        (57, "R-phase CT open - occurrence"),  # 57..62 [A][B][E] (CT meters)
        (58, "R-phase CT open - restoration"),
        (59, "Y-phase CT open - occurrence"),
        (60, "Y-phase CT open - restoration"),
        (61, "B-phase CT open - occurrence"),
        (62, "B-phase CT open - restoration"),
        (63, "current unbalance - occurrence"),  # 63..68 [A][B][C][D][E]
        (64, "current unbalance - restoration"),
        (65, "current bypass - occurrence"),  # [B] "CT bypass", [D] "current bypass/short"
        (66, "current bypass - restoration"),
        (67, "over current in any phase - occurrence"),
        (68, "over current in any phase - restoration"),
        (69, "earth loading - occurrence"),  # 69/70 [A][D] (single-phase smart meters)
        (70, "earth loading - restoration"),
        (81, "current mismatch - occurrence"),  # 81/82 only in [A]
        (82, "current mismatch - restoration"),
        (83, "high neutral current - occurrence"),  # 83/84 [A][E]
        (84, "high neutral current - restoration"),
        # Left out: [D] also lists 85 "last gasp", 86 "first breath" and 87 "increment in billing counter"
        # without saying which log holds them; no other source has them.
    ),
    # k = 2 -- power failure related, 0.0.96.11.2.255 / 0.0.99.98.2.255. [A][B][C][D][E]
    (
        (101, "power failure - occurrence"),
        (102, "power failure - restoration"),
    ),
    # k = 3 -- transaction related, 0.0.96.11.3.255 / 0.0.99.98.3.255. Transactions have no restoration.
    # Left out: [A] lists vendor parameters 124..132 (relay connect/disconnect, passive limits, single
    # action schedules) and [E] uses 125/126 for PT/CT ratio configuration; 126 is read differently by
    # the two, so none of 121..150 is in the table.
    (
        (151, "real time clock - date and time"),  # 151..155 [A][B][C][D]
        (152, "demand integration period"),  # [A] "passive demand integration period"; [B][C][D] kept
        (153, "profile capture period"),  # [A] "passive profile capture period"; [B][C][D] kept
        (154, "single-action schedule for billing dates"),
        (155, "activity calendar for time zones"),
        (157, "new firmware activated"),  # 157..166 [A][C][D]
        (158, "load limit (kW) set"),  # [A] "passive over load limit"; [C][D] kept
        (159, "load limit function enabled"),
        (160, "load limit function disabled"),
        (161, "LLS secret (MR) change"),
        (162, "HLS key (US) change"),
        (163, "HLS key (FW) change"),
        (164, "global key change (encryption and authentication)"),
        (165, "ESWF change"),
        (166, "MD reset"),
        (167, "metering mode change"),  # only in [A] ("Metering mode")
        (169, "single action schedule for image activation"),  # [A][C]
        (178, "configuration change to import-export mode"),  # only in [A]
        (182, "passive relay time change"),  # [A][C]: auto-reconnect interval, lock-out period, attempts
        (183, "single action schedule for passive over load limit"),  # only in [A]
        (191, "apparent energy computation type: lag + lead"),  # 191/192 only in [A]
        (192, "apparent energy computation type: lag only"),
    ),
    # k = 4 -- other, 0.0.96.11.4.255 / 0.0.99.98.4.255.
    (
        (201, "magnetic influence (permanent magnet or AC/DC electromagnet) - occurrence"),  # [A][B][C][D]
        (202, "magnetic influence (permanent magnet or AC/DC electromagnet) - restoration"),
        (203, "neutral disturbance (HF and DC) - occurrence"),  # [A][B][C][D]
        (204, "neutral disturbance (HF and DC) - restoration"),
        # 205/206: [A][B][D] "(very) low PF"; [C] "meter cover opened" / "terminal cover opened". Kept the
        # low-PF reading: three independent sources, and cover opening is the non-rollover code 251 in
        # [A][B][D] (a cover-open event that rolls over would defeat the non-rollover log).
        (205, "low power factor - occurrence"),
        (206, "low power factor - restoration"),
        (207, "single wire operation (neutral missing) - occurrence"),  # 207..216 [A][D]
        (208, "single wire operation (neutral missing) - restoration"),
        (209, "plug-in communication module removal - occurrence"),
        (210, "plug-in communication module removal - restoration"),
        (211, "configuration change to post-paid mode"),
        (212, "configuration change to pre-paid mode"),
        (213, "configuration change to forwarded-only mode"),
        (214, "configuration change to import and export mode"),
        (215, "overload - occurrence"),
        (216, "overload - restoration"),
    ),
    # k = 5 -- non-rollover, 0.0.96.11.5.255 / 0.0.99.98.5.255.
    (
        (251, "meter cover opening - occurrence"),  # [A][B][D]
        # Switch weld: [A] 253, [D] 252. Kept 253 from [A], whose enum is the fuller and more careful
        # list (it names every code with the standard's wording); 252 stays unknown.
        (253, "load switch weld - occurrence"),
    ),
    # k = 6 -- control, 0.0.96.11.6.255 / 0.0.99.98.6.255. [A][D] "load switch status - (dis)connected",
    # [B] "meter (dis)connected".
    (
        (301, "load switch disconnected"),
        (302, "load switch connected"),
    ),
)


def _build():
    out = {}
    for k, entries in enumerate(_TABLE):
        cat = CATEGORIES[k][0]
        for code, name in entries:
            if code in out:
                raise ValueError("IS 15959 event code %d listed twice" % code)
            out[code] = (cat, name)
    return out


EVENTS = _build()


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def codes_of(k):
    """The event codes of category ``k`` (0..6), ascending."""
    return tuple(sorted(code for code, _n in _TABLE[k]))


def event_name(code):
    """Name of IS 15959 event ``code``, or ``"unknown event"`` (the caller keeps the code)."""
    if not _is_int(code):
        return UNKNOWN
    e = EVENTS.get(code)
    return e[1] if e else UNKNOWN


def _groups(obis_text):
    """The 6 integer groups of ``a.b.c.d.e.f`` (also ``a-b:c.d.e.f``), or None."""
    if not isinstance(obis_text, str):
        return None
    parts = obis_text.strip().replace("-", ".").replace(":", ".").replace("*", ".").split(".")
    if len(parts) != 6:
        return None
    try:
        g = tuple(int(p) for p in parts)
    except ValueError:
        return None
    return g if all(0 <= x <= 255 for x in g) else None


def _index(obis_text, c, d):
    """``k`` when ``obis_text`` is ``0.0.c.d.k.255`` with k a category index, else None."""
    g = _groups(obis_text)
    if g is None or g[:4] != (0, 0, c, d) or g[5] != 255 or g[4] >= len(CATEGORIES):
        return None
    return g[4]


def category_of_profile(obis_text):
    """Category name of event log profile ``0.0.99.98.k.255`` (text), or None for any other OBIS."""
    k = _index(obis_text, 99, 98)
    return None if k is None else CATEGORIES[k][0]


def _scaled(raw, scaler):
    if not _is_int(scaler) or not isinstance(raw, (int, float)) or isinstance(raw, bool):
        return None
    try:
        return float(units.apply_scaler(raw, scaler))
    except (AxdrError, OverflowError):  # scaler outside int8; an int too large for a float
        return None


def events_from_profile(profile_obis, columns, rows):
    """Decode the rows of IS 15959 event log ``profile_obis``; ``[]`` when it is not an event log.

    ``columns``: the profile's value columns (the clock is not among them) as ``(obis text, scaler or
    None, unit code or None)``; ``rows``: ``(clock, [values...])`` with clock meter-local epoch seconds or
    None. The code is the value of the column ``0.0.96.11.x.255`` (the one of the profile's own category
    when several are captured); every other column is a snapshot value. Returns one dict a row:
    ``{"time", "code" (int or None), "name", "category" (the log's category), "snapshot": [{"obis",
    "value" (raw), "scaler", "unit" (symbol or None), "scaled" (raw * 10**scaler as float, or None)}]}``.
    A code outside the table keeps its number with the name ``"unknown event"``.
    """
    k = _index(profile_obis, 99, 98)
    if k is None:
        return []
    category = CATEGORIES[k][0]
    code_cols = [j for j, col in enumerate(columns) if _index(col[0], 96, 11) is not None]
    own = [j for j in code_cols if _index(columns[j][0], 96, 11) == k]
    ci = (own or code_cols or [None])[0]
    out = []
    for clock, values in rows:
        values = list(values) if values is not None else []
        raw_code = values[ci] if ci is not None and ci < len(values) else None
        code = raw_code if _is_int(raw_code) else None
        snapshot = []
        for j, (obis, scaler, unit) in enumerate(columns):
            if j == ci:
                continue
            raw = values[j] if j < len(values) else None
            snapshot.append({
                "obis": obis,
                "value": raw,
                "scaler": scaler,
                "unit": units.unit_name(unit) if unit is not None else None,
                "scaled": _scaled(raw, scaler),
            })
        out.append({
            "time": clock,
            "code": code,
            "name": event_name(code),
            "category": category,
            "snapshot": snapshot,
        })
    return out
