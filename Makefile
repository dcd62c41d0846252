# Overdracht — developer and CI entry points (GNU make).
#
#   make run      venv + translations + migrate + demo data, then serve on 127.0.0.1:$PORT (5000)
#   make test     venv + translations + Chromium, then pytest (SQLite; set TEST_DATABASE_URL for PostgreSQL)
#   make lint     ruff check + ruff format --check
#
# Everything a fresh machine needs is installed by these targets themselves.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FLASK := $(BIN)/flask --app wsgi
LANGS := nl en
PYTEST_ARGS ?=

.PHONY: help venv $(VENV) translations translations-update run chromium test lint format bench clean

help: ## List the targets.
	@grep -E '^[a-zA-Z_.-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

# --- virtualenv -----------------------------------------------------------------------------

# The stamp is rebuilt whenever a requirements file changes.
$(STAMP): requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "No python3.11 or python3 found on PATH." >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $@

venv: $(STAMP) ## Create .venv and install the pinned requirements (re-runs when they change).
$(VENV): venv

# --- translations ---------------------------------------------------------------------------

# Babel's compiler only warns about malformed .po syntax, so parse strictly first.
define CHECK_CATALOGUES
import sys
from pathlib import Path
from babel.messages.pofile import PoFileError, read_po

failed = False
for lang in sys.argv[1:]:
    path = Path("translations", lang, "LC_MESSAGES", "messages.po")
    if not path.is_file():
        print(f"{path}: missing catalogue", file=sys.stderr)
        failed = True
        continue
    try:
        with path.open("rb") as fh:
            read_po(fh, locale=lang, abort_invalid=True)
    except PoFileError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        failed = True
sys.exit(1 if failed else 0)
endef
export CHECK_CATALOGUES

translations: $(STAMP) ## Compile translations/*/LC_MESSAGES/messages.po to .mo (fails on broken catalogues).
	$(BIN)/python -c "$$CHECK_CATALOGUES" $(LANGS)
	$(BIN)/pybabel compile -d translations

# Extraction walks "." but babel.cfg only maps app/ and templates/; --ignore-dirs keeps it
# out of .venv, instance/ and other dot/underscore directories.
translations-update: $(STAMP) ## Extract messages to translations/messages.pot and update the nl and en catalogues.
	mkdir -p translations
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k lazy_ngettext:1,2 -k N_plural:1,2 \
		--ignore-dirs='.* _* instance node_modules' \
		-o translations/messages.pot .
	for lang in $(LANGS); do \
		test -f translations/$$lang/LC_MESSAGES/messages.po || \
			$(BIN)/pybabel init -i translations/messages.pot -d translations -l $$lang; \
	done
	$(BIN)/pybabel update --no-fuzzy-matching -i translations/messages.pot -d translations

# --- running --------------------------------------------------------------------------------

run: $(STAMP) translations ## Migrate, seed the demo (prints the logins), serve on 127.0.0.1:PORT (5000).
	mkdir -p instance
	OVERDRACHT_ENV=development $(FLASK) db upgrade
	OVERDRACHT_ENV=development $(FLASK) demo
	@echo "Serving on http://127.0.0.1:$${PORT:-5000} (mail: http://127.0.0.1:$${PORT:-5000}/dev/mail)"
	@# The scheduler (copies, mail relay, expiry, reminders) runs in its own process beside
	@# the web server and stops with it.
	export OVERDRACHT_ENV=development BASE_URL=http://127.0.0.1:$${PORT:-5000}; \
	$(FLASK) scheduler & scheduler=$$!; \
	trap 'kill $$scheduler 2>/dev/null' EXIT INT TERM; \
	$(FLASK) run --host 127.0.0.1 --port $${PORT:-5000}

# --- testing --------------------------------------------------------------------------------

chromium: ## Make sure Debian's Chromium is at /usr/bin/chromium (installs it with apt-get if missing).
	bash scripts/ensure-chromium.sh

# TEST_DATABASE_URL (environment or `make test TEST_DATABASE_URL=...`) reaches pytest as is:
# the suite runs on PostgreSQL when it is set and on SQLite otherwise.
test: $(STAMP) translations chromium ## Run pytest; PYTEST_ARGS='...' passes options through.
	@echo "Database: $${TEST_DATABASE_URL:-SQLite (set TEST_DATABASE_URL for PostgreSQL)}"
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff check and ruff format --check.
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Sort imports and format the code with ruff.
	$(BIN)/ruff check --select I --fix .
	$(BIN)/ruff format .

bench: $(STAMP) ## Run every bench/*.py with the venv's python (all run; fails if any failed; BENCH_ARGS passes options).
	@found=0; failed=0; \
	for script in bench/*.py; do \
		[ -e "$$script" ] || continue; \
		case "$$(basename "$$script")" in _*) continue;; esac; \
		found=1; \
		args="$(BENCH_ARGS)"; \
		echo "==> $$script $$args"; \
		PYTHONPATH="$(CURDIR)" $(BIN)/python "$$script" $$args || failed=1; \
	done; \
	[ "$$found" = 1 ] || echo "no benchmarks yet"; \
	exit $$failed

clean: ## Remove caches and compiled .mo files (keeps .venv and instance/).
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
	find translations -name '*.mo' -delete 2>/dev/null || true
	rm -rf .pytest_cache .ruff_cache test-results
