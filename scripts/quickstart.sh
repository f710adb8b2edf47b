#!/usr/bin/env bash
# Set up if needed, then run the quickstart sweep (search_spaces/quickstart.yaml): six small AmbientGAN /
# plain-GAN trials on Fashion-MNIST Block-Pixel, two at a time on a local Ray, on the CPU, searched by
# Optuna and stopped early by ASHA. Extra arguments go to `gansweep sweep` (e.g. --output DIR, --resume).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
exec gansweep sweep search_spaces/quickstart.yaml "$@"
