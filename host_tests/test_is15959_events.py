"""IS 15959 event code table and event-log decoding (optoread_tools.is15959_events), and the simulated
meter's event logs using the table's codes (CPython only)."""

import pytest

ev = pytest.importorskip("optoread_tools.is15959_events")

from optoread_tools.sim_dlms_model import MeterModel, ob  # noqa: E402

CURRENT_LOG = "0.0.99.98.1.255"


# ---------------------------------------------------------------- the table


def test_categories_in_order_with_their_objects():
    assert ev.CATEGORIES == (
        ("voltage related", "0.0.96.11.0.255", "0.0.99.98.0.255"),
        ("current related", "0.0.96.11.1.255", "0.0.99.98.1.255"),
        ("power failure related", "0.0.96.11.2.255", "0.0.99.98.2.255"),
        ("transaction related", "0.0.96.11.3.255", "0.0.99.98.3.255"),
        ("other", "0.0.96.11.4.255", "0.0.99.98.4.255"),
        ("non-rollover", "0.0.96.11.5.255", "0.0.99.98.5.255"),
        ("control", "0.0.96.11.6.255", "0.0.99.98.6.255"),
    )


def test_every_category_has_codes_each_code_in_one_category_only():
    seen = {}
    for k, (name, _code_obis, _log) in enumerate(ev.CATEGORIES):
        codes = ev.codes_of(k)
        assert codes, name
        assert list(codes) == sorted(set(codes)), name
        for code in codes:
            assert code not in seen, (code, name, seen.get(code))
            seen[code] = name
            assert ev.EVENTS[code][0] == name
            # IS 15959 bands: 1..50 voltage, 51..100 current, ... 301..350 control
            assert 50 * k < code <= 50 * (k + 1), (code, name)
    assert set(seen) == set(ev.EVENTS)


def test_names_are_non_empty_text():
    for code, (cat, name) in ev.EVENTS.items():
        assert isinstance(code, int) and isinstance(cat, str) and cat
        assert isinstance(name, str) and name.strip() == name and name
        assert ev.event_name(code) == name


def test_known_codes_by_name():
    assert ev.event_name(1) == "R-phase voltage missing (PT link missing) - occurrence"
    assert ev.event_name(51) == "R-phase current reverse - occurrence"
    assert ev.event_name(101) == "power failure - occurrence"
    assert ev.event_name(102) == "power failure - restoration"
    assert ev.event_name(151) == "real time clock - date and time"
    assert ev.event_name(201) == "magnetic influence (permanent magnet or AC/DC electromagnet) - occurrence"
    assert ev.event_name(251) == "meter cover opening - occurrence"
    assert ev.event_name(301) == "load switch disconnected"
    assert ev.EVENTS[101] == ("power failure related", "power failure - occurrence")
    assert ev.EVENTS[302] == ("control", "load switch connected")


@pytest.mark.parametrize("code", [0, 13, 99, 252, 999, 65535, -1, None, "101", 101.0, True])
def test_unknown_code_is_unknown_event(code):
    assert ev.event_name(code) == "unknown event"


def test_category_of_profile():
    assert ev.category_of_profile("0.0.99.98.0.255") == "voltage related"
    assert ev.category_of_profile("0.0.99.98.2.255") == "power failure related"
    assert ev.category_of_profile("0.0.99.98.6.255") == "control"
    assert ev.category_of_profile(" 0-0:99.98.5.255 ") == "non-rollover"
    for other in ("0.0.99.98.7.255", "1.0.99.1.0.255", "0.0.96.11.0.255", "1.0.94.91.7.255",
                  "0.0.99.98.0.0", "0.0.99.98.255", "", "x.y", None, b"\x00\x00\x63\x62\x00\xff"):
        assert ev.category_of_profile(other) is None, other


# ---------------------------------------------------------------- events_from_profile

COLS = [("0.0.96.11.1.255", None, None), ("1.0.31.7.0.255", -2, 33), ("1.0.32.7.0.255", -1, 35)]


