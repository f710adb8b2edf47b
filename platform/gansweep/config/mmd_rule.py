"""The MMD stopping rule's level per look (reversal.mmd_alpha over reversal.mmd_looks): one owner for the config's check
and gan/reversal.py's test. Imports nothing of the package, so that the reversal's import chain stays short."""

from __future__ import annotations

import math


def mmd_look_level(alpha: float, looks: int, permutations: int) -> float:
    """The level of each of a reversal's LOOKS planned MMD tests that keeps the whole reversal's false stops (reals'
    and fakes' codes of one distribution) at ALPHA: Bonferroni's ALPHA / LOOKS (gan/reversal.py says why). A
    permutation p-value over PERMUTATIONS splits is at least 1 / (PERMUTATIONS + 1), so a lower level could never
    stop a reversal: a ValueError naming the keys."""
    level = alpha / looks
    # Compared in counts, with room for alpha's float (0.05 / 20 * 400 is 1 in exact arithmetic).
    if (permutations + 1) * alpha < looks * (1 - 1e-9):
        raise ValueError(
            f"reversal.mmd_permutations={permutations} can never stop a reversal: its smallest p-value, "
            f"1/{permutations + 1}, is above the level of each of its {looks} looks (reversal.mmd_alpha={alpha} / "
            f"{looks} = {level:.4g}); use at least {math.ceil(looks / alpha - 1e-9) - 1} permutations or fewer "
            "reversal.mmd_looks")
    return level
