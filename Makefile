# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SOURCES := bot handlers scheduler storage content
POS    := $(wildcard locales/*/LC_MESSAGES/messages.po)
MOS    := $(POS:.po=.mo)

.PHONY: run test lint typecheck pytest bench locales extract db clean

run: setup
	@if [ -n "$$BOT_TOKEN" ] || grep -qs '^BOT_TOKEN=.\+' .env; then \
		$(BIN)/biblio-bot run; \
	else \
		echo "No BOT_TOKEN: starting the offline sandbox (a local Bot API server and the bot)."; \
		$(BIN)/biblio-bot sandbox; \
	fi

test: setup lint typecheck pytest

setup: $(STAMP) locales

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

locales: $(MOS)

locales/%/LC_MESSAGES/messages.mo: locales/%/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel -q compile -d locales -D messages -l $* >/dev/null

# For developers after changing user-visible text: refresh the template and catalogues.
extract: $(STAMP)
	$(BIN)/pybabel extract --no-location --no-wrap --sort-output -k _ -k __ -k N_ \
		-o locales/messages.pot $(SOURCES) >/dev/null
	$(BIN)/pybabel update --no-wrap --ignore-obsolete --no-fuzzy-matching -d locales -D messages -i locales/messages.pot

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy .

pytest: setup
	$(BIN)/pytest -q -n 2  # two workers, one per core: the end-to-end tests mostly wait on I/O

bench: setup
	$(BIN)/biblio-bot bench all

db: setup
	$(BIN)/biblio-bot db upgrade

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
	find locales -name '*.mo' -delete
