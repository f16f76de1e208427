# make run   - set up (if needed) and start the dashboard on the embedded default
# make test  - set up (if needed) and run the whole test suite
# make setup - create .venv with a Python >= 3.13 and install requirements.txt (idempotent, quiet)
# make bench - run the benchmarks, print one JSON document, write bench/results/latest.json

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.requirements.stamp
PORT   ?= 8501
PYTEST_ARGS ?=

.PHONY: setup run test bench server clean

setup: $(STAMP)
	@:

$(PY):
	@base=$$(scripts/find-python) || exit 1; \
	echo "creating $(VENV) with $$base"; \
	"$$base" -m venv $(VENV) && $(PY) -m pip install --quiet --upgrade pip

$(STAMP): requirements.txt pyproject.toml setup.py backup_core/codec/_speedups.c $(PY)
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)' || \
	  { echo "error: $(VENV) uses Python < 3.13; remove $(VENV) and run make setup again" >&2; exit 1; }
	@echo "installing requirements.txt into $(VENV)"
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

run: setup
	@$(PY) -m webui.first_start
	$(PY) -m streamlit run app.py --server.port $(PORT) --server.headless true \
	  --browser.gatherUsageStats false

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	@$(PY) -m bench.run $(BENCH_ARGS)

server: setup
	$(PY) -m backup_core server

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis test-artifacts