def test_events_from_profile_literal():
    got = ev.events_from_profile(CURRENT_LOG, COLS, [
        (1767225600, [101, 512, 2301]),
        (None, [999, -5, None]),
    ])
    assert got == [
        {"time": 1767225600, "code": 101, "name": "power failure - occurrence",
         "category": "current related",
         "snapshot": [
             {"obis": "1.0.31.7.0.255", "value": 512, "scaler": -2, "unit": "A", "scaled": 5.12},
             {"obis": "1.0.32.7.0.255", "value": 2301, "scaler": -1, "unit": "V", "scaled": 230.1},
         ]},
        {"time": None, "code": 999, "name": "unknown event", "category": "current related",
         "snapshot": [
             {"obis": "1.0.31.7.0.255", "value": -5, "scaler": -2, "unit": "A", "scaled": -0.05},
             {"obis": "1.0.32.7.0.255", "value": None, "scaler": -1, "unit": "V", "scaled": None},
         ]},
    ]


def test_code_column_anywhere_and_odd_cells():
    cols = [("1.0.13.7.0.255", -3, 255), ("0.0.96.11.4.255", None, None), ("1.0.1.8.0.255", 3, 30),
            ("0.0.96.1.0.255", None, None)]
    got = ev.events_from_profile("0.0.99.98.4.255", cols, [
        (10, [987, 203, 12, b"SN1"]),
        (20, [None, "x", 2.5]),  # short row, non-integer code
        (30, [True, 205, 7, None]),  # bools are not numbers
    ])
    assert [(e["time"], e["code"], e["name"]) for e in got] == [
        (10, 203, "neutral disturbance (HF and DC) - occurrence"),
        (20, None, "unknown event"),
        (30, 205, "low power factor - occurrence"),
    ]
    assert {e["category"] for e in got} == {"other"}
    assert got[0]["snapshot"] == [
        {"obis": "1.0.13.7.0.255", "value": 987, "scaler": -3, "unit": "count", "scaled": 0.987},
        {"obis": "1.0.1.8.0.255", "value": 12, "scaler": 3, "unit": "Wh", "scaled": 12000.0},
        {"obis": "0.0.96.1.0.255", "value": b"SN1", "scaler": None, "unit": None, "scaled": None},
    ]
    assert [s["value"] for s in got[1]["snapshot"]] == [None, 2.5, None]
    assert got[1]["snapshot"][1]["scaled"] == 2500.0
    assert got[2]["snapshot"][0]["scaled"] is None and got[2]["snapshot"][1]["scaled"] == 7000.0


def test_without_a_code_column_every_value_is_a_snapshot():
    got = ev.events_from_profile("0.0.99.98.2.255", [("1.0.31.7.0.255", 200, 33)], [(5, [3])])
    assert got == [{"time": 5, "code": None, "name": "unknown event", "category": "power failure related",
                    "snapshot": [{"obis": "1.0.31.7.0.255", "value": 3, "scaler": 200, "unit": "A",
                                  "scaled": None}]}]  # scaler outside int8: no scaled value


def test_own_category_code_column_wins():
    cols = [("0.0.96.11.0.255", None, None), ("0.0.96.11.2.255", None, None)]
    got = ev.events_from_profile("0.0.99.98.2.255", cols, [(1, [7, 102])])
    assert got[0]["code"] == 102 and got[0]["name"] == "power failure - restoration"
    assert got[0]["snapshot"] == [{"obis": "0.0.96.11.0.255", "value": 7, "scaler": None, "unit": None,
                                   "scaled": None}]


@pytest.mark.parametrize("obis", ["1.0.99.1.0.255", "1.0.98.1.0.255", "1.0.94.91.7.255", "0.0.99.98.7.255",
                                  "garbage"])
def test_not_an_event_profile_gives_nothing(obis):
    assert ev.events_from_profile(obis, COLS, [(1, [101, 512, 2301])]) == []


def test_no_rows_no_events():
    assert ev.events_from_profile(CURRENT_LOG, COLS, []) == []


