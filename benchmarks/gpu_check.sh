#!/usr/bin/env bash
# The GPU check (issue 14) on a GPU machine, at most 8 minutes: find a Python with torch (and Ray), make gansweep
# importable (pip install -e . offline if it is not, else the source tree on PYTHONPATH), then run
# benchmarks/gpu_check.py under a timeout. Arguments go to gpu_check.py (e.g. --quick, --sections configs,kde_cost).
# Output: stdout, and $OUT/gpu_check.json when OUT is set (else /tmp/gpu_check.json).
#
#     bash benchmarks/gpu_check.sh
set -u
cd "$(dirname "$0")/.."

PY=""
for candidate in .venv/bin/python python3 python; do  # the first with torch and ray, else the first with torch
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import torch, ray" >/dev/null 2>&1; then
    PY=$(command -v "$candidate"); break
  fi
done
if [ -z "$PY" ]; then
  for candidate in python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import torch" >/dev/null 2>&1; then
      PY=$(command -v "$candidate"); echo "gpu_check: $PY has torch but no ray: the Ray sections will fail"; break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "gpu_check: no python with torch found (tried .venv/bin/python, python3, python); nothing to check"
  exit 1
fi
"$PY" -c 'import sys, torch; print("gpu_check: python", sys.executable, sys.version.split()[0], "torch", torch.__version__,
  "cuda", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")'

if ! "$PY" -c "import gansweep" >/dev/null 2>&1; then
  # No network on the GPU machine: no index, no build isolation (setuptools must be there), no dependencies.
  echo "gpu_check: gansweep is not installed: pip install --no-deps --no-build-isolation --no-index -e ."
  if ! "$PY" -m pip install --no-deps --no-build-isolation --no-index -e . >/tmp/gpu_check_pip.log 2>&1; then
    echo "gpu_check: pip install failed (continuing with the source tree on PYTHONPATH): $(tail -n 1 /tmp/gpu_check_pip.log)"
  fi
fi
export PYTHONPATH="$PWD/platform${PYTHONPATH:+:$PYTHONPATH}"  # gpu_check.py does this too, for what it starts
export PATH="$(dirname "$PY"):$PATH"  # the `ray` command beside this python (the packing section's `ray start`)

# What gansweep imports and is missing here: printed, not fatal (the sections that need it fail and say so).
"$PY" - <<'PYEOF'
import importlib.util
modules = ("torch", "torchvision", "ray", "pyarrow", "numpy", "scipy", "yaml", "PIL", "tqdm", "optuna", "pandas",
           "tensorboard", "cv2", "skimage", "matplotlib")
missing = [m for m in modules if importlib.util.find_spec(m) is None]
print("gpu_check: missing modules:", ", ".join(missing) if missing else "none")
PYEOF

# 8 minutes in all: the sections' budgets add up to about 7.3, the setup above takes seconds.
timeout --signal=TERM --kill-after=20 "${GPU_CHECK_TIMEOUT:-460}" "$PY" benchmarks/gpu_check.py "$@"
status=$?
if [ "$status" -eq 124 ]; then
  echo "gpu_check: stopped by the timeout; the JSON holds the sections finished before it"
fi
exit "$status"
