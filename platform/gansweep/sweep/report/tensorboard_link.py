"""How to open a sweep's TensorBoard with its runs coloured by the sweep's main categorical choice (colours.py):
TensorBoard groups the runs' colours by a regular expression's capture group over their names (runColorGroup), and
a trial's name holds KEY=value for each swept key (runner.trial_name). The sweep's last lines and `gansweep report`
print it."""

from __future__ import annotations

import re
from urllib.parse import quote

from gansweep import storage
from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report.colours import categories, main_choice

PORT = 6006  # TensorBoard's default


def tensorboard_url(sweep: dict, port: int = PORT) -> str:
    """The local TensorBoard's address, its runs coloured by the value of SWEEP's main categorical choice (sweep.json's
    record, or the space's) where it has one."""
    url = f"http://localhost:{port}/"
    space = sweep.get("space") or {}
    key = main_choice(space)
    if key is None:
        return url
    values = "|".join(re.escape(str(value)) for value in categories(space[key], []))
    # KEY=value right after the trial number or a value (which follows an "="), never after more of a key's name:
    # "0007_seed=0_mode=ambient_p=0.3", not "0007_hidden_mode=...".
    regex = f"(?:^\\d+|=[^=]*)_{layout.short_key(key)}=({values})(?:_|$)"
    return f"{url}?runColorGroup={quote('regex:' + regex, safe=':()')}"


def tensorboard_lines(sweep_dir: str, sweep: dict) -> list[str]:
    """The command that serves the sweep's TensorBoard, and the address to open."""
    key = main_choice(sweep.get("space") or {})
    return [f"tensorboard --logdir {storage.display(storage.join(sweep_dir, layout.TENSORBOARD_DIR))}",
            f"then open {tensorboard_url(sweep)}" + (f" (runs coloured by {key})" if key else "")]
