# Siyu's two commands: `make start` (install + run the embedded Siyu) and `make test`.
PYTHON_BIN := $(shell scripts/find-python)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: start test lint typecheck pytest pytest-postgres screenshots messages openapi bench bench-callbacks bench-segments bench-sop bench-clv bench-dashboards clean bench-masssend bench-channels

$(BIN)/python:
	$(PYTHON_BIN) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

## Install into .venv and run Siyu embedded (SQLite, in-process queue, worker) at :8000.
start: $(VENV)/.installed
	SIYU_ENV=development SIYU_DEMO=1 $(BIN)/siyu start

## Lint, type-check and run the whole suite on SQLite and on PostgreSQL (the two in parallel:
## much of the suite waits on sockets, so two cores serve both).
test: lint typecheck
	$(MAKE) --no-print-directory -j2 --output-sync=target pytest pytest-postgres

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed
	$(BIN)/mypy siyu

pytest: $(VENV)/.installed
	env -u DATABASE_URL DJANGO_SETTINGS_MODULE=siyu.config.test_settings $(BIN)/pytest -q

pytest-postgres: $(VENV)/.installed
	BIN=$(BIN) scripts/test-postgres

## Run the browser journeys (siyu/e2e) and copy their screenshots into docs/screenshots/.
screenshots: $(VENV)/.installed
	env -u DATABASE_URL SIYU_SCREENSHOTS_TO_DOCS=1 DJANGO_SETTINGS_MODULE=siyu.config.test_settings \
		$(BIN)/pytest -q siyu/e2e

## Refresh the English catalog (UI strings are Chinese-first) and compile it.
messages: $(VENV)/.installed
	cd siyu && DJANGO_SETTINGS_MODULE=siyu.config.test_settings ../$(BIN)/siyu makemessages -l en \
		--no-obsolete --ignore "sandbox/*" --ignore "*/tests/*" --ignore "testing/*"
	$(BIN)/python scripts/translations_en.py siyu/locale/en/LC_MESSAGES/django.po
	msgfmt --check -o siyu/locale/en/LC_MESSAGES/django.mo siyu/locale/en/LC_MESSAGES/django.po

## Refresh the OpenAPI snapshot after an intended API change (a test compares against it),
## then the route table of docs/api.md generated from it.
openapi: $(VENV)/.installed
	DJANGO_SETTINGS_MODULE=siyu.config.test_settings $(BIN)/python -m siyu.api.snapshot > docs/openapi.json
	$(BIN)/python scripts/api_reference.py

## Benchmarks (slow; not part of `make test`). Results go in bench/README.md.
bench: bench-callbacks bench-channels bench-segments bench-sop bench-clv bench-dashboards bench-masssend

bench-callbacks: $(VENV)/.installed
	$(BIN)/python bench/callback_ingest.py

## A burst of 4,000 adds at the sandbox's WeCom rate (166/s) through gunicorn and the worker lanes
## (siyu_bench_channels, Redis db 12): welcomes inside 20 s, tag lag, fission counts, CPU per add.
bench-channels: $(VENV)/.installed
	$(BIN)/python bench/channel_burst.py --adds 4000 --start-rate 5 --peak 166

## 10M customers, ~34M tag assignments in PostgreSQL (siyu_bench_segments): bitmap vs SQL counts.
bench-segments: $(VENV)/.installed
	$(BIN)/python bench/segment_count.py

## 10M customers' rollups, a day of 183k new events (siyu_bench_dashboards): page data vs raw.
bench-dashboards: $(VENV)/.installed
	$(BIN)/python bench/dashboards.py

## 1M customers (siyu_bench_masssend): mass-send planning, set-based vs per-customer.
bench-masssend: $(VENV)/.installed
	$(BIN)/python bench/masssend_plan.py

## 1M enrolled customers in a 5-step SOP (siyu_bench_sop): batched claim vs per-row dispatch.
bench-sop: $(VENV)/.installed
	$(BIN)/python bench/sop_engine.py

## BG/NBD + Gamma-Gamma fit on 1M simulated customers: siyu vs lifetimes (if installed).
bench-clv: $(VENV)/.installed
	$(BIN)/python bench/clv_fit.py

clean:
	rm -rf $(VENV) var
