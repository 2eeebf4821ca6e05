#!/usr/bin/env bash
# CE-Net train step on one GPU: cenet-jax (XLA convolutions) beside PyTorch eager and
# torch.compile, batch 8 / 32 / 64 at 448 px, float32 and bf16, plus the device's measured
# matmul rate; prints bench/train.py's table and writes gpu.json. For a host without network:
# jax (CUDA), flax, optax, torch and torchvision installed; ml_collections and grain (and
# their pure-Python needs) as wheels in $WHEELS (default .whl/, see docs/performance.md).
# Budget: about 10 minutes on an H100/H200-class GPU, hence one round per case (three would
# restart every framework, torch.compile included, three times; see bench/train.py --help).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${WHEELS:-.whl}
if ! python3 -c 'import ml_collections, grain' 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/cenet_site "$WHEELS"/*.whl
    export PYTHONPATH=/tmp/cenet_site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
cases=train_b8_448_f32,train_b32_448_f32,train_b64_448_f32,train_b8_448_bf16,train_b32_448_bf16,train_b64_448_bf16
timeout 560 python3 bench/train.py --peak --vs-torch --torch-compile --impls auto --steps 5 --rounds 1 \
    --cases "$cases" --json "${OUT:-.}/gpu.json"
