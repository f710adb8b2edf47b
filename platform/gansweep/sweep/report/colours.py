"""The report's one colour map: a colour per value of the sweep's main categorical choice (the first choice key of its
space whose values are not numbers: the quickstart's mode), the same in every plot and the samples grid; and what
kind of axis each swept key gets (a choice of numbers, such as a grid's p, is a number)."""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib import colormaps

NEUTRAL = "tab:blue"  # a sweep without a categorical choice: every trial one colour
MISSING = "0.5"  # a trial without the key (a conditional choice that is inactive)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def axis_kind(spec: dict | None, values: list) -> str:
    """'log', 'linear' or 'categorical': the x axis of a swept key, from its spec (else the values trials took)."""
    if isinstance(spec, dict):
        if "loguniform" in spec:
            return "log"
        if "uniform" in spec or "int" in spec:
            return "linear"
        if "choice" in spec:
            return "linear" if all(is_number(v) for v in spec["choice"]) else "categorical"
    return "linear" if values and all(is_number(v) for v in values) else "categorical"


def categories(spec: dict | None, values: list) -> list:
    """The space's choices in their order, then any other value a trial took (in the order first seen)."""
    found = list(spec["choice"]) if isinstance(spec, dict) and "choice" in spec else []
    for value in values:
        if value not in found:
            found.append(value)
    return found


def main_choice(space: dict) -> str | None:
    """The sweep's main categorical choice: the first key of SPACE choosing between two or more non-numbers."""
    for key, spec in space.items():
        if isinstance(spec, dict) and len(spec.get("choice") or []) >= 2 and axis_kind(spec, []) == "categorical":
            return key
    return None


@dataclass(frozen=True)
class Colours:
    key: str | None  # the main categorical choice; None: one colour for all
    values: tuple  # its values, in the space's order

    def of_value(self, value):
        if self.key is None:
            return NEUTRAL
        if value not in self.values:
            return MISSING
        palette = colormaps["tab10" if len(self.values) <= 10 else "tab20"]  # qualitative: choices have no order
        return palette(self.values.index(value) % palette.N)

    def of(self, params: dict):
        """The colour of a trial (or point) of PARAMS."""
        return self.of_value(params.get(self.key)) if self.key is not None else NEUTRAL

    def rest(self, params: dict) -> str:
        """PARAMS but the main choice, short ("p=0.3 lr_d=0.0002"): what tells a colour's trials apart."""
        return " ".join(f"{key.split('.')[-1]}={f'{value:.3g}' if isinstance(value, float) else value}"
                        for key, value in params.items() if key != self.key)

    def label(self, value) -> str:
        return f"{self.key} = {value}"

    @property
    def title(self) -> str:
        return f"colour: {self.key}" if self.key is not None else ""


def colours(sweep: dict, trials: list[dict]) -> Colours:
    """The sweep's colour map, over the values of its main categorical choice that the space or a trial has."""
    space = sweep.get("space") or {}
    key = main_choice(space)
    if key is None:
        return Colours(None, ())
    return Colours(key, tuple(categories(space[key], [t["params"][key] for t in trials if key in t["params"]])))
