#!/usr/bin/env bash
# bash scripts/gpu_check.sh        (one CUDA GPU, no internet; about 3-5 minutes)
#
# The GPU path of hermes3, checked on a lent machine: the tests marked `gpu` (CUDA attention keeps
# packed samples isolated in bf16; FP8 _scaled_mm equals our FP8_DYNAMIC emulation), then a few SFT
# steps of a ~1B Llama-shaped model through the recipe code path (tokens/s, MFU) and FP8 vs bf16
# matmul of a converted layer. Needs a Python with torch (CUDA) and `pip install -e .[train,fp8]`
# done; PYTHON picks it (default: .venv/bin/python if present, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false
"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
timeout 120 "$PYTHON" -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider
timeout 240 "$PYTHON" scripts/gpu_check.py "$@"
