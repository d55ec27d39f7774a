# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The stamp is rebuilt whenever the declared or pinned dependencies change.
STAMP := $(VENV)/.installed

.PHONY: help venv browser test test-quick lint demo bench clean

help:
	@echo "make demo   set up .venv and record example runs in a scratch repository"
	@echo "make test   set up .venv, lint, and run the whole test suite"
	@echo "make test-quick  the tests not marked slow, without lint"
	@echo "make lint   ruff and mypy on src/"
	@echo "make browser  install Debian's headless Chromium for the web view's tests (CI does)"
	@echo "make bench  every benchmark beside MLflow, W&B and DVC into benchmarks/RESULTS.md (15 min;"
	@echo "            QUICK=1: 2 min, smaller sizes)"

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c constraints.txt -e '.[dev,torch]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy src

# The web view's tests drive headless Chromium from Debian's packages. CI (CI=true) installs
# it; elsewhere `make browser` does, and without it those tests are skipped with the reason.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	else apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		chromium chromium-driver >/dev/null; fi

# Both cores, each taking the next test as it frees up (`worksteal`): the long torch and
# integration tests no longer leave one core idle at the end; about 5 minutes on 2 cores.
test: lint $(if $(CI),browser)
	$(BIN)/python -m pytest -n 2 --dist worksteal

test-quick: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -n 2 --dist worksteal

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[bench]'
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/bench.py $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) build src/*.egg-info
