"""benchmarks/gpu_check.py's CPU mode: every section that needs no Ray runs at a tiny size and reports ok, each training
configuration with finite losses (the GPU machine runs the full check: benchmarks/gpu_check.sh)."""

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check  # noqa: E402

NON_RAY = ("configs", "loop_vs_plain", "kde_cost", "fid_devices")


def test_the_gpu_check_runs_every_section_without_ray_on_the_cpu(tmp_path):
    report_path = tmp_path / "gpu_check.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--quick",
         "--json", str(report_path), "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = json.loads(report_path.read_text())
    sections = report["sections"]
    assert report["device"] == "cpu" and report["quick"]
    for name in NON_RAY:
        assert sections[name]["status"] == "ok", (name, sections[name])
    for name in gpu_check.RAY_SECTIONS:
        assert sections[name]["status"].startswith("skipped"), sections[name]

    configs = sections["configs"]["results"]
    assert set(configs) == set(gpu_check.CONFIGS)
    for name, entry in configs.items():
        assert entry["status"] == "ok" and entry["finite"], (name, entry)
        assert entry["ms_per_step"] > 0 and entry["losses"], (name, entry)
        assert all(math.isfinite(v) for v in entry["losses"].values()), (name, entry)
    assert configs["wgan_gp"]["d_steps"] == gpu_check.QUICK["wgan_d_steps"]

    plain = sections["loop_vs_plain"]["results"]
    assert plain["step_ratio"] > 0 and plain["train_loop_ratio"] is None  # no Ray run to compare with
    kde = sections["kde_cost"]["results"]
    assert set(kde["eager"]) == {"plain", "kde 5", "kde 20", "kde 50"}
    assert all(arm["ms_per_iteration"] > 0 for arm in kde["eager"].values())
    assert kde["compiled"]["status"] == "skipped: no CUDA"
    assert kde["compiled"]["kde 20 / backend=eager"]["status"] == "ok"  # the wiring, traced by dynamo, untimed
    fid = sections["fid_devices"]["results"]
    assert math.isfinite(fid["cpu"]["fid"]) and fid["fid_abs_difference"] < 1e-9  # the same samples, CPU twice
    assert math.isfinite(fid["train_loop_path"]["fid"])
    summary = [line for line in result.stdout.splitlines() if line.startswith("SUMMARY")]
    assert len(summary) == len(gpu_check.SECTIONS) + 1
