# fakescope: `make scan VIDEO=path/to/video.mp4` sets everything up and scans; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
VIDEO ?= ../shared/data/ffpp-mini/manipulated_sequences/Deepfakes/c23/videos/469_481.mp4
OUT ?= fakescope-results
SCAN_ARGS ?=

.PHONY: setup scan test benchmark clean

$(BIN)/fakescope: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/fakescope

scan: setup
	$(BIN)/fakescope scan "$(VIDEO)" --out "$(OUT)" $(SCAN_ARGS)

test: setup
	$(BIN)/python -m pytest -q

benchmark: setup
	$(BIN)/python benchmarks/scan_speed.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
