"""`ray job submit` entrypoint of a single run; the arguments are those of `gansweep train`:

    ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml -- \
        python jobs/train.py [CONFIG.yaml] [--set KEY=VALUE ...] [--output DIR]
"""

import sys
from pathlib import Path

# The submitted working tree's package first, ahead of any copy installed on the cluster's nodes.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

from gansweep.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
