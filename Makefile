# make demo  - set up .venv on first use, then run the main job on the embedded default
# make test  - set up .venv on first use, then run the test suite
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
EXTRAS  := dev,notebooks,train,eval,fp8
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml requirements/lock.txt | cksum | cut -d' ' -f1)

.PHONY: install test demo lint bench clean

$(STAMP): pyproject.toml requirements/lock.txt
	test -d $(VENV) || $(PY) -m venv $(VENV)
	# torch first and pinned: on the project machines this takes the local CPU build
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -c requirements/lock.txt -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/hermes3 demo --scale demo

lint: $(STAMP)
	$(BIN)/ruff check hermes3 tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/packing.py

clean:
	rm -rf $(VENV)