# ---------------------------------------------------------------- the simulated meter


def test_simulator_event_logs_use_only_their_own_categorys_codes():
    m = MeterModel(rows=8, event_rows=30)
    for k, (name, code_obis, log) in enumerate(ev.CATEGORIES):
        p = m.profile(log)
        assert [c[:3] for c in p.columns[:2]] == [(8, ob("0.0.1.0.0.255"), 2), (1, ob(code_obis), 2)]
        rows = m.expected_rows(log)
        assert len(rows) == 30 + k
        codes = [r[1] for r in rows]
        assert all(ev.EVENTS[c][0] == name for c in codes), (name, codes)
        assert set(codes) == set(ev.codes_of(k)), name  # 30+ rows cycle through every code
        latest = m.find(1, ob(code_obis)).value[1]
        assert latest == codes[-1] and ev.EVENTS[latest][0] == name


def test_simulator_event_values_are_literal_and_deterministic():
    m = MeterModel(rows=8)  # event_rows=5: log k has 5 + k rows
    rows = m.expected_rows(CURRENT_LOG)
    assert [r[1:] for r in rows] == [(51, 101, 22001), (52, 111, 22014), (53, 121, 22027), (54, 131, 22040),
                                     (55, 141, 22053), (56, 151, 22066)]
    assert [r[1] for r in m.expected_rows("0.0.99.98.2.255")] == [101, 102, 101, 102, 101, 102, 101]
    assert [r[1] for r in m.expected_rows("0.0.99.98.6.255")] == [301, 302] * 5 + [301]
    assert m.find(1, ob("0.0.96.11.1.255")).value[1] == 56
    assert m.find(1, ob("0.0.96.11.6.255")).value[1] == 301
    assert MeterModel(rows=8).expected_rows(CURRENT_LOG) == rows


def test_simulator_event_scaler_profile():
    m = MeterModel(rows=8)
    p = m.profile("1.0.94.91.7.255")
    assert [c[:3] for c in p.columns] == [(3, ob("1.0.31.7.0.255"), 3), (3, ob("1.0.32.7.0.255"), 3)]
    assert m.expected_rows("1.0.94.91.7.255") == [((-2, 33), (-2, 35))]


def test_event_log_read_from_the_simulator_decodes():
    """Through the real session: the current-related log, scaled by the event scaler profile."""
    sim = pytest.importorskip("optoread_tools.sim_dlms")
    from optoread.dlms.client import session
    from optoread.dlms.cosem import profile as cosem_profile

    srv = sim.DlmsServer(MeterModel(rows=8))
    with session.Session(session.Settings(), sim.ServerTransport(srv)) as sess:
        pg = cosem_profile.ProfileGeneric(CURRENT_LOG)
        cos = pg.capture_objects(sess)
        scalers = pg.column_scalers(sess, "1.0.94.91.7.255")
        rows = []
        pg.read_all(sess, rows.append)
    assert cos[0][0] == 8 and scalers == [None, None, (-2, 33), (-2, 35)]
    columns = [(".".join(str(b) for b in co[1]),) + (sc if sc else (None, None))
               for co, sc in zip(cos[1:], scalers[1:])]
    got = ev.events_from_profile(CURRENT_LOG, columns, [(r[0].local_epoch(), list(r[1:])) for r in rows])
    assert len(got) == 6
    first = got[0]
    assert first["code"] == 51 and first["name"] == "R-phase current reverse - occurrence"
    assert first["category"] == "current related"
    assert first["time"] == MeterModel(rows=8).row_time(CURRENT_LOG, 0)
    assert first["snapshot"] == [
        {"obis": "1.0.31.7.0.255", "value": 101, "scaler": -2, "unit": "A", "scaled": 1.01},
        {"obis": "1.0.32.7.0.255", "value": 22001, "scaler": -2, "unit": "V", "scaled": 220.01},
    ]
    assert [e["code"] for e in got] == [51, 52, 53, 54, 55, 56]
