# mamlpaper — `make figures` regenerates every figure, `make test` checks everything.
# Both set themselves up: a .venv with the project and the pinned versions of constraints.txt.

SHELL := /bin/bash
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help

PROFILE ?= default
# Where the notebooks' sweeps run their chunks (mamlpaper.runtime.executor): in-process by default,
# EXECUTOR=processes:N for N local processes, DASK_SCHEDULER=tcp://host:8786 for a Dask cluster.
DASK_SCHEDULER ?=
EXECUTOR ?= $(DASK_SCHEDULER)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BUILD := build/$(PROFILE)
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.py))
RUNS := $(patsubst notebooks/%.py,$(BUILD)/%.ipynb,$(NOTEBOOKS))
PACKAGE := $(sort $(wildcard mamlpaper/*.py mamlpaper/*/*.py mamlpaper/*.mplstyle))

# Real data (Omniglot, MiniImagenet): $MAMLPAPER_DATA, else ../shared/data when it exists, else data/.
MAMLPAPER_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),$(CURDIR)/data)
export MAMLPAPER_DATA

# Sweeps page-fault their freed activations back in unless glibc keeps freed memory; that is a
# process-wide setting, asked for here for the processes `make` starts (mamlpaper/cpu_tuning.py).
export GLIBC_TUNABLES ?= glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647

.PHONY: help setup figures readme test notebooks lab benchmarks lock clean distclean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'
	@echo "  options: PROFILE=smoke|default|paper (default: $(PROFILE)), PYTHON=python3.x for the venv,"
	@echo "           EXECUTOR=processes:N or DASK_SCHEDULER=tcp://host:8786 to run sweeps' chunks elsewhere"

setup: $(STAMP) ## create .venv and install the project with pinned dependencies

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[notebooks,test,distributed]'
	@touch $@

figures: $(STAMP) ## execute every notebook (PROFILE=...) into build/, write figures/, render README.md
	@mkdir -p $(BUILD)
	@status=0; $(MAKE) --no-print-directory -k $(RUNS) || status=1; \
	  $(PY) -m mamlpaper.pipeline summary $(BUILD) || status=1; \
	  $(PY) -m mamlpaper.readme || status=1; exit $$status

readme: $(STAMP) ## render README.md from README.template.md and the numbers in figures/*.json
	$(PY) -m mamlpaper.readme

$(BUILD)/%.ipynb: notebooks/%.py $(PACKAGE) $(STAMP)
	$(PY) -m mamlpaper.pipeline run $< $@ --profile $(PROFILE) --executor '$(EXECUTOR)'

# 06 reads the measured maps the others write (figures/maps/), so it runs after them.
$(BUILD)/06_guideline.ipynb: $(filter-out $(BUILD)/06_guideline.ipynb,$(RUNS))

test: $(STAMP) ## run the test suite, including a smoke run of every notebook
	$(PY) -m pytest

notebooks: $(STAMP) ## write the paired .ipynb next to each notebook for interactive use
	$(VENV)/bin/jupytext --to ipynb --update $(NOTEBOOKS)

lab: notebooks ## open JupyterLab on the notebooks
	$(VENV)/bin/jupyter lab notebooks/

benchmarks: $(STAMP) ## run the speed benchmarks in benchmarks/
	@for b in $(wildcard benchmarks/*.py); do echo "== $$b"; $(PY) $$b || exit 1; done

lock: ## re-resolve constraints.txt from pyproject.toml (needs the package index)
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip install --quiet torch==2.13.0 -e '.[notebooks,test,distributed]'
	{ echo "# Pinned versions that 'make' installs with (pip -c). Regenerate: make lock"; \
	  build/lock-venv/bin/pip freeze --exclude-editable | sed -E 's/^torch==([0-9.]+)\+cpu$$/torch==\1/'; } > constraints.txt
	rm -rf build/lock-venv

clean: ## remove build/ (executed notebooks, sweep caches) and paired .ipynb
	rm -rf build notebooks/*.ipynb notebooks/.ipynb_checkpoints

distclean: clean ## also remove .venv
	rm -rf $(VENV)
