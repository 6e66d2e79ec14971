# Quick start: `make demo` and `make test`. Both set themselves up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_CONFIG := config/digest.toml
# The sample articles are dated 21 July – 10 August 2025; running as of this moment gives the
# same issue whatever day the demo is run.
DEMO_AS_OF := 2025-08-11T09:00

.PHONY: demo test bench golden docs lint setup system-deps js-deps clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/digest --config $(DEMO_CONFIG) run --as-of $(DEMO_AS_OF)
	$(BIN)/digest --config $(DEMO_CONFIG) build --no-ingest --as-of $(DEMO_AS_OF) --out out
	@echo "issue:  out/issue.html and out/issue.txt (a sample message: out/issue.eml)"
	@echo "outbox: out/outbox/ (one .eml per subscriber)"

# System packages some tests need (installed by the project's own script; skipped when present).
system-deps:
	bash scripts/system-deps.sh

# Style, types, and the layers of ARCHITECTURE.md (configured in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check digest tests bench
	$(BIN)/ruff format --check digest tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint system-deps
	$(BIN)/python -m pytest -q

# JavaScript packages the benchmarks compare against (npm, into bench/js/node_modules).
js-deps:
	bash scripts/js-deps.sh

bench: $(STAMP) js-deps
	@for b in bench/*.py; do [ -e "$$b" ] || continue; echo "== $$b"; $(BIN)/python $$b || exit 1; done

golden: $(STAMP)
	DIGEST_UPDATE_GOLDEN=1 $(BIN)/python -m pytest -q tests -k golden

# The config reference, generated from the settings' models (a test fails when it is out of date).
docs: $(STAMP)
	$(BIN)/python -m digest.config.reference > docs/config.md

clean:
	rm -rf out config/var .pytest_cache
