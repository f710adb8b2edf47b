"""`load_config`: defaults, then a YAML file, then ``KEY=VALUE`` overrides, checked."""

from __future__ import annotations

from pathlib import Path

from gansweep.config.checks import validate
from gansweep.config.parsing import apply_mapping, parse_override, read_yaml_mapping, set_key
from gansweep.config.schema import Config


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Defaults, then the YAML file, then ``KEY=VALUE`` overrides; validated."""
    cfg = Config()
    if path is not None:
        data = read_yaml_mapping(Path(path), "config file")
        apply_mapping(cfg, data, "")
    for text in overrides:
        set_key(cfg, *parse_override(text))
    validate(cfg)
    return cfg
