"""A config from YAML and the command line: every value coerced to its field's type (numbers given on the command
line arrive as numbers), unknown keys refused with the closest known one. The package's one YAML reader, which the
space file's parser (sweep/) reuses."""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from gansweep.config.errors import ConfigError, quoted
from gansweep.config.schema import Config, MeasurementConfig, all_keys

def unknown_key(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, all_keys(), n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown config key {quoted(key)}{hint}")


def coerce(key: str, value: Any, ftype: Any) -> Any:
    """Convert a YAML or command-line value to the field's declared type, or fail naming the key."""
    optional = False
    if isinstance(ftype, types.UnionType) or typing.get_origin(ftype) is typing.Union:
        args = [a for a in typing.get_args(ftype) if a is not type(None)]
        optional, ftype = True, args[0]
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "")):
        if optional:
            return None
        raise ConfigError(f"{key} must not be empty")
    if typing.get_origin(ftype) is list or ftype is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {quoted(value)}")
        return value
    if ftype is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{key} must be true or false, got {quoted(value)}")
    if ftype is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and _is_int(value))):
            raise ConfigError(f"{key} must be an integer, got {quoted(value)}")
        return int(value)
    if ftype is float:
        try:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, got {quoted(value)}") from None
    if ftype is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key} must be a single value, got {quoted(value)}")
        return str(value)
    raise TypeError(f"unhandled config type {ftype} for {key}")


def _is_int(text: str) -> bool:
    try:
        int(text)
        return True
    except ValueError:
        return False


def apply_mapping(obj: Any, data: dict, prefix: str) -> None:
    """DATA's values, coerced to their fields' types, set on OBJ (a config dataclass); PREFIX: OBJ's key."""
    hints = typing.get_type_hints(type(obj))
    for name, value in data.items():
        key = f"{prefix}{name}"
        if name not in hints:
            while isinstance(value, dict) and len(value) == 1:  # name the whole dotted key: trian.steps
                (sub, value), = value.items()
                key = f"{key}.{sub}"
            raise unknown_key(key)
        ftype = hints[name]
        if dataclasses.is_dataclass(ftype):
            if not isinstance(value, dict):
                raise ConfigError(f"{key} must be a mapping of keys, got {quoted(value)}")
            apply_mapping(getattr(obj, name), value, f"{key}.")
        else:
            value = coerce(key, value, ftype)
            if isinstance(obj, MeasurementConfig) and name == "steps":
                _check_steps(value, key)
            setattr(obj, name, value)


def _check_steps(steps: list, key: str) -> None:
    """A cascade's steps are measurement configs too: none has an unknown key, each value has its field's type. (Kept
    as given: config.checks builds them, which checks their names and parameters.)"""
    for i, step in enumerate(steps):
        if isinstance(step, dict):  # any other step is refused when the cascade is built
            apply_mapping(MeasurementConfig(), step, f"{key}[{i}].")


def set_key(cfg: Config, key: str, value: Any) -> None:
    """Set one dotted key, e.g. ``set_key(cfg, "train.steps", "500")``."""
    parts = key.split(".")
    nested: dict = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        nested = {part: nested}
    apply_mapping(cfg, nested, "")


# Nodes a YAML document's aliases may add to it once expanded: a few anchors in a real config add tens; an anchor
# bomb ("billion laughs") adds billions.
MAX_ALIAS_NODES = 10_000


def load_yaml(text: str, what: str, error: type[ConfigError] = ConfigError) -> Any:
    """TEXT read as yaml.safe_load reads it (a syntax error raises yaml.YAMLError): the package's one YAML reader.

    A document whose aliases expand past MAX_ALIAS_NODES nodes is refused with ERROR naming WHAT, before any value
    is built: an alias is its anchor's node (and becomes the same Python object), so a bomb loads small, but whatever
    walks the values afterwards (a check, a copy, an error message) walks every copy, for minutes or until memory
    runs out."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        sizes: dict[yaml.Node, float] = {}
        if _expanded_size(node, sizes) - len(sizes) > MAX_ALIAS_NODES:  # the nodes its aliases add
            raise error(f"{what}: its YAML aliases expand past {MAX_ALIAS_NODES:,} nodes (an anchor bomb?); refused")
        return loader.construct_document(node)
    except RecursionError:  # the composer and constructor recurse once per level of nesting
        raise error(f"{what}: YAML nested too deeply; refused") from None
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, sizes: dict[yaml.Node, float]) -> float:
    """The nodes NODE stands for with every alias expanded, counted once per alias: linear in the distinct nodes
    (SIZES memoises each). An alias inside its own anchor expands without end: infinity."""
    if node in sizes:
        return sizes[node]
    sizes[node] = math.inf  # while its children are counted: met again below it, it is its own alias
    if isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = node.value
    else:  # a scalar
        children = []
    sizes[node] = 1 + sum(_expanded_size(child, sizes) for child in children)
    return sizes[node]


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from the command line; the value is read as YAML (so 0.5 is a float, [a, b] a list)."""
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE, got {quoted(text)}")
    key, raw = text.split("=", 1)
    try:
        value = load_yaml(raw, f"--set {quoted(text)}") if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def read_yaml_mapping(path: Path, what: str, error: type[ConfigError] = ConfigError) -> dict:
    """A YAML file that must hold a mapping, or ERROR naming WHAT and the file."""
    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    try:
        data = load_yaml(path.read_text(), f"{what} {path}", error) or {}
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{what} {path} must hold a mapping of keys")
    return data



def from_dict(data: dict) -> Config:
    """Rebuild a Config from ``to_dict()`` output (as a run directory's run.json keeps it)."""
    cfg = Config()
    apply_mapping(cfg, data, "")
    return cfg
