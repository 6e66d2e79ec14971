# Quick start: `make demo` and `make test`. Both set themselves up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_CONFIG := config/digest.toml
# The sample articles are dated 21 July – 10 August 2025; running as of this moment gives the
# same issue whatever day the demo is run.
DEMO_AS_OF := 2025-08-11T09:00

.PHONY: demo test test-postgres bench golden docs lint setup system-deps js-deps clean

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

# The state-database tests run a second time against PostgreSQL: scripts/postgres.sh starts a
# throwaway server on 127.0.0.1 (installing Debian's postgresql when missing) and stops it after.
PG_TESTS := tests/test_store.py tests/test_leases.py tests/test_delivery_ledger.py \
	tests/test_schedule.py tests/test_delivery_crash.py tests/test_delivery_parallel.py \
	tests/test_delivery_groupcommit.py tests/test_store_claims.py tests/test_store_lookups.py

test: lint system-deps
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory test-postgres

test-postgres: $(STAMP)
	$(BIN)/python -c 'import psycopg' 2>/dev/null || $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,postgres]'
	bash scripts/postgres.sh $(BIN)/python -m pytest -q $(PG_TESTS)

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
