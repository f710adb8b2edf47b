"""gansweep.sweep.report.write: what write_report refuses."""

import pytest
from gansweep.sweep.report.write import write_report
from gansweep.sweep.sweep_dir import SweepDirError


def test_not_a_sweep_directory(tmp_path):
    with pytest.raises(SweepDirError, match="not a sweep directory.*sweep.json"):
        write_report(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        write_report(tmp_path / "missing")
    assert not (tmp_path / "report").exists()  # nothing written for a directory that is not a sweep
