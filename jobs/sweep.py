"""`ray job submit` entrypoint of a sweep; the arguments are those of `gansweep sweep`:

    ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml -- \
        python jobs/sweep.py search_spaces/quickstart.yaml [--set KEY=VALUE ...] [--output DIR] [--resume]

The job's driver joins the cluster (Ray sets RAY_ADDRESS for it); jobs/runtime_env.yaml ships the
package to every worker of the job.
"""

import sys
from pathlib import Path

# The submitted working tree's package first, ahead of any copy installed on the cluster's nodes.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

from gansweep.cli import main

if __name__ == "__main__":
    sys.exit(main(["sweep", *sys.argv[1:]]))
