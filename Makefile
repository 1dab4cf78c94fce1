# Every target bootstraps .venv from the hash-locked requirements, idempotently.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LOCKS := requirements/bootstrap.lock requirements/build.lock requirements/dev.lock
# checkov (tests/deploy/test_checkov.py) in a virtualenv of its own, from its own hash-locked
# set: its dependency tree would constrain the project's. The tests find it at .venv-tools.
TOOLS_VENV := .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed-stamp
# LiteLLM's own proxy, the baseline `make bench` measures Plume against (tests/bench/
# test_versus_proxy.py), in a virtualenv of its own: only `make bench` installs it.
PROXY_VENV := .venv-proxy
PROXY_STAMP := $(PROXY_VENV)/.installed-stamp

export LITELLM_LOCAL_MODEL_COST_MAP := True

# The fast lane: every test but the slow ones (processes, servers, seconds by design), on
# both cores, each xdist worker with its own databases and ports; a test file stays on one
# worker (module-scoped fixtures). The slow lane runs after it, on both cores too: its tests
# mostly wait for the processes they start (about 50 s instead of 75 s serially).
FAST := -n 2 --dist loadfile -m "not slow and not bench"
SLOW := -n 2 --dist loadfile -m slow

.PHONY: install bench-proxy run test test-fast test-slow bench screenshots lint fmt lock clean

install: $(STAMP) $(TOOLS_STAMP)

$(STAMP): pyproject.toml $(LOCKS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/bootstrap.lock
	$(BIN)/uv pip sync --quiet --python $(BIN)/python --require-hashes requirements/dev.lock requirements/build.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	@touch $(STAMP)

$(TOOLS_STAMP): requirements/tools.lock requirements/bootstrap.lock
	@test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/bootstrap.lock
	$(TOOLS_VENV)/bin/uv pip sync --quiet --python $(TOOLS_VENV)/bin/python --require-hashes requirements/tools.lock
	@touch $(TOOLS_STAMP)

bench-proxy: $(PROXY_STAMP)

$(PROXY_STAMP): requirements/bench-proxy.lock requirements/bootstrap.lock
	@test -x $(PROXY_VENV)/bin/python || $(PYTHON) -m venv $(PROXY_VENV)
	$(PROXY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/bootstrap.lock
	$(PROXY_VENV)/bin/uv pip sync --quiet --python $(PROXY_VENV)/bin/python --require-hashes requirements/bench-proxy.lock
	@touch $(PROXY_STAMP)

run: $(STAMP)
	$(BIN)/plume demo

test: $(STAMP) $(TOOLS_STAMP) lint
	$(BIN)/pytest $(FAST)
	$(BIN)/pytest $(SLOW)

test-fast: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/pytest $(FAST)

test-slow: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/pytest $(SLOW)

bench: $(STAMP) $(PROXY_STAMP)
	$(BIN)/pytest -m bench -s -p no:cacheprovider

# The workspace's screenshots (docs/images) and axe table (docs/workspace.md), from the
# browser tests (Debian's chromium and chromium-l10n).
screenshots: $(STAMP)
	PLUME_UPDATE_DOCS=1 $(BIN)/pytest -p no:cacheprovider -m slow tests/workspace

lint: $(STAMP)
	$(BIN)/ruff check services tests migrations
	$(BIN)/ruff format --check services tests migrations
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff check --fix services tests migrations
	$(BIN)/ruff format services tests migrations

# Re-resolve the locks after changing pyproject.toml (needs the package registry). spaCy and
# thinc depend on setuptools at run time: constrained to the build's pin, or the two locks clash.
lock: $(STAMP)
	$(BIN)/uv pip compile --quiet pyproject.toml -c requirements/build.in --generate-hashes --python-version 3.11 -o requirements/main.lock
	$(BIN)/uv pip compile --quiet pyproject.toml -c requirements/build.in --extra dev --generate-hashes --python-version 3.11 -o requirements/dev.lock
	$(BIN)/uv pip compile --quiet requirements/build.in --generate-hashes -o requirements/build.lock
	$(BIN)/uv pip compile --quiet requirements/bootstrap.in --generate-hashes -o requirements/bootstrap.lock
	$(BIN)/uv pip compile --quiet requirements/tools.in --generate-hashes --python-version 3.11 -o requirements/tools.lock
	$(BIN)/uv pip compile --quiet requirements/bench-proxy.in --generate-hashes --python-version 3.11 -o requirements/bench-proxy.lock

clean:
	rm -rf $(VENV) $(TOOLS_VENV) $(PROXY_VENV) .mypy_cache .pytest_cache .ruff_cache
