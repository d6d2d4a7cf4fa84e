# The newcomer's two commands are `make run` and `make test`; both install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STATE ?= $(CURDIR)/.state
PORT ?= 3000
API_PORT ?= 8020
# A team's own instance and state folder, when its shell names them: `make check` checks those.
# Everything else (`make run`, the demo) keeps to the project's own .state/.
TEAM_DAGSTER_HOME := $(DAGSTER_HOME)
TEAM_STATE_DIR := $(COLLAB_STATE_DIR)
export DAGSTER_HOME := $(STATE)/dagster
export COLLAB_STATE_DIR := $(STATE)
# The UI's notebook view renders reports with nbconvert's page minus its CDN scripts (docs/reports.md).
export JUPYTER_PATH := $(CURDIR)/collab_pipelines/reports/jupyter
PYTEST_ARGS ?=
# Extras to install: the tests and benchmarks for a checkout; none for the production image.
EXTRAS ?= dev

.PHONY: install lint run check test test-fast test-slow test-faults screenshot bench clean

# Re-install only when the dependency list changes.
$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '$(if $(EXTRAS),.[$(EXTRAS)],.)'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $@

install: $(VENV)/.installed

# The embedded instance's settings (SQLite under $DAGSTER_HOME), from the project's dagster.yaml;
# an edit there reaches the instance on the next `make run`. A team's own $DAGSTER_HOME with its
# own dagster.yaml is left alone.
$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

# The demo: its own code location (workspace.yaml) on its own configuration folder. The data
# API runs beside the UI; `collab-demo up` stops both within seconds of Ctrl-C or SIGTERM. The
# first start issues a data API token for "demo", shown once; only its hash is kept.
run: export COLLAB_CONFIG_DIR := $(CURDIR)/collab_pipelines/demo/config
run: export COLLAB_SUITES_FILE := $(STATE)/suites.yaml
run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/collab-demo init
	$(BIN)/collab-demo model-repo
	@test -s $(STATE)/api_tokens || { echo "data API token for 'demo' (shown once):"; \
	  $(BIN)/collab-data-api token demo --file $(STATE)/api_tokens; }
	exec $(BIN)/collab-demo up --workspace workspace.yaml --port $(PORT) --api-port $(API_PORT)

# For a team's CI: load the product location from the configuration folder ($COLLAB_CONFIG_DIR,
# default config/) in strict mode, where a broken template, suite or catalog entry fails the
# load instead of being logged and skipped. Exits non-zero on any problem.
# The team's DAGSTER_HOME and COLLAB_STATE_DIR are kept (a PostgreSQL instance stays PostgreSQL),
# and the check says which instance it used before it starts.
CONFIG ?= $(CURDIR)/config
check: export DAGSTER_HOME := $(or $(TEAM_DAGSTER_HOME),$(STATE)/dagster)
check: export COLLAB_STATE_DIR := $(or $(TEAM_STATE_DIR),$(STATE))
check: install $(if $(TEAM_DAGSTER_HOME),,$(STATE)/dagster/dagster.yaml)
	@$(BIN)/python -c 'import dagster as dg, os; i = dg.DagsterInstance.get(); \
	  print("make check: Dagster instance %s (%s), state folder %s" % (i.root_directory, \
	  type(i.run_storage).__name__, os.environ["COLLAB_STATE_DIR"])); i.dispose()'
	COLLAB_STRICT=1 COLLAB_CONFIG_DIR=$${COLLAB_CONFIG_DIR:-$(CONFIG)} \
	  $(BIN)/dagster definitions validate -m collab_pipelines.definitions -a defs

# Lint first: a style or import mistake fails in seconds, before the slow suite starts.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# The inner loop: everything but the end-to-end tests (marked e2e: dagster dev, the daemon, the
# browser, make run), which take most of `make test`'s time. `make test` still runs them all.
test-fast: install lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -n 2 --dist loadgroup -m "not e2e" $(PYTEST_ARGS)

# The tests too slow for `make test` (marked slow: issue 25's acceptance, 14 commits of a
# repository watched by URL and two repositories pushed within one poll, under the daemon).
test-slow: install
	COLLAB_SLOW_TESTS=1 PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -n 2 --dist loadgroup -m slow $(PYTEST_ARGS)

# The fault-injection suite alone (docs/reliability.md); `make test` runs it too.
test-faults: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -n 2 --dist loadgroup collab_pipelines_tests/faults $(PYTEST_ARGS)

# README's picture of the report link, taken by the browser test when asked to (a plain test
# run never writes into the tree). Commit docs/reports-open-in-one-click.png afterwards.
screenshot: install
	COLLAB_DOCS_SCREENSHOT=$(CURDIR)/docs/reports-open-in-one-click.png PATH="$(CURDIR)/$(BIN):$$PATH" \
	  $(BIN)/pytest collab_pipelines_tests/e2e/test_browser.py -k one_click

bench: install
	for script in benchmarks/[!_]*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(STATE)
