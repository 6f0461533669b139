# fakescope: `make scan VIDEO=path/to/video.mp4` sets everything up and scans; `make test` runs the tests (all of
# them, and the layer contract); `make test-fast` the quick inner loop (no test marked slow).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
VIDEO ?= ../shared/data/ffpp-mini/manipulated_sequences/Deepfakes/c23/videos/469_481.mp4
OUT ?= fakescope-results
SCAN_ARGS ?=
FUZZ_SECONDS ?= 300

.PHONY: setup scan test test-fast lint-imports fuzz benchmark clean

$(BIN)/fakescope: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/fakescope

scan: setup
	$(BIN)/fakescope scan "$(VIDEO)" --out "$(OUT)" $(SCAN_ARGS)

test: lint-imports
	$(BIN)/python -m pytest -q

test-fast: lint-imports
	$(BIN)/python -m pytest -q -m "not slow"

# The layer contract of docs/ARCHITECTURE.md ([tool.importlinter] in pyproject.toml).
lint-imports: setup
	$(BIN)/lint-imports

# Property tests of every entry point that takes outside data, for FUZZ_SECONDS shared among the properties; failing
# examples are saved in tests/fuzz-corpus/ (commit them: every normal test run replays them).
fuzz: setup
	-FAKESCOPE_FUZZ_SECONDS=$(FUZZ_SECONDS) nice -n 10 $(BIN)/python -m pytest -q -rs -p no:cacheprovider \
		tests/test_fuzz.py
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_fuzz.py

benchmark: setup
	$(BIN)/python benchmarks/scan_speed.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
