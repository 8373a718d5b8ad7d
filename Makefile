# Quickstart: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Public PyPI's Linux torch wheels are CUDA builds; torch==2.13.0 from a local wheel folder or
# the CPU index (set TORCH_INDEX=https://download.pytorch.org/whl/cpu) keeps the install small.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null || \
	  $(BIN)/pip install --quiet $(TORCH_SPEC) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -e ".[test]"
	@touch $@

demo: $(VENV)/.installed
	$(BIN)/medstore demo

# mypy cannot follow the editable install's import hook: it reads the folders through links that
# give them their installed names, medstore.datastore and medstore.datasets.
.typecheck/medstore:
	mkdir -p $@
	ln -sfn ../../datastore $@/datastore
	ln -sfn ../../datasets $@/datasets

# loadgroup: each module testing a real third-party library (tests/realenv.py) runs on one
# worker, which builds that library's venv once while the other worker goes on with other tests.
test: lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

lint: $(VENV)/.installed | .typecheck/medstore
	$(BIN)/ruff check datastore datasets tests bench scripts
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .typecheck
