# Two entry points on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
AG := $(VENV)/bin/agegender
DATA ?= ../shared/data/utkface_crop_part1

.PHONY: install demo test lint clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(AG) dataset $(DATA) --out data/utkface
	$(AG) predict examples/ --arch both
	$(AG) compare --split test --manifest data/utkface/manifest.csv

lint: install
	$(VENV)/bin/ruff check agegender_cli tests benchmarks scripts

test: install lint
	$(VENV)/bin/pytest

clean:
	rm -rf $(VENV) data runs .pytest_cache
