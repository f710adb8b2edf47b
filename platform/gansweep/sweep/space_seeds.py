"""A space's `seeds: N`: each sampled point trains on N training seeds, train.seed = the base seed (fixed:, default 0)
+ 0 .. N - 1, one Tune trial each, the searcher told their mean (sweep/study_search.py groups them). What the key
takes and refuses, read by sweep/space_file.py; a grid's exclude: may name train.seed to train some cells on fewer
seeds."""

from __future__ import annotations

import copy
from typing import Any

from gansweep.config.errors import quoted
from gansweep.config.parsing import apply_mapping
from gansweep.config.schema import Config
from gansweep.sweep.space import SEED_KEY, Param, SpaceError, SweepSpace, nest


def parse_seeds(raw: dict, params: dict[str, Param], where: str) -> int:
    """seeds: the training seeds per point (1: one trial per point, as before the key existed). With more, the sweep
    sets train.seed itself: the space may not sample it, nor a bundle set it."""
    seeds = raw.get("seeds", 1)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise SpaceError(f"{where}: seeds: must be an integer >= 1, got {quoted(seeds)}")
    if seeds > 1:
        for param in params.values():
            keys = [param.key] if param.bundles is None else [
                key for bundle in param.bundles.values()
                for key in [*bundle.keys, *(k for named in bundle.by.values() for keys in named.values() for k in keys)]]
            if SEED_KEY in keys:
                raise SpaceError(f"{where}: space.{param.key}: sets {SEED_KEY}, which seeds: {seeds} sets per trial "
                                 f"(the base seed + 0 .. {seeds - 1}; the base in fixed:); keep one")
    return seeds


def seed_choices(fixed: dict[str, Any], seeds: int) -> list[int]:
    """The train.seed values a sweep of SEEDS seeds trains on, what an exclude entry may name ([] for one seed)."""
    if seeds == 1:
        return []
    base = Config()
    apply_mapping(base, nest(copy.deepcopy(fixed)), "")
    return [base.train.seed + i for i in range(seeds)]


def check_grid(space: SweepSpace, where: str) -> None:
    """No grid point may lose every seed to exclude: (that is dropping the point, written without train.seed)."""
    if space.seeds == 1 or space.search.algorithm != "grid":
        return
    unseeded = next((point for point in space.grid() if not space.seed_values(point)), None)
    if unseeded is not None:
        raise SpaceError(f"{where}: exclude: drops every seed of the point {quoted(unseeded)}; to drop the point, "
                         f"leave {SEED_KEY} out of the entry")
