# Two entry points on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
AG := $(VENV)/bin/agegender
DATA ?= ../shared/data

.PHONY: install demo test test-cpu-kinds lint clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The crop_part1 split the first bundled models were trained on stays fixed (--keep-splits-from), so that
# no bundled model has seen a val/test face; copies of one photo stay inside one split. The faces whose age
# lies between the classes are added last (--gaps keep: age in years only), the class faces keeping their split.
demo: install
	$(AG) dataset $(DATA)/utkface_crop_part1 --duplicates ignore --out data/part1 > /dev/null
	$(AG) dataset $(DATA) --keep-splits-from data/part1/manifest.csv --out data/classes > /dev/null
	$(AG) dataset $(DATA) --gaps keep --keep-splits-from data/classes/manifest.csv --out data/utkface
	$(AG) predict examples/ --arch both
	$(AG) compare --split test --manifest data/utkface/manifest.csv

lint: install
	$(VENV)/bin/ruff check agegender_cli tests benchmarks scripts

# two workers (one a core); the engine calibration is shared by both (tests/conftest.py)
test: install lint
	$(VENV)/bin/pytest -n 2

# the engine-choice tests as an AVX2, an AVX512-BF16 and an AMX CPU would run them (AGEGENDER_CPU_FEATURES)
CPU_KIND_TESTS := tests/test_engine_choice.py tests/test_runtime.py tests/test_onnx_engine.py
test-cpu-kinds: install
	for kind in avx2 avx512-bf16 amx; do AGEGENDER_CPU_FEATURES=$$kind $(VENV)/bin/pytest -q \
	  $(CPU_KIND_TESTS) || exit 1; done

clean:
	rm -rf $(VENV) data runs .pytest_cache
