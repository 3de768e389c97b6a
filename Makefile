# Two entry points, each one command on a fresh CPU machine (see README):
#   make demo   set up, then run the autonomous search on the offline mini task
#   make test   set up, then lint, type-check and run the test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-slow lint typecheck pytest clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch resolves to a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,ray]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
	  $(BIN)/trex-mcp --autonomous --task ftbench/mini/sentiment --rounds 4 --runs-per-round 3 --capacity 2 --home .trex

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	# exit code 5 means no tests were collected: that is a failure, not a pass.
	$(BIN)/pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo 'pytest collected no tests' >&2; exit 1; fi; exit $$rc

test: lint typecheck pytest

# The slow stage: real Ray cluster, kill -9 and resume, whole autonomous searches. CI runs it after `make test`.
test-slow: $(STAMP)
	$(BIN)/pytest -m slow; rc=$$?; if [ $$rc -eq 5 ]; then echo 'pytest collected no slow tests' >&2; exit 1; fi; exit $$rc

clean:
	rm -rf $(VENV) .trex .pytest_cache .mypy_cache .ruff_cache
