"""``make demo``: the whole field-to-office path on one laptop, checked end to end (CPython).

1. A simulated IEC 62056-21 mode C meter and a simulated DLMS/COSEM meter (direct HDLC,
   IS 15959 object model) each on their own pty.
2. ``firmware/main.py`` on the MicroPython unix port with the ``unix`` board (the store is a
   LittleFS image file), its console on a pty bridged by ``optoread_tools.ptybridge``.
3. Through the console, as a person would type it: ``config set probe pty:...`` then
   ``read generic`` for each meter (the unix board reads whichever line ``probe`` names).
4. ``optoread download`` over the console pty into ``OUT/readings.sqlite`` plus CSV files
   in ``OUT/csv``; then a second download, which must add nothing.
5. A short table of what arrived, and the check: the readout data sets, the DLMS register
   values (value, scaler, unit) and every load-profile row in the database must equal what
   the simulators served, nothing may be missing, and the device must report every session
   acknowledged.

Exit status 0 only when every check passed; otherwise the failures are listed (and the
device console transcript is printed) and the status is 1.

    python tools/demo.py [--out demo-out] [--heap 512k] [--rows 2880] [--quiet] [--micropython PATH]
"""

import argparse
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (HERE, os.path.join(ROOT, "firmware")):  # a checkout without `pip install -e .` too
    if _p not in sys.path:
        sys.path.insert(0, _p)

PLAN = "generic"  # browse + every register + 2 days of load profile; mode C: the readout
PROFILE = "1.0.99.1.0.255"


class DemoError(Exception):
    """A step of the demo could not run (not a data mismatch: those are collected as failures)."""


def _micropython(path=None):
    import mpbin

    # --micropython PATH, else $OPTOREAD_MICROPYTHON, else the venv's (or one on PATH)
    cand = os.path.abspath(path) if path else mpbin.MICROPYTHON  # the device runs in the out dir
    found = cand if os.path.exists(cand) else (None if path else shutil.which("micropython"))
    if not found:
        raise DemoError("the MicroPython unix port is not installed (make setup): %s" % cand)
    return found


# ---------------------------------------------------------------- the device console


class ConsoleClient:
    """Line commands on the device console (the human side of the protocol): send a line, collect
    the answer up to the prompt ``> ``."""

    def __init__(self, port, log=None, alive=None):
        import serial

        self.alive = alive
        self.ser = serial.Serial(port, 115200, timeout=0.05)
        self.log = log
        self.transcript = []

    def close(self):
        self.ser.close()

    def command(self, line, timeout=15.0):
        """Send ``line``; return the answer lines (without the prompt). DemoError on a timeout."""
        self.ser.write(line.encode() + b"\n")
        buf = bytearray()
        deadline = time.monotonic() + timeout
        while True:
            chunk = self.ser.read(4096)
            if chunk:
                buf += chunk
                text = buf.decode("utf-8", "replace")
                if text.endswith("\n> ") or text == "> " or text.endswith("\n> \r\n"):
                    break
            elif time.monotonic() > deadline or (self.alive is not None and not self.alive()):
                self.transcript.append("> " + line)
                self.transcript.append(buf.decode("utf-8", "replace"))
                if self.alive is not None and not self.alive():
                    raise DemoError("the device program exited (after %r)" % line)
                raise DemoError("no prompt from the device %ss after %r; got %r"
                                % (timeout, line, bytes(buf[-400:])))
        text = buf.decode("utf-8", "replace")
        if text.endswith("> "):
            text = text[:-2]
        lines = [ln.rstrip("\r") for ln in text.split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        self.transcript.append("> " + line)
        self.transcript.extend(lines)
        if self.log:
            for ln in lines:
                self.log("  device| " + ln)
        return lines

    def sync(self, timeout=15.0):
        """Wait until the console answers an empty line (the banner went out before we connected)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.command("", timeout=1.0)
            except DemoError:
                if time.monotonic() > deadline or (self.alive is not None and not self.alive()):
                    raise DemoError("the device console does not answer")


# ---------------------------------------------------------------- what the simulators served


def expected_readout(meter):
    """The IEC meter's readout as [(address, value, unit)], in order: one per value, and one for a
    data set that is a value with its own time (a maximum demand)."""
    from optoread.iec62056_21 import readout as iec_readout

    r = iec_readout.parse_readout(meter.readout_bytes())
    out = []
    for address, values in r.datasets:
        vt = iec_readout.value_time(values)
        if vt is not None:
            out.append((address, vt[0], vt[1]))
            continue
        for v, u in values:
            out.append((address, v, u))
    return out


def meter_values(session):
    """The session's values that the meter sent: without the facts the device adds (its id and
    clock, where the meter id came from, the identification line)."""
    from optoread_tools.readings_db import SESSION_FACTS

    return [v for v in session["values"] if v["obis"] not in SESSION_FACTS and v["obis"] != "identification"]


def expected_registers(model):
    """{obis text: (value, scaler, unit code)} of every register (classes 3, 4, 5) in the DLMS model."""
    from optoread_tools.sim_dlms_model import obis_text

    out = {}
    for entry in model.objects:
        cls, obis6 = entry[0], entry[2]
        if cls in (3, 4, 5):
            out[obis_text(obis6)] = model.expected_register(obis6)
    return out


def _value_cells(row):
    """A model row without its clock cell (12 octets): the profile's value columns."""
    return [c for c in row if not (isinstance(c, (bytes, bytearray)) and len(c) == 12)]


