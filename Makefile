# Two commands on a fresh clone:  `make demo` (main job on the embedded data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint leaderboard clean device-lab device-lab-test

$(BIN)/bench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch 2.14.1 / torchvision 0.29.1 are the newest the suite supports (installable offline here).
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/bench

setup: $(BIN)/bench

# The deployment runtimes' optional extras (LiteRT, OpenVINO), so their tests run rather than skip.
$(VENV)/.deploy-extras: $(BIN)/bench
	$(BIN)/pip install --quiet -e '.[dev,litert,openvino]'
	touch $@

demo: setup
	$(BIN)/bench run --task detection --backbone mnv2

# Real-data tests run when BENCH_REALDATA names the folder of real slices and official weights
# (.ci/run sets it to ../shared/realdata); without it they skip, saying why.
test: setup $(VENV)/.deploy-extras
# One pytest process for the whole suite. conftest.py fails a test that leaves sys.stdout/stderr closed or a
# progress bar running, and points a library's log handler bound to a closed capture stream at the current one.
	$(BIN)/python -m pytest -x -q -p no:cacheprovider --durations=25 tests

# An aarch64 target on this machine (Debian arm64 under qemu-user: an ssh board and an adb device on
# loopback), built once under $$BENCH_CACHE (about 10-20 minutes the first time; needs root), then the
# device tests against it. Its timings are the emulator's: records say "emulated", leaderboards refuse them.
device-lab:
	bash .ci/device-lab build

device-lab-test: setup $(VENV)/.deploy-extras device-lab
	BENCH_DEVICE_LAB=1 $(BIN)/python -m pytest -x -q -p no:cacheprovider tests/test_device_lab.py

# ruff, then the import contracts in pyproject.toml (layers backbones <- tasks <- benchmark, no cycles).
lint: setup
	$(BIN)/ruff check backbones tasks benchmark benchmarks tests
	$(BIN)/lint-imports

leaderboard: setup
	$(BIN)/bench leaderboard

clean:
	rm -rf $(VENV) runs .pytest_cache

# The documentation site (docs/, mkdocs.yml), strict, into site/ (SITE=DIR elsewhere): .ci/build-docs runs this.
SITE ?= site
$(VENV)/.docs-extras: $(BIN)/bench
	$(BIN)/pip install --quiet -e '.[docs]'
	touch $@

.PHONY: docs
docs: setup $(VENV)/.docs-extras
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir $(SITE)
