#!/usr/bin/env bash
# Set up if needed, then train a small AmbientGAN on Fashion-MNIST (Block-Pixel p=0.5) on a local Ray, on the CPU,
# with a cheap FID every 100 steps and the full evaluation (10,000 samples) at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
exec gansweep train --output runs/quickstart \
    --set data.limit=6000 --set train.steps=300 --set train.checkpoint_every=100 \
    --set train.image_every=50 --set measurement.name=block_pixel --set measurement.p=0.5 \
    --set eval.every=100 "$@"