# ---------------------------------------------------------------- checks


def check_iec(session, meter, failures):
    want = expected_readout(meter)
    got = [(v["obis"], v["value"], v["unit"]) for v in meter_values(session)]
    if got != want:
        failures.append("IEC readout: %d values arrived, %d served; first difference: %s"
                        % (len(got), len(want), _first_diff(got, want)))
    if session["profiles"]:
        failures.append("IEC readout: unexpected profiles %s" % [p["obis"] for p in session["profiles"]])
    return len(want)


def _first_diff(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return "#%d got %r, served %r" % (i, g, w)
    return "lengths differ (%d vs %d)" % (len(got), len(want))


def check_dlms(session, model, failures):
    want = expected_registers(model)
    seen = {}
    for v in session["values"]:
        if v["obis"] in want:
            got = (v["value"], v["scaler"], v["unit_code"])
            if got != want[v["obis"]]:
                failures.append("DLMS %s: got %r, served %r" % (v["obis"], got, want[v["obis"]]))
            seen[v["obis"]] = got
    missing = sorted(set(want) - set(seen))
    if missing:
        failures.append("DLMS: registers served but not in the database: %s" % ", ".join(missing))
    profs = [p for p in session["profiles"] if p["obis"] == PROFILE]
    if len(profs) != 1:
        failures.append("DLMS: expected one %s profile, found %d" % (PROFILE, len(profs)))
        return len(seen), 0
    rows = profs[0]["rows"]
    p = model.profile(PROFILE)
    if not rows:
        failures.append("DLMS profile: no rows arrived")
        return len(seen), 0
    # The row clock may be kept as local meter time or as UTC (local + deviation): take the
    # first row's to fix which, then every row must sit on the model's time grid.
    t0 = model.row_time(PROFILE, 0)
    offset = None
    for off in (0, model.deviation * 60):
        if (rows[0][0] - off - t0) % p.period_s == 0:
            offset = off
            break
    if offset is None:
        failures.append("DLMS profile: row clock %r is not on the meter's %d s grid"
                        % (rows[0][0], p.period_s))
        return len(seen), len(rows)
    first = (rows[0][0] - offset - t0) // p.period_s
    want_rows = model.expected_rows(PROFILE, first, first + len(rows))
    bad = 0
    for k, row in enumerate(rows):
        i = first + k
        if i >= p.rows or k >= len(want_rows):
            failures.append("DLMS profile: row %d is beyond the meter's %d rows" % (i, p.rows))
            break
        if row[0] - offset != model.row_time(PROFILE, i) or list(row[1:]) != _value_cells(want_rows[k]):
            bad += 1
            if bad <= 3:
                failures.append("DLMS profile row %d: got %r, served %r @ %r" % (
                    i, row, _value_cells(want_rows[k]), model.row_time(PROFILE, i)))
    if bad > 3:
        failures.append("DLMS profile: %d rows differ in all" % bad)
    if first + len(rows) != p.rows:
        failures.append("DLMS profile: the newest row did not arrive (got up to %d of %d)"
                        % (first + len(rows), p.rows))
    if len(rows) < 2 * 86400 // p.period_s:
        failures.append("DLMS profile: %d rows, the plan asks for 2 days (%d)"
                        % (len(rows), 2 * 86400 // p.period_s))
    return len(seen), len(rows)


# ---------------------------------------------------------------- the run


def _download(port, out_db, csv_dir, device):
    """``optoread download`` (the DOWNLOAD tool, in this process); returns (status, stdout text)."""
    import argparse as ap
    import contextlib
    import io

    try:
        from optoread_tools import download
    except ImportError as e:
        raise DemoError("optoread download is missing (tools/optoread_tools/download.py): %s" % e)
    p = ap.ArgumentParser(prog="optoread")
    download.add_download_parser(p.add_subparsers(dest="command"))
    argv = ["download", "--port", port, "--out", out_db, "--quiet"] + (["--device", device] if device else [])
    if csv_dir:
        argv += ["--csv", csv_dir]
    args = p.parse_args(argv)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = args.func(args)
    return rc, buf.getvalue()


def _table(sessions, log):
    log("")
    log("%-4s %-16s %-8s %-9s %7s %6s" % ("seq", "meter", "plan", "complete", "values", "rows"))
    for s in sessions:
        log("%-4s %-16s %-8s %-9s %7d %6d" % (s["seq"], (s["meter_id"] or "?")[:16], s["plan"] or "-",
                                            "yes" if s["complete"] else "NO", len(s["values"]),
                                            sum(len(p["rows"]) for p in s["profiles"])))
    for s in sessions:
        log("")
        log("session %s, %s:" % (s["seq"], s["meter_id"]))
        shown = 0
        for v in s["values"]:
            if shown >= 8:
                log("  ... %d more values" % (len(s["values"]) - shown))
                break
            # Text as read (mode C keeps leading zeros and decimals); DLMS numbers scaled.
            val = v["value"] if isinstance(v["value"], str) or v["scaled"] is None else v["scaled"]
            log("  %-18s %14s %s" % (v["obis"], "%s" % (val,), v["unit"] or ""))
            shown += 1
        for p in s["profiles"]:
            rows = p["rows"]
            span = ""
            if rows and isinstance(rows[0][0], int):
                span = " %s .. %s" % (time.strftime("%Y-%m-%d %H:%M", time.gmtime(rows[0][0])),
                                      time.strftime("%Y-%m-%d %H:%M", time.gmtime(rows[-1][0])))
            log("  profile %s: %d rows x %d columns%s" % (p["obis"], len(rows), len(p["columns"]), span))


def run(out_dir, heap="512k", rows=2880, log=print, micropython=None):
    """Run the demo into ``out_dir``; return the list of failures (empty = every check passed)."""
    from optoread_tools import readings_db, sim_dlms
    from optoread_tools.ptybridge import PtyBridge
    from optoread_tools.ptyline import start_pty_thread
    from optoread_tools.simcli import make_meter

    t_start = time.monotonic()
    main_py = os.path.join(ROOT, "firmware", "main.py")
    if not os.path.exists(main_py):
        raise DemoError("firmware/main.py is missing")
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    db_path = os.path.join(out_dir, "readings.sqlite")
    csv_dir = os.path.join(out_dir, "csv")
    image = os.path.join(out_dir, "device-flash.img")
    # A fresh device and database every run: the table shows this run's readings only.
    for p in (db_path, image, os.path.join(out_dir, "config.json")):
        if os.path.exists(p):
            os.remove(p)
    if os.path.isdir(csv_dir):
        shutil.rmtree(csv_dir)

    failures = []
    iec_meter = make_meter([])
    iec_path, iec_stop = start_pty_thread(iec_meter)
    model = sim_dlms.MeterModel(rows=rows)
    dlms_path, dlms_stop = sim_dlms.start_pty(sim_dlms.DlmsServer(model, client=16, auth="none"))
    log("meters: IEC 62056-21 mode C on %s, DLMS/COSEM (HDLC 9600) on %s" % (iec_path, dlms_path))

    env = dict(os.environ)
    env.update({"OPTOREAD_BOARD": "unix", "OPTOREAD_STORE": image, "OPTOREAD_PROBE": "pty:" + iec_path})
    env.pop("MICROPYPATH", None)
    bridge = PtyBridge([_micropython(micropython), "-X", "heapsize=" + heap, main_py], env=env, cwd=out_dir)
    console = None
    seqs = {}
    rc_dev = None
    try:
        port = bridge.start()
        log("device: firmware/main.py on the MicroPython unix port (heap %s), console on %s" % (heap, port))
        console = ConsoleClient(port, log=log, alive=bridge.alive)
        console.sync()
        for name, path in (("iec", iec_path), ("dlms", dlms_path)):
            console.command("config set probe pty:" + path)
            t = time.monotonic()
            answer = console.command("read " + PLAN, timeout=120.0)
            done = [ln for ln in answer if ln.startswith("session ")]
            if not done or "complete" not in done[-1] or "incomplete" in done[-1]:
                failures.append("%s reading did not complete: %s" % (name, (done or answer or ["?"])[-1]))
            else:
                seqs[name] = int(done[-1].split()[1].rstrip(":"))
            log("  (%s reading: %.1f s)" % (name, time.monotonic() - t))
        console.command("list")
        console.close()
        console = None

        log("laptop: optoread download --port %s --out %s --csv %s" % (port, db_path, csv_dir))
        rc, text = _download(port, db_path, csv_dir, None)  # filed under the device's own id
        for ln in text.splitlines():
            log("  " + ln)
        if rc != 0:
            failures.append("optoread download exited with %d" % rc)
        rc2, text2 = _download(port, db_path, None, None)
        if rc2 != 0:
            failures.append("second optoread download exited with %d" % rc2)

        console = ConsoleClient(port, alive=bridge.alive)
        console.sync()
        hello = [ln for ln in console.command("@hello") if ln.startswith("@ok")]
        console.close()
        console = None
        if not hello or " pending=0 " not in hello[0] + " ":
            failures.append("the device still has sessions not acknowledged: %s" % (hello or ["no @ok"]))
    except DemoError as e:
        failures.append(str(e))
    finally:
        if console is not None:
            console.close()
        rc_dev = bridge.stop()
        iec_stop()
        dlms_stop()

    sessions = []
    if os.path.exists(db_path):
        db = readings_db.open_db(db_path)
        try:
            sessions = readings_db.session_dicts(db)
        finally:
            db.close()
    _table(sessions, log)
    log("")

    by_seq = {s["seq"]: s for s in sessions}
    if len(sessions) != len(set((s["device"], s["seq"]) for s in sessions)):
        failures.append("a session is in the database twice")
    if len(sessions) != 2:
        failures.append("expected 2 sessions in the database, found %d" % len(sessions))
    n_iec = n_reg = n_rows = 0
    if "iec" in seqs and seqs["iec"] in by_seq:
        n_iec = check_iec(by_seq[seqs["iec"]], iec_meter, failures)
    elif "iec" in seqs:
        failures.append("the IEC session %d is not in the database" % seqs["iec"])
    if "dlms" in seqs and seqs["dlms"] in by_seq:
        n_reg, n_rows = check_dlms(by_seq[seqs["dlms"]], model, failures)
    elif "dlms" in seqs:
        failures.append("the DLMS session %d is not in the database" % seqs["dlms"])
    if os.path.isdir(csv_dir):
        n_csv = _csv_lines(os.path.join(csv_dir, "register_values.csv"))
        n_vals = sum(len(s["values"]) for s in sessions)
        if n_csv != n_vals:
            failures.append("register_values.csv has %s lines, the database %d values" % (n_csv, n_vals))
    else:
        failures.append("no CSV export in %s" % csv_dir)

    if failures:
        log("device console transcript:")
        for ln in bridge.from_program.decode("utf-8", "replace").splitlines()[-60:]:
            log("  | " + ln.rstrip("\r"))
        if rc_dev not in (None, 0, -15):
            log("  (device exited with %s)" % rc_dev)
    secs = time.monotonic() - t_start
    if failures:
        log("DEMO FAILED (%.0f s):" % secs)
        for f in failures:
            log("  - " + f)
    else:
        log("DEMO OK (%.0f s): %d readout values, %d DLMS registers and %d profile rows arrived exactly as "
            "served; %s (+ csv/)" % (secs, n_iec, n_reg, n_rows, _show_path(db_path)))
    return failures


def _show_path(path):
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _csv_lines(path):
    import csv

    if not os.path.exists(path):
        return None
    with open(path, newline="") as f:
        return max(0, sum(1 for _ in csv.reader(f)) - 1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="demo-out", help="output folder (default demo-out)")
    p.add_argument("--heap", default="512k", help="MicroPython heap of the device (default 512k: objects "
                   "on the 64-bit unix port are about twice their size on a 32-bit board)")
    p.add_argument("--rows", type=int, default=2880, help="load-profile rows the DLMS meter holds")
    p.add_argument("--quiet", action="store_true", help="print only the verdict")
    import mpbin

    mpbin.add_argument(p)
    args = p.parse_args(argv)
    if args.quiet:
        def log(text):
            if text.startswith("DEMO") or text.startswith("  - "):
                print(text)
    else:
        def log(text):
            print(text, flush=True)
    try:
        failures = run(args.out, heap=args.heap, rows=args.rows, log=log, micropython=args.micropython)
    except DemoError as e:
        print("DEMO FAILED: %s" % e)
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
