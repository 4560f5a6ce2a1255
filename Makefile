# Two commands set Kurator up on a fresh machine:
#   make run    - install, create the SQLite database with demo data, run the web app and the scheduler
#   make test   - install and run the test suite (SQLite; PostgreSQL when KURATOR_TEST_DATABASE_URL is set)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint bench clean

$(BIN)/kurator: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/kurator

run: install
	$(BIN)/kurator init-db
	$(BIN)/kurator demo
	$(BIN)/kurator deploy --by setup workflows/*.bpmn forms/*.json
	$(BIN)/kurator run --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/engine_bench.py

clean:
	rm -rf $(VENV) instance .pytest_cache
