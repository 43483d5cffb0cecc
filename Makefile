# Everything a fresh machine needs is set up by these targets: a virtualenv in .venv with the project
# (for the demo) and its dev tools (for the tests). `make demo` runs the main job, `make test` the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed

# Debian packages that some tests use; without them those tests are skipped, each saying so: ffmpeg and
# GStreamer's RTSP server (capture from RTSP), chromium (the map, in a real browser), Mosquitto and
# openssl (deployment, TLS, broker-restart tests). `sudo make system-deps` installs them; .ci/run does.
SYSTEM_PACKAGES := ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base \
  gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad gstreamer1.0-rtsp \
  chromium mosquitto openssl systemd

.PHONY: install demo test lint bench mutate train-lpe system-deps clean

$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUNTIME)

# The tests' independent Sparkplug B decoder is Eclipse Tahu's JavaScript library (tests/sparkplug.py),
# installed from the npm registry with the machine's Node.js, as its lock file pins it.
$(STAMP): $(RUNTIME) tests/sparkplug_decoder/package-lock.json
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	command -v npm >/dev/null || { echo "npm (Node.js) is needed for the Sparkplug tests' decoder" >&2; exit 1; }
	npm ci --prefix tests/sparkplug_decoder --silent --no-audit --no-fund
	touch $(STAMP)

install: $(STAMP)

system-deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES)

# The whole depot on this machine: broker, cloud service, four edge nodes on simulated cameras and the
# live map; prints the map's URL and keys; Ctrl-C stops it. Options: `depotwatch demo --help`.
demo: $(RUNTIME)
	$(BIN)/depotwatch demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	cd ansible && PATH="$(abspath $(BIN)):$$PATH" ansible-lint -q

# Benchmarks print their tables and write bench/results/*.json; speed targets live here, not in tests.
bench: $(STAMP)
	$(BIN)/python -m bench.lpe
	$(BIN)/python -m bench.flows

# Mutation testing of the core pure modules (docs/testing.md): kill rate per module and the survivors.
# Minutes per module, so not part of `test`; MODULE=spool (or codec, calibration, ...) runs one.
mutate: $(STAMP)
	$(BIN)/python -m bench.mutate $(MODULE)

# Re-trains the LPE from simulator data into ir_models/lpe/2.0.0/ (about 60 minutes on 2 cores): first
# on 96 placements of 100 frames, then from those weights on 288 placements of 33 frames.
train-lpe: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,train]'
	$(BIN)/python -m training.lpe.train --out data/lpe/stage1 --placement-seeds 8 --epochs 12
	$(BIN)/python -m training.lpe.train --init data/lpe/stage1/lpe_state.pt --epochs 10 --max-lr 1.5e-3
	$(BIN)/python -m bench.lpe --update-card

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
