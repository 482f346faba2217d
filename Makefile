# Two commands do all the set-up on a fresh clone:
#   make train   create .venv if missing, install, run the main job
#   make test    create .venv if missing, install (with the distributed extra, Ray,
#                so the Ray executor's tests run), run the default test suite
# The install is idempotent: a stamp file is newer than the files it was made
# from, so a second call installs nothing. saferl_tf goes in editable, so edits
# to its modules and presets need no reinstall; setup.cfg (dependencies, console
# scripts, package data) and pyproject.toml (build system) do, hence the stamp's
# prerequisites. `make wheel` builds the wheel users install with pip.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.saferl_tf-installed
DISTRIBUTED_STAMP := $(VENV)/.saferl_tf-distributed-installed
PIP := $(PY) -m pip --quiet --disable-pip-version-check

ENV_ID ?= sgym_Safexp-PointGoal2-v0
ARGS ?=
PYTEST_ARGS ?=
# Test processes (pytest-xdist): one per core of the 2-core machine CI runs on;
# TEST_WORKERS=0 runs in this process (pdb, -s).
TEST_WORKERS ?= 2

.PHONY: venv train test wheel lint format bench-env clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt setup.cfg pyproject.toml
	@test -x $(PY) || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing saferl_tf and its dependencies into $(VENV) (a few minutes on first run)"
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps -r requirements-nodeps.txt
	$(PIP) install --no-deps --no-build-isolation -e .
	@touch $(STAMP)

train: venv
	$(VENV)/bin/saferl-train --env=$(ENV_ID) --safety $(ARGS)

# The optional Ray extra (setup.cfg's `distributed`), pinned in its own file.
$(DISTRIBUTED_STAMP): $(STAMP) requirements-distributed.txt
	$(PIP) install -r requirements-distributed.txt
	@touch $(DISTRIBUTED_STAMP)

test: venv $(DISTRIBUTED_STAMP)
	$(PY) -m pytest tests -n $(TEST_WORKERS) $(PYTEST_ARGS)

wheel: venv
	$(PIP) wheel --no-deps --no-build-isolation -w dist .

lint: venv
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .

format: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench-env: venv
	$(PY) tools/bench_env.py

clean-venv:
	rm -rf $(VENV)
