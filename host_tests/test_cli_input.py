"""Careless input to the ``optoread`` command (issue 17, findings 6, 7 and 9; CPython only).

Every option that parses a value gets a bad value: a one-line error naming the option and
exit 2, never a traceback (the table below). Then the cases that used to destroy or mislead:
``device --flash`` on a file that is not a LittleFS image, ``parse`` of an empty file, a DLMS
``read`` with nothing requested, profile ranges that cannot be right; and secrets for ``read``
from a file, the environment or a prompt, never printed.
"""

import hashlib
import os
import sqlite3
import subprocess
import sys

import pytest
from optoread_tools import cli, sim_dlms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")


def run(capsys, *argv):
    """``optoread ARGV`` in this process: (exit status, stdout, stderr)."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def assert_usage_error(code, out, err, names, secret=None):
    """Exit 2, one line on stderr naming the option (each of ``names``), no traceback, no secret."""
    text = err.strip()
    assert "Traceback" not in err + out, err
    assert code == 2, (code, err)
    assert text and "\n" not in text, err
    for name in names:
        assert name in text, (name, text)
    if secret:
        assert secret not in err + out


@pytest.fixture
def files(tmp_path):
    """Placeholders for the table: {tmp}, {text} (not SQLite), {otherdb} (another application's
    SQLite database), {empty} (an empty file), {hex} (a small HDLC capture)."""
    text = tmp_path / "notes.txt"
    text.write_text("these are my notes, not a database\n")
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(str(other))
    db.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
    db.execute("INSERT INTO contacts VALUES ('Ada', '123')")
    db.commit()
    db.close()
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    hexcap = tmp_path / "cap.hex"
    hexcap.write_text("C> 7E A0 08 03 21 93 7E\n")
    return {"tmp": str(tmp_path), "text": str(text), "otherdb": str(other), "empty": str(empty),
            "hex": str(hexcap)}


READ = ["read", "--tcp", "127.0.0.1:9"]
IEC = ["read", "--port", "{tmp}/no-such-port", "--iec21"]
OBIS = ["--obis", "1.0.1.8.0.255"]
PROF = ["--profile", "1.0.99.1.0.255"]
RANGE = ["--from", "2026-01-01", "--to", "2026-01-02"]
SIM = ["sim", "--seconds", "0.2"]
DL = ["download", "--port", "{tmp}/no-such-port", "-q"]
DEV = ["device", "--probe", "tcp:127.0.0.1:9"]

# (id, argv, what the error must name, what happened before issue 17 or None). Placeholders: see
# ``files``.
BAD_VALUES = [
    # read: where
    ("read --tcp without port", ["read", "--tcp", "localhost"] + OBIS, ["--tcp"], "traceback"),
    ("read --tcp port not a number", ["read", "--tcp", "host:abc"] + OBIS, ["--tcp"], "traceback"),
    ("read --tcp port 0", ["read", "--tcp", "127.0.0.1:0"] + OBIS, ["--tcp"], "tried to connect"),
    ("read --tcp port too big", ["read", "--tcp", "127.0.0.1:65536"] + OBIS, ["--tcp"], "traceback"),
    # read: IEC 62056-21
    ("read --mode", IEC + ["--mode", "E"], ["--mode"], "usage line"),
    ("read --baud-switch word", IEC + ["--baud-switch", "fast"], ["--baud-switch"], "usage line"),
    ("read --baud-switch odd baud", IEC + ["--baud-switch", "1234"], ["--baud-switch"], "accepted"),
    ("read --settle-ms word", IEC + ["--settle-ms", "abc"], ["--settle-ms"], "usage line"),
    ("read --settle-ms negative", IEC + ["--settle-ms", "-5"], ["--settle-ms"], "accepted"),
    ("read --reaction-ms negative", IEC + ["--reaction-ms", "-1"], ["--reaction-ms"], "accepted"),
    ("read --address", IEC + ["--address", "a/b!"], ["--address"], "exit 4 at the sign-on"),
    ("read --address too long", IEC + ["--address", "A" * 33], ["--address"], "exit 4 at the sign-on"),
    ("read --register empty", IEC + ["--register", ""], ["--register"], "accepted"),
    # read: DLMS addressing and security
    ("read --client word", READ + ["--client", "abc"] + OBIS, ["--client"], "usage line"),
    ("read --client range", READ + ["--client", "300"] + OBIS, ["--client"], "accepted"),
    ("read --server physical word", READ + ["--server", "1/abc"] + OBIS, ["--server"], "traceback"),
    ("read --server logical word", READ + ["--server", "x"] + OBIS, ["--server"], "traceback"),
    ("read --server range", READ + ["--server", "1/99999"] + OBIS, ["--server"], "accepted"),
    ("read --serial-number word", READ + ["--serial-number", "abc"] + OBIS, ["--serial-number"],
     "usage line"),
    ("read --serial-number negative", READ + ["--serial-number", "-1"] + OBIS, ["--serial-number"],
     "exit 4"),
    ("read --address-size", READ + ["--address-size", "3"] + OBIS, ["--address-size"], "usage line"),
    ("read --auth", READ + ["--auth", "high"] + OBIS, ["--auth"], "usage line"),
    ("read --key not hex", READ + ["--key", "zz5ecretzz"] + OBIS, ["--key"], "exit 1 via SystemExit"),
    ("read --key length", READ + ["--key", "0102"] + OBIS, ["--key"], "accepted"),
    ("read --auth-key not hex", READ + ["--auth-key", "xy5ecretxy"] + OBIS, ["--auth-key"],
     "exit 1 via SystemExit"),
    ("read --auth hls without keys", READ + ["--auth", "hls"] + OBIS, ["--key"], "exit 4"),
    ("read --system-title", READ + ["--system-title", "TOO-LONG-TITLE"] + OBIS, ["--system-title"],
     "accepted"),
    ("read --max-info word", READ + ["--max-info", "abc"] + OBIS, ["--max-info"], "usage line"),
    ("read --max-info small", READ + ["--max-info", "5"] + OBIS, ["--max-info"], "accepted"),
    ("read --password-file missing", READ + ["--password-file", "{tmp}/nope"] + OBIS,
     ["--password-file"], "no such option"),
    ("read --key-file missing", READ + ["--key-file", "{tmp}/nope"] + OBIS, ["--key-file"],
     "no such option"),
    ("read --auth-key-file empty", READ + ["--auth-key-file", "{empty}"] + OBIS, ["--auth-key-file"],
     None),
    ("read --key-file not hex", READ + ["--key-file", "{text}", "--auth-key", "00" * 16] + OBIS,
     ["--key-file"], None),
    # read: what to read
    ("read --obis", READ + ["--obis", "1.2.3.x"], ["--obis"], "exit 4 after connecting"),
    ("read --obis class", READ + ["--obis", "abc/1.0.1.8.0.255"], ["--obis"], "traceback"),
    ("read --profile", READ + ["--profile", "nope"], ["--profile"], "exit 4 after connecting"),
    ("read --from word", READ + PROF + ["--from", "yesterday", "--to", "2026-01-02"], ["--from"],
     "traceback"),
    ("read --to with Z", READ + PROF + ["--from", "2026-01-01", "--to", "2026-01-02T00:00Z"], ["--to"],
     "traceback"),
    ("read --from impossible date", READ + PROF + ["--from", "2026-02-30", "--to", "2026-03-02"],
     ["--from"], "sent to the meter"),
    ("read --to impossible hour", READ + PROF + ["--from", "2026-01-01", "--to", "2026-01-01T25:00"],
     ["--to"], "sent to the meter"),
    ("read --from after --to", READ + PROF + ["--from", "2026-01-02", "--to", "2026-01-01"], ["--from"],
     "silent"),
    ("read --from without --to", READ + PROF + ["--from", "2026-01-02"], ["--to"], "exit 1"),
    ("read range without --profile", READ + OBIS + RANGE, ["--profile"], "ignored"),
    ("read --last-entries 0", READ + PROF + ["--last-entries", "0"], ["--last-entries"],
     "reads the whole profile"),
    ("read --last-entries word", READ + PROF + ["--last-entries", "abc"], ["--last-entries"],
     "usage line"),
    ("read --last-entries with a range", READ + PROF + RANGE + ["--last-entries", "3"],
     ["--last-entries"], "ignored"),
    ("read nothing requested", READ, ["--obis"], "exit 0 with nothing"),
    # parse
    ("parse missing file", ["parse", "{tmp}/nope.txt"], ["nope.txt"], "exit 5"),
    ("parse --key", ["parse", "{hex}", "--key", "zz"], ["--key"], "accepted"),
    ("parse --auth-key", ["parse", "{hex}", "--auth-key", "zz"], ["--auth-key"], "accepted"),
    # sim
    ("sim --protocol", SIM + ["--protocol", "modbus", "--pty"], ["--protocol"], "usage line"),
    ("sim --tcp word", SIM + ["--tcp", "abc"], ["--tcp"], "usage line"),
    ("sim --tcp range", SIM + ["--tcp", "70000"], ["--tcp"], None),
    ("sim --connect no port", SIM + ["--connect", "localhost"], ["--connect"], "does not name it"),
    ("sim --connect port word", SIM + ["--connect", "host:abc"], ["--connect"], "does not name it"),
    ("sim --auth", SIM + ["--protocol", "dlms", "--tcp", "0", "--auth", "x"], ["--auth"], "usage line"),
    ("sim --rows word", SIM + ["--protocol", "dlms", "--tcp", "0", "--rows", "abc"], ["--rows"],
     "usage line"),
    ("sim --rows negative", SIM + ["--protocol", "dlms", "--tcp", "0", "--rows", "-1"], ["--rows"],
     "accepted"),
    ("sim --quirk", SIM + ["--pty", "--quirk", "bogus"], ["--quirk"], None),
    ("sim --readout missing", SIM + ["--pty", "--readout", "{tmp}/nope.txt"], ["--readout"], "traceback"),
    ("sim --address", SIM + ["--pty", "--address", "a/b!"], ["--address"], "accepted"),
    ("sim --seconds word", ["sim", "--pty", "--seconds", "abc"], ["--seconds"], "usage line"),
    ("sim --seconds negative", ["sim", "--pty", "--seconds", "-1"], ["--seconds"], "accepted"),
    ("sim --seconds nan", ["sim", "--pty", "--seconds", "nan"], ["--seconds"], "accepted"),
    # decode-flash
    ("decode-flash missing image", ["decode-flash", "{tmp}/nope.img"], ["nope.img"], "exit 5"),
    ("decode-flash --block-size word", ["decode-flash", "{text}", "--block-size", "abc"], ["--block-size"],
     "usage line"),
    ("decode-flash --block-size 0", ["decode-flash", "{text}", "--block-size", "0"], ["--block-size"],
     "accepted"),
    ("decode-flash --block-size odd", ["decode-flash", "{text}", "--block-size", "1000"],
     ["--block-size"], "accepted"),
    # device
    ("device --probe", ["device", "--probe", "foo", "--flash", "{tmp}/s.img"], ["--probe"], "accepted"),
    ("device --probe port", ["device", "--probe", "tcp:127.0.0.1:abc", "--flash", "{tmp}/s.img"],
     ["--probe"], "accepted"),
    ("device --heap", DEV + ["--heap", "lots", "--flash", "{tmp}/s.img"], ["--heap"], "exit 1"),
    ("device --flash missing directory", DEV + ["--flash", "{tmp}/no/dir/s.img"], ["--flash"],
     "MicroPython traceback"),
    ("device --flash not LittleFS", DEV + ["--flash", "{otherdb}"], ["--flash"], "formatted it"),
    # download
    ("download --baud word", DL + ["--out", "{tmp}/r.sqlite", "--baud", "abc"], ["--baud"], "usage line"),
    ("download --baud 0", DL + ["--out", "{tmp}/r.sqlite", "--baud", "0"], ["--baud"], "accepted"),
    ("download --timeout word", DL + ["--out", "{tmp}/r.sqlite", "--timeout", "abc"], ["--timeout"],
     "usage line"),
    ("download --timeout 0", DL + ["--out", "{tmp}/r.sqlite", "--timeout", "0"], ["--timeout"],
     "accepted"),
    ("download --timeout nan", DL + ["--out", "{tmp}/r.sqlite", "--timeout", "nan"], ["--timeout"],
     "accepted"),
    ("download --reconnect negative", DL + ["--out", "{tmp}/r.sqlite", "--reconnect", "-1"],
     ["--reconnect"], "accepted"),
    ("download --out not SQLite", DL + ["--out", "{text}"], ["--out"], "traceback"),
    ("download --out another database", DL + ["--out", "{otherdb}"], ["--out"], "written into"),
    ("download --out missing directory", DL + ["--out", "{tmp}/no/dir/r.sqlite"], ["--out"], "exit 5"),
    ("download --json missing directory", DL + ["--out", "{tmp}/r.sqlite", "--json", "{tmp}/no/dir/r.json"],
     ["--json"], "found out after the download"),
    ("download --csv is a file", DL + ["--out", "{tmp}/r.sqlite", "--csv", "{text}"], ["--csv"],
     "found out after the download"),
    # export
    ("export not SQLite", ["export", "{text}", "--csv", "{tmp}/csv"], ["notes.txt"], "traceback"),
    ("export another database", ["export", "{otherdb}", "--csv", "{tmp}/csv"], ["other.sqlite"],
     "written into"),
    ("export missing", ["export", "{tmp}/nope.sqlite", "--csv", "{tmp}/csv"], ["nope.sqlite"], None),
    ("export --json missing directory", ["export", "{tmp}/r.sqlite", "--json", "{tmp}/no/dir/r.json"],
     ["--json"], "exit 5"),
    ("export --csv is a file", ["export", "{tmp}/r.sqlite", "--csv", "{text}"], ["--csv"], "exit 5"),
]


def _case(case_id, argv, names, _before):
    return pytest.param(argv, names, id=case_id)


@pytest.mark.parametrize("argv,names", [_case(*c) for c in BAD_VALUES])
def test_bad_value_is_a_one_line_usage_error(argv, names, files, capsys):
    if "{tmp}/r.sqlite" in " ".join(argv) and argv[0] == "export":
        from optoread_tools import readings_db

        readings_db.open_db(files["tmp"] + "/r.sqlite").close()
    before = {k: _digest(v) for k, v in files.items() if k in ("text", "otherdb")}
    argv = [a.format(**files) for a in argv]
    code, out, err = run(capsys, *argv)
    secret = next((s for s in ("zz5ecretzz", "xy5ecretxy") if s in argv), None)
    assert_usage_error(code, out, err, names, secret)
    # nothing that was not ours was touched
    assert {k: _digest(files[k]) for k in before} == before


def _digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_every_option_that_takes_a_value_is_in_the_table():
    """Each value-taking option of every subcommand (deploy excepted) has a bad-value case."""
    import argparse

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    covered = {}
    for _id, argv, names, _why in BAD_VALUES:
        covered.setdefault(argv[0], set()).update(a for a in argv if a.startswith("--"))
        covered[argv[0]].update(names)
    free_text = {  # options whose value is any text (a name, a path to create, a label)
        "read": {"--port", "--password"}, "sim": {"--password"},
        "decode-flash": {"--root"}, "device": {"--read", "--meter"},
        "download": {"--port", "--device", "--pin-env"}, "parse": set(), "export": set(), "pin": {"--port"},
    }
    missing = []
    for name, sp in sub.choices.items():
        if name == "deploy":
            continue
        for act in sp._actions:
            if not act.option_strings or act.nargs == 0:
                continue
            opt = next(o for o in act.option_strings if o.startswith("--"))
            if opt not in covered.get(name, set()) | free_text.get(name, set()) | {"--help"}:
                missing.append("%s %s" % (name, opt))
    assert missing == []


# ---------------------------------------------------------------- finding 7: device --flash


def _sqlite_copy(tmp_path):
    from optoread_tools import readings_db

    path = str(tmp_path / "readings.sqlite")
    db = readings_db.open_db(path)
    readings_db.stage(db, "dev", 1, "00000000", 0, b"precious bytes")
    db.close()
    return path


@pytest.mark.parametrize("extra", [[], ["--format"]])
def test_device_flash_refuses_a_file_that_is_not_littlefs(tmp_path, capsys, extra):
    path = _sqlite_copy(tmp_path)
    before = _digest(path)
    code, out, err = run(capsys, "device", "--probe", "tcp:127.0.0.1:9", "--flash", path, *extra)
    assert_usage_error(code, out, err, ["--flash", "LittleFS"])
    assert _digest(path) == before


def _lfs_image(path, files_=None, blocks=64):
    from littlefs import LittleFS, UserContext

    buf = bytearray(b"\xff" * (4096 * blocks))
    fs = LittleFS(context=UserContext(buffer=buf), block_size=4096, block_count=blocks, mount=False)
    fs.format()
    fs.mount()
    for name, data in (files_ or {}).items():
        with fs.open(name, "wb") as f:
            f.write(data)
    fs.unmount()
    with open(path, "wb") as f:
        f.write(buf)


def _lfs_names(path):
    from littlefs import LittleFS, UserContext

    with open(path, "rb") as f:
        buf = bytearray(f.read())
    fs = LittleFS(context=UserContext(buffer=buf), block_size=4096, block_count=len(buf) // 4096)
    return set(fs.listdir("/"))


@pytest.mark.skipif(not os.path.exists(MICROPYTHON), reason="no MicroPython unix port")
def test_device_flash_new_file_is_created_an_image_is_kept_and_format_erases_it(tmp_path, capsys):
    pytest.importorskip("littlefs")
    new = str(tmp_path / "new.img")
    code, out, err = run(capsys, "device", "--probe", "tcp:127.0.0.1:9", "--flash", new)
    assert code == 0, err
    assert "data" in _lfs_names(new)  # a missing file is created and formatted (nothing to lose)
    img = str(tmp_path / "store.img")
    _lfs_image(img, {"/keep.txt": b"mine"})
    code, out, err = run(capsys, "device", "--probe", "tcp:127.0.0.1:9", "--flash", img)
    assert code == 0, err
    assert "keep.txt" in _lfs_names(img)  # mounted as it is
    code, out, err = run(capsys, "device", "--probe", "tcp:127.0.0.1:9", "--flash", img, "--format")
    assert code == 0, err
    assert "keep.txt" not in _lfs_names(img) and "data" in _lfs_names(img)  # erased only when asked


@pytest.mark.skipif(not os.path.exists(MICROPYTHON), reason="no MicroPython unix port")
def test_device_flash_keeps_a_damaged_image_for_decode_flash(tmp_path, capsys):
    pytest.importorskip("littlefs")
    img = str(tmp_path / "store.img")
    _lfs_image(img, {"/keep.txt": b"mine"})
    with open(img, "r+b") as f:  # both superblock copies damaged after their magic
        for block in (0, 1):
            f.seek(block * 4096 + 16)
            f.write(b"\x00" * 64)
    before = _digest(img)
    code, out, err = run(capsys, "device", "--probe", "tcp:127.0.0.1:9", "--flash", img)
    assert_usage_error(code, out, err, ["--flash", "damaged", "decode-flash", "--format"])
    assert _digest(img) == before
    code, out, err = run(capsys, "device", "--probe", "tcp:127.0.0.1:9", "--flash", img, "--format")
    assert code == 0, err
    assert "data" in _lfs_names(img)


# ---------------------------------------------------------------- finding 9: silent success


@pytest.mark.parametrize("name", ["empty.txt", "empty.hex"])
def test_parse_of_an_empty_file_is_an_error(tmp_path, capsys, name):
    path = tmp_path / name
    path.write_bytes(b"  \r\n")
    code, out, err = run(capsys, "parse", str(path))
    assert code != 0 and "Traceback" not in err
    assert "empty" in err and name in err and "\n" not in err.strip()


@pytest.fixture
def lls_meter():
    model = sim_dlms.MeterModel(rows=10)
    port, stop = sim_dlms.serve_tcp(lambda: sim_dlms.DlmsServer(model, client=32, auth="low",
                                                                password=b"s3cr3tpw"))
    yield "127.0.0.1:%d" % port
    stop()


LLS = ["--client", "32", "--auth", "low", "--obis", "1.0.1.8.0.255", "--json", "--quiet"]


def _cli(*args, env=None):
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "tools"), os.path.join(ROOT, "firmware")])
    return subprocess.run([sys.executable, "-m", "optoread_tools.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=env)


def test_password_on_the_command_line_still_works(lls_meter):
    p = _cli("read", "--tcp", lls_meter, "--password", "s3cr3tpw", *LLS)
    assert p.returncode == 0, p.stderr
    assert '"1.0.1.8.0.255"' in p.stdout


def test_password_from_a_file_the_environment_or_a_prompt(lls_meter, capsys, tmp_path, monkeypatch):
    pw = tmp_path / "pw"
    pw.write_text("s3cr3tpw\n")
    code, out, err = run(capsys, "read", "--tcp", lls_meter, "--password-file", str(pw), *LLS)
    assert code == 0, err
    monkeypatch.setenv("OPTOREAD_PASSWORD", "s3cr3tpw")
    code, out, err = run(capsys, "read", "--tcp", lls_meter, *LLS)
    assert code == 0, err
    monkeypatch.delenv("OPTOREAD_PASSWORD")
    import getpass

    asked = []
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": asked.append(prompt) or "s3cr3tpw")
    code, out, err = run(capsys, "read", "--tcp", lls_meter, "--password", "-", *LLS)
    assert code == 0, err
    assert asked and "password" in asked[0].lower()
    # a wrong one from the environment: the error names the cause, never the secret
    monkeypatch.setenv("OPTOREAD_PASSWORD", "wr0ngpw9")
    code, out, err = run(capsys, "read", "--tcp", lls_meter, *LLS)
    assert code != 0 and "authentication" in err.lower()
    assert "wr0ngpw9" not in out + err and "s3cr3tpw" not in out + err


def test_keys_from_files_and_the_environment(tmp_path, capsys, monkeypatch):
    from optoread_tools import dlmsread

    ek, ak = "000102030405060708090A0B0C0D0E0F", "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"
    (tmp_path / "ek").write_text(ek + "\n")
    (tmp_path / "ak").write_text(ak)
    args = cli.build_parser().parse_args(
        ["read", "--tcp", "127.0.0.1:9", "--auth", "hls", "--key-file", str(tmp_path / "ek"),
         "--auth-key-file", str(tmp_path / "ak"), "--obis", "1.0.1.8.0.255"])
    dlmsread.resolve_secrets(args)
    st = dlmsread.settings_from_args(args)
    assert st.ek == bytes.fromhex(ek) and st.ak == bytes.fromhex(ak)
    monkeypatch.setenv("OPTOREAD_KEY", ek)
    monkeypatch.setenv("OPTOREAD_AUTH_KEY", ak)
    args = cli.build_parser().parse_args(["read", "--tcp", "127.0.0.1:9", "--auth", "hls",
                                          "--obis", "1.0.1.8.0.255"])
    dlmsread.resolve_secrets(args)
    st = dlmsread.settings_from_args(args)
    assert st.ek == bytes.fromhex(ek) and st.ak == bytes.fromhex(ak) and st.ciphered


def test_help_names_the_secret_sources(capsys):
    code, text, _err = run(capsys, "read", "--help")
    assert code == 0
    assert "--password-file" in text and "OPTOREAD_PASSWORD" in text and "--key-file" in text


def test_a_subprocess_gets_one_line_too():
    """The same as a user runs it (a subprocess on this tree's modules): no traceback."""
    p = _cli("read", "--tcp", "127.0.0.1:9", "--server", "1/abc", "--obis", "1.0.1.8.0.255")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "--server" in p.stderr and "\n" not in p.stderr.strip()
