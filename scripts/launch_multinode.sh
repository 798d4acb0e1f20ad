#!/usr/bin/env bash
# NODES=6 bash scripts/launch_multinode.sh configs/sft/llama3.1-8b.yaml [key=value ...]
# Multi-node SFT with torchrun (one launcher per node). Under SLURM run it with
#   srun --nodes=$NODES --ntasks-per-node=1 --gpus-per-node=8 bash scripts/launch_multinode.sh CONFIG
# Outside SLURM, run it on every node with NODE_RANK=0..NODES-1 and MASTER_ADDR set.
# FSDP settings come from the recipe (fsdp / fsdp_config keys), so the same file drives the
# Trainer on 1 GPU, 1 node or many; `hermes3 plan --config CONFIG` checks the layout first.
set -euo pipefail
CONFIG=${1:?usage: NODES=N bash scripts/launch_multinode.sh CONFIG [key=value ...]}
shift
NODES=${NODES:-${SLURM_NNODES:-1}}
NODE_RANK=${NODE_RANK:-${SLURM_NODEID:-0}}
GPUS=${GPUS_PER_NODE:-8}
if [ -z "${MASTER_ADDR:-}" ] && [ -n "${SLURM_JOB_NODELIST:-}" ]; then
  MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
fi
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
export WANDB_MODE=${WANDB_MODE:-offline} TOKENIZERS_PARALLELISM=false
hermes3 plan --config "$CONFIG" "cluster.nodes=$NODES" "cluster.gpus_per_node=$GPUS" || exit 2
exec torchrun --nnodes "$NODES" --node_rank "$NODE_RANK" --nproc_per_node "$GPUS" \
  --rdzv_backend c10d --rdzv_endpoint "$MASTER_ADDR:$MASTER_PORT" --rdzv_id "${SLURM_JOB_ID:-hermes3}" \
  -m hermes3.cli sft --config "$CONFIG" "$@"
