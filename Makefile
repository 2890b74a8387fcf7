# The two commands of the README: `make demo` and `make test`. Both create .venv/ when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint format clean

setup: $(STAMP)

# The torch build the set-up installs first (the package's `torch>=2.4` then installs nothing
# more). TORCH_SPEC is the requirement; TORCH_INDEX, when set, is the only index pip reads it
# from. The default, `pip install torch==2.13.0` from pip's own sources, is the CPU build on
# this project's machines (a CPU wheel on disk) and the CUDA build from PyPI on a stock Linux
# machine. Elsewhere, for the CPU build: make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu
# and for a given CUDA build: make setup TORCH_INDEX=https://download.pytorch.org/whl/cu128
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) '$(TORCH_SPEC)'
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/entropy-rl demo

test: $(STAMP)
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/ruff format --check src tests scripts benchmarks
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/ruff format --check src tests scripts benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests scripts benchmarks
	$(BIN)/ruff check --fix src tests scripts benchmarks

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
