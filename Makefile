# Two commands do all set-up: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# The notebooks `make demo` runs and nbval checks, in order (SynthFaces, shipped weights; 00 with its quick
# parameters). Each writes into runs/<notebook>/ and runs/train/, never into tracked files.
NOTEBOOKS := 00_train_synthfaces_models 01_data_prep 02_e4e_encoder 03_latent_optimization 04_latent_mapper 05_global_directions 06_playground
NBVAL := --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg
# nbval re-runs the notebooks on the reference CPU, as their committed outputs were made (styleclip_utils/runs.py
# says why; tests/test_runs.py holds this line equal to runs.REFERENCE_CPU).
REFERENCE_CPU := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_CBWR=AVX2 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2

.PHONY: setup test test-slow test-fast demo figures bench lab serve clean

setup: $(STAMP)

# Re-installs only when pyproject.toml changes: idempotent and quick on a second call.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,app]"
	@touch $(STAMP)

# Unit tests, then nbval on the committed notebooks (only the cells marked NBVAL_CHECK_OUTPUT are compared).
# The notebooks' papermill runs with tiny models and the FFHQ preset (marked slow) are `make test-slow`;
# CI (.ci/run) runs both.
test: $(STAMP)
	$(PY) -m pytest tests -q -m "not slow"
	$(REFERENCE_CPU) $(PY) -m pytest $(NBVAL) -q $(addprefix notebooks/,$(addsuffix .ipynb,$(NOTEBOOKS)))

test-slow: $(STAMP)
	$(PY) -m pytest tests -q -m slow

# The quick loop while developing: the unit tests alone.
test-fast: $(STAMP)
	$(PY) -m pytest tests -q -m "not slow"

# The demo: every notebook, the heavy ones with demo-sized parameters so that the tour fits in ~10 minutes on 2 CPU
# cores (as 00 runs its quick recipe): 02 a shorter optimisation baseline, 03 three of its seven spaces, 04 and 05
# without their optimisation rows. The committed notebooks (nbval) hold the full runs.
demo: $(STAMP)
	$(PY) -m styleclip_utils.runs 00_train_synthfaces_models 01_data_prep
	$(PY) -m styleclip_utils.runs 02_e4e_encoder -p project_steps 50
	$(PY) -m styleclip_utils.runs 03_latent_optimization -p spaces '["w+", "s", "medium"]'
	$(PY) -m styleclip_utils.runs 04_latent_mapper 05_global_directions -p compare_steps 0
	$(PY) -m styleclip_utils.runs 06_playground

# The committed figures (README, docs): the notebooks with figures_dir=figures. The only target that
# writes into tracked files.
figures: $(STAMP)
	$(PY) -m styleclip_utils.runs 03_latent_optimization -p figures_dir figures
	$(PY) -c "from styleclip_utils.data.render import sample_grid; sample_grid().save('figures/synthfaces_samples.png')"

bench: $(STAMP)
	$(PY) benchmarks/bench_stylegan2.py

# The upload-and-edit app on http://localhost:$(PORT) (SynthFaces; docs/app.md: FFHQ, the API, the container).
PORT ?= 8000
serve: $(STAMP)
	$(PY) -m styleclip_utils.app --port $(PORT) $(ARGS)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf runs .pytest_cache
