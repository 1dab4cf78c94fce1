# Every target bootstraps .venv from the hash-locked requirements, idempotently.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LOCKS := requirements/bootstrap.lock requirements/build.lock requirements/dev.lock

export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: install run test bench lint fmt lock clean

install: $(STAMP)

$(STAMP): pyproject.toml $(LOCKS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/bootstrap.lock
	$(BIN)/uv pip sync --quiet --python $(BIN)/python --require-hashes requirements/dev.lock requirements/build.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/plume demo

test: $(STAMP) lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/pytest -m bench -s -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check services tests migrations
	$(BIN)/ruff format --check services tests migrations
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff check --fix services tests migrations
	$(BIN)/ruff format services tests migrations

# Re-resolve the locks after changing pyproject.toml (needs the package registry).
lock: $(STAMP)
	$(BIN)/uv pip compile --quiet pyproject.toml --generate-hashes --python-version 3.11 -o requirements/main.lock
	$(BIN)/uv pip compile --quiet pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements/dev.lock
	$(BIN)/uv pip compile --quiet requirements/build.in --generate-hashes -o requirements/build.lock
	$(BIN)/uv pip compile --quiet requirements/bootstrap.in --generate-hashes -o requirements/bootstrap.lock

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
