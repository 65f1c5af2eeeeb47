# Two commands do all set-up: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Notebooks that `make demo` runs (SynthFaces, shipped weights, no training), in order. 02-05 need the
# SynthFaces weights that notebook 00 produces: until data/weights/synthfaces/ holds them, only 01 runs.
WEIGHTS := $(wildcard data/weights/synthfaces/generator.safetensors)
DEMO_NOTEBOOKS := $(basename $(notdir $(wildcard notebooks/01_data_prep.ipynb \
	$(if $(WEIGHTS),$(wildcard notebooks/0[2-5]_*.ipynb)))))

.PHONY: setup test demo bench lab clean

setup: $(STAMP)

# Re-installs only when pyproject.toml changes: idempotent and quick on a second call.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

# Unit tests, then nbval on the committed notebooks (only cells marked NBVAL_CHECK_OUTPUT are compared).
test: $(STAMP)
	$(PY) -m pytest tests -q
	$(if $(DEMO_NOTEBOOKS),$(PY) -m pytest --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg -q \
		$(addprefix notebooks/,$(addsuffix .ipynb,$(DEMO_NOTEBOOKS))))

demo: $(STAMP)
	$(PY) -m styleclip_utils.runs $(DEMO_NOTEBOOKS)

bench: $(STAMP)
	$(PY) benchmarks/bench_stylegan2.py

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf runs .pytest_cache
