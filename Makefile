# Quick start: `make run` (set up, then protect the bundled sample folder) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run protect-sample test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/dune-gui assets/sample

protect-sample: $(STAMP)
	$(VENV)/bin/dune-cli protect assets/sample out/sample-protected

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check dune_gui tests

bench: $(STAMP)
	$(PY) -m dune_gui.bench.engine_speed

clean:
	rm -rf out bench-out .pytest_cache .ruff_cache
