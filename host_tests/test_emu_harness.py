"""The emulated-Pico harness (optoread_tools.emu) without booting anything: it says why it cannot
run instead of failing, and refuses images that are not the Pico's."""

import os

import pytest
from optoread_tools import emu


def test_missing_emulator_material_is_a_reason_not_a_failure(tmp_path, monkeypatch):
    monkeypatch.setenv(emu.EMU_ENV, str(tmp_path))
    assert emu.emu_source() is None
    assert "absent" in emu.unavailable()
    with pytest.raises(emu.EmuError, match="absent"):
        emu.prepare()


def test_missing_node_is_a_reason(tmp_path, monkeypatch):
    src = tmp_path / "emu"
    src.mkdir()
    for name in ("run-mpy.mjs", "package.json", "firmware.uf2", "bootrom_b1.bin"):
        (src / name).write_bytes(b"")
    monkeypatch.setenv(emu.EMU_ENV, str(src))
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    assert emu.emu_source() == str(src)
    assert "node is not installed" in emu.unavailable()


def test_micropython32_is_found_beside_the_emulator_or_not_at_all(tmp_path, monkeypatch):
    monkeypatch.setenv(emu.EMU_ENV, str(tmp_path))
    assert emu.micropython32() is None
    exe = tmp_path / "micropython32"
    exe.write_bytes(b"#!/bin/sh\n")
    os.chmod(exe, 0o755)
    assert emu.micropython32() == str(exe)


def test_an_image_that_is_not_the_picos_is_refused(tmp_path):
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\xff" * 8192)
    with pytest.raises(emu.EmuError):
        emu.check_image(str(junk))
    with pytest.raises(emu.EmuError):
        emu.Pico(str(junk)).start()
