# The newcomer's two commands are `make run` and `make test`; both install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STATE ?= $(CURDIR)/.state
PORT ?= 3000
API_PORT ?= 8020
export DAGSTER_HOME := $(STATE)/dagster
export COLLAB_STATE_DIR := $(STATE)
PYTEST_ARGS ?=

.PHONY: install lint run test bench clean

# Re-install only when the dependency list changes.
$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $@

install: $(VENV)/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

# The data API runs beside the UI and stops with it (Ctrl-C reaches the whole group). Its
# first start issues a token for "demo", shown once; only its hash is kept.
run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/collab-demo init
	$(BIN)/collab-demo model-repo
	@test -s $(STATE)/api_tokens || { echo "data API token for 'demo' (shown once):"; \
	  $(BIN)/collab-data-api token demo --file $(STATE)/api_tokens; }
	$(BIN)/collab-data-api serve --host 127.0.0.1 --port $(API_PORT) & api=$$!; \
	trap 'kill $$api 2> /dev/null' EXIT; \
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(PORT)

# Lint first: a style or import mistake fails in seconds, before the slow suite starts.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -n 2 $(PYTEST_ARGS)

bench: install
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(STATE)
