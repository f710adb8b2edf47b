"""The search-space file of a sweep, checked before Ray starts: what loads, how it samples (define-by-run
and grid), the errors that name the place in the file, and the resources and trial names it plans."""

import textwrap
from pathlib import Path

import optuna
import pytest
from conftest import needs_fashion
from gansweep.config.errors import ConfigError
from gansweep.config.parsing import parse_override
from gansweep.config.schema import Config
from gansweep.sweep.runner import SweepError, plan_resources, trial_name
from gansweep.sweep.space import SpaceError
from gansweep.sweep.space_file import load_space

SPACES = Path(__file__).resolve().parents[2] / "search_spaces"

# Every space is checked against its data (Fashion-MNIST unless fixed: says otherwise), described as it loads.
pytestmark = needs_fashion


def _write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _load(tmp_path: Path, text: str, overrides=(), name: str = "space.yaml"):
    return load_space(_write(tmp_path, text, name), list(overrides))


def _error(tmp_path: Path, text: str, *fragments: str, overrides=()) -> str:
    """Load TEXT, expect a SpaceError naming the file and every fragment; return the message."""
    path = _write(tmp_path, text)
    with pytest.raises(SpaceError) as info:
        load_space(path, list(overrides))
    message = str(info.value)
    assert isinstance(info.value, ConfigError)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# Conditional keys written before their parents, and a three-level chain (mode -> name -> patch).
CONDITIONAL = textwrap.dedent("""\
    num_samples: 30
    fixed:
      train.steps: 2000
      eval.every: 250
    space:
      measurement.patch: {int: [4, 14], when: {measurement.name: [block_patch]}}
      measurement.p: {uniform: [0.1, 0.9], when: {measurement.name: [block_pixel]}}
      train.lr_d: {loguniform: [1.0e-5, 1.0e-2]}
      train.d_steps: {int: [1, 3]}
      measurement.name: {choice: [block_pixel, block_patch], when: {mode: [ambient]}}
      mode: {choice: [ambient, ignore]}
""")


# --- a valid space ----------------------------------------------------------------------------------------


def test_parents_come_before_the_keys_they_condition(tmp_path):
    space = _load(tmp_path, CONDITIONAL)
    order = [p.key for p in space.params]
    assert sorted(order) == sorted(["measurement.patch", "measurement.p", "train.lr_d", "train.d_steps",
                                    "measurement.name", "mode"])
    assert order.index("mode") < order.index("measurement.name")
    assert order.index("measurement.name") < order.index("measurement.patch")
    assert order.index("measurement.name") < order.index("measurement.p")
    patch = next(p for p in space.params if p.key == "measurement.patch")
    assert (patch.kind, patch.low, patch.high, patch.when) == ("int", 4, 14, {"measurement.name": ["block_patch"]})


def test_defaults(tmp_path):
    space = _load(tmp_path, CONDITIONAL, name="my_study.yaml")
    assert space.name == "my_study"  # the file's stem
    assert (space.metric, space.mode) == ("fid", "min")
    assert space.num_samples == 30 and space.max_concurrent_trials is None
    assert space.scheduler.name == "asha"
    assert space.scheduler.grace_period == 250  # eval.every: the first cheap FID
    assert space.scheduler.reduction_factor == 2.0
    assert (space.search.algorithm, space.search.seed, space.search.storage) == ("tpe", 0, None)
    assert (space.resources.workers, space.resources.gpus_per_worker, space.resources.cpus_per_worker) == (1, 0, None)
    # grace_period follows eval.every's default when it is not fixed either
    default_every = _load(tmp_path, "num_samples: 2\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n")
    assert default_every.scheduler.grace_period == Config().eval.every


def test_classifier_score_defaults_to_max(tmp_path):
    space = _load(tmp_path, "metric: classifier_score\nnum_samples: 2\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n")
    assert (space.metric, space.mode) == ("classifier_score", "max")


def test_two_metrics_make_a_multi_objective_space_that_runs_every_trial_to_its_end(tmp_path):
    space = _load(tmp_path, "metric: [fid, classifier_score]\nnum_samples: 2\n"
                            "space: {measurement.p: {uniform: [0.1, 0.9]}}\n")
    assert space.objectives == [("fid", "min"), ("classifier_score", "max")]
    assert (space.metric, space.mode) == ("fid", "min")  # the first ranks trials.json
    assert space.scheduler.name == "fifo"  # ASHA, single-objective, is not the default here
    written = _load(tmp_path, "metric: [classifier_score, fid]\nmode: [max, min]\nscheduler: {name: fifo}\n"
                              "num_samples: 2\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n")
    assert written.objectives == [("classifier_score", "max"), ("fid", "min")]
    assert _load(tmp_path, CONDITIONAL).objectives == [("fid", "min")]


def test_set_overrides_replace_fixed_keys_and_settings(tmp_path):
    overrides = [parse_override(text) for text in (
        "train.steps=3000", "model.g_width=32", "num_samples=7", "resources.workers=2", "scheduler.grace_period=500",
        "search.algorithm=random",
    )]
    space = _load(tmp_path, CONDITIONAL, overrides)
    assert space.fixed["train.steps"] == 3000 and space.fixed["model.g_width"] == 32
    assert space.num_samples == 7
    assert space.scheduler.grace_period == 500 and space.search.algorithm == "random"
    cfg = space.base_config()
    assert cfg.train.steps == 3000 and cfg.model.g_width == 32 and cfg.train.workers == 2
    assert cfg.eval.every == 250  # the file's other fixed keys stay


def test_set_of_a_sampled_key_or_an_unknown_key_is_an_error(tmp_path):
    def set_(*texts):
        return [parse_override(text) for text in texts]

    _error(tmp_path, CONDITIONAL, "space.train.lr_d", "also set in fixed", overrides=set_("train.lr_d=0.001"))
    _error(tmp_path, CONDITIONAL, "did you mean 'train.steps'", overrides=set_("trian.steps=5"))
    _error(tmp_path, CONDITIONAL, "train.workers", "resources.workers", overrides=set_("train.workers=2"))
    _error(tmp_path, CONDITIONAL, "num_samples", overrides=set_("num_samples=0"))


def test_base_config_carries_fixed_keys_and_resources(tmp_path):
    space = _load(tmp_path, """\
        num_samples: 2
        fixed:
          train: {steps: 3000, batch_size: 32}   # nested keys work as dotted ones
          measurement.name: block_patch
          eval.every: 300
        space:
          measurement.patch: {int: [4, 14]}
        resources: {workers: 2, gpus_per_worker: 1, cpus_per_worker: 2}
    """)
    assert space.fixed == {"train.steps": 3000, "train.batch_size": 32, "measurement.name": "block_patch",
                           "eval.every": 300}
    cfg = space.base_config()
    assert cfg.train.steps == 3000 and cfg.train.batch_size == 32 and cfg.measurement.name == "block_patch"
    assert cfg.eval.every == 300 and cfg.model.g_width == Config().model.g_width
    assert cfg.train.workers == 2
    assert cfg.train.use_gpu is True and cfg.train.gpus_per_worker == 1
    assert cfg.train.cpus_per_worker == 2.0

    cpu = _load(tmp_path, "num_samples: 2\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n").base_config()
    assert cpu.train.use_gpu is False and cpu.train.workers == 1 and cpu.train.cpus_per_worker is None


def test_trial_config_sets_the_sampled_keys_with_their_types(tmp_path):
    space = _load(tmp_path, CONDITIONAL)
    cfg = space.trial_config({"mode": "ambient", "measurement.name": "block_patch", "measurement.patch": 9,
                              "train.lr_d": 0.001, "train.d_steps": 2})
    assert cfg.mode == "ambient" and cfg.measurement.name == "block_patch"
    assert cfg.measurement.patch == 9 and type(cfg.measurement.patch) is int
    assert cfg.train.lr_d == 0.001 and type(cfg.train.lr_d) is float
    assert cfg.train.d_steps == 2 and type(cfg.train.d_steps) is int
    assert cfg.train.steps == 2000 and cfg.eval.every == 250  # fixed keys
    # an integer for a float key arrives as a float; the base config is not changed by a trial
    assert type(space.trial_config({"mode": "ignore", "train.lr_d": 1}).train.lr_d) is float
    assert space.base_config().measurement.name == Config().measurement.name
    with pytest.raises(ConfigError, match="train.d_steps must be an integer"):
        space.trial_config({"mode": "ignore", "train.d_steps": "two"})


# --- define-by-run with a real Optuna study -----------------------------------------------------------------


def test_define_by_run_samples_conditional_keys_only_when_active(tmp_path):
    space = _load(tmp_path, CONDITIONAL)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trials = []
    for _ in range(30):
        trial = study.ask()
        space.define_by_run(trial)
        trials.append(trial)
    names = []
    for trial in trials:
        params = trial.params
        assert "mode" in params and "train.lr_d" in params and "train.d_steps" in params
        assert ("measurement.name" in params) == (params["mode"] == "ambient")
        name = params.get("measurement.name")
        names.append(name)
        assert ("measurement.patch" in params) == (name == "block_patch")
        assert ("measurement.p" in params) == (name == "block_pixel")
        if "measurement.patch" in params:
            assert type(params["measurement.patch"]) is int and 4 <= params["measurement.patch"] <= 14
        if "measurement.p" in params:
            assert 0.1 <= params["measurement.p"] <= 0.9
        assert 1.0e-5 <= params["train.lr_d"] <= 1.0e-2
        assert type(params["train.d_steps"]) is int and 1 <= params["train.d_steps"] <= 3
        assert trial.distributions["train.lr_d"].log is True
        space.trial_config(params)  # every sampled point is a valid config
    # every branch was taken, so the assertions above mean something
    assert {None, "block_pixel", "block_patch"} <= set(names)
    # log-uniform: half the samples lie below the geometric middle 3.2e-4 (uniform would put ~3% there)
    below = sum(t.params["train.lr_d"] < 3.2e-4 for t in trials)
    assert 8 <= below <= 22, below


# --- grid -----------------------------------------------------------------------------------------------


GRID = textwrap.dedent("""\
    search: {algorithm: grid}
    fixed: {train.steps: 2000}
    space:
      measurement.patch: {choice: [7, 14], when: {measurement.name: [block_patch]}}
      measurement.name: {choice: [block_pixel, block_patch]}
      mode: {choice: [ambient, ignore]}
""")


def test_grid_is_conditional_aware(tmp_path):
    space = _load(tmp_path, GRID)
    points = space.grid()
    assert len(points) == 6  # (block_pixel + block_patch x {7, 14}) x {ambient, ignore}
    assert space.num_samples == 6  # defaults to the grid's size
    assert len({tuple(sorted(p.items())) for p in points}) == 6
    for point in points:
        assert set(point) >= {"measurement.name", "mode"}
        assert ("measurement.patch" in point) == (point["measurement.name"] == "block_patch")
        space.trial_config(point)
    assert sorted((p["measurement.name"], p.get("measurement.patch"), p["mode"]) for p in points) == sorted(
        [(n, k, m) for n, k in [("block_pixel", None), ("block_patch", 7), ("block_patch", 14)]
         for m in ("ambient", "ignore")])
    assert _load(tmp_path, GRID + "num_samples: 6\n").num_samples == 6


def test_grid_errors(tmp_path):
    _error(tmp_path, GRID + "num_samples: 5\n", "num_samples", "the grid has 6 points")
    _error(tmp_path, GRID + "  measurement.p: {uniform: [0.1, 0.9]}\n", "space.measurement.p", "choice keys only")


# --- errors name the place in the file ---------------------------------------------------------------------


OK = "num_samples: 4\nfixed: {train.steps: 2000}\n"


@pytest.mark.parametrize("text, fragments", [
    # the file's shape
    (OK + "schedular: {name: fifo}\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n", ["schedular", "unknown key"]),
    ("- a\n- b\n", ["must hold a mapping"]),
    (OK, ["space:", "at least one key"]),
    # parameters
    (OK + "space: {measurment.p: {uniform: [0.1, 0.9]}}\n", ["space.measurment.p", "did you mean 'measurement.p'"]),
    (OK + "space: {measurement.p: {uniform: [0.9, 0.1]}}\n", ["space.measurement.p.uniform", "empty range"]),
    (OK + "space: {measurement.p: {uniform: [0.5, 0.5]}}\n", ["space.measurement.p.uniform", "empty range"]),
    (OK + "space: {measurement.patch: {int: [14, 4]}}\n", ["space.measurement.patch.int", "empty range"]),
    (OK + "space: {train.lr_d: {loguniform: [0.0, 1.0e-3]}}\n", ["space.train.lr_d.loguniform", "low must be > 0"]),
    (OK + "space: {train.lr_d: {loguniform: [-1.0, 1.0e-3]}}\n", ["space.train.lr_d.loguniform", "low must be > 0"]),
    (OK + "space: {measurement.p: {int: [0, 1]}}\n", ["space.measurement.p.int", "not an integer key"]),
    (OK + "space: {measurement.patch: {uniform: [4, 14]}}\n", ["space.measurement.patch.uniform", "use int"]),
    (OK + "space: {measurement.patch: {int: [4.5, 14]}}\n", ["space.measurement.patch.int", "bounds must be ints"]),
    (OK + "space: {mode: {uniform: [0, 1]}}\n", ["space.mode.uniform", "not a number key"]),
    (OK + "space: {train.d_steps: {choice: [a]}}\n", ["space.train.d_steps.choice", "must be an integer"]),
    (OK + "space: {train.d_steps: {choice: []}}\n", ["space.train.d_steps.choice", "non-empty"]),
    (OK + "space: {train.d_steps: {choice: [1, 1]}}\n", ["space.train.d_steps.choice", "twice"]),
    (OK + "space: {train.d_steps: {choices: [1, 2]}}\n", ["space.train.d_steps", "unknown key 'choices'"]),
    (OK + "space: {train.d_steps: 2}\n", ["space.train.d_steps", "expected a mapping"]),
    (OK + "space: {measurement.patch: {int: [4, 14], step: 0.5}}\n", ["space.measurement.patch.step"]),
    # conditions
    (OK.replace("{", "{measurement.name: block_patch, ")
     + "space: {measurement.patch: {int: [4, 14], when: {measurement.name: [block_patch]}}}\n",
     ["space.measurement.patch.when", "measurement.name", "not a key of space"]),
    (OK + "space:\n  measurement.p: {uniform: [0.1, 0.9]}\n"
          "  measurement.patch: {int: [4, 14], when: {measurement.p: [0.5]}}\n",
     ["space.measurement.patch.when", "must be a choice key"]),
    (OK + "space:\n  measurement.name: {choice: [block_pixel, block_patch]}\n"
          "  measurement.patch: {int: [4, 14], when: {measurement.name: [keep_patch]}}\n",
     ["space.measurement.patch.when", "keep_patch", "not among"]),
    (OK + "space:\n  mode: {choice: [ambient, ignore], when: {measurement.name: [block_pixel]}}\n"
          "  measurement.name: {choice: [block_pixel, block_patch], when: {mode: [ambient]}}\n",
     ["space.", "cycle", "mode", "measurement.name"]),
    # fixed and sampled, and keys a trial may not sample
    (OK.replace("{", "{measurement.p: 0.5, ") + "space: {measurement.p: {uniform: [0.1, 0.9]}}\n",
     ["space.measurement.p", "also set in fixed"]),
    (OK + "space: {data.name: {choice: [fashion_mnist, mnist]}}\n", ["space.data.name", "cannot be swept"]),
    ("num_samples: 4\nspace: {train.steps: {int: [100, 1000]}}\n", ["space.train.steps", "cannot be swept"]),
    (OK + "space: {train.workers: {choice: [1, 2]}}\n", ["space.train.workers", "resources.workers"]),
    (OK + "space: {eval.every: {choice: [0, 500]}}\n", ["space.eval.every", "cannot be swept"]),
    (OK.replace("{", "{train.workers: 2, ") + "space: {measurement.p: {uniform: [0.1, 0.9]}}\n",
     ["fixed", "train.workers", "resources.workers"]),
    (OK.replace("{", "{train.use_gpu: true, ") + "space: {measurement.p: {uniform: [0.1, 0.9]}}\n",
     ["fixed", "train.use_gpu", "resources.gpus_per_worker"]),
    # combinations that make an invalid config
    (OK.replace("{", "{hidden.inject_at: project, hidden.measurement.name: block_pixel, ")
     + "space: {mode: {choice: [ambient, ignore]}}\n",
     ["space:", "{mode='ignore'}", "hidden.inject_at applies only in mode=ambient"]),
    (OK.replace("{", "{measurement.name: none, ") + "space: {mode: {choice: [clean, ignore]}}\n",
     ["space:", "{mode='ignore'}", "needs measurement.name"]),
    (OK + "space: {eval.cheap_samples: {int: [2, 100]}}\n", ["space.eval.cheap_samples", "cannot be swept"]),
    (OK + "space: {train.d_steps: {int: [0, 3]}}\n", ["space:", "train.d_steps=0"]),
    (OK + "space: {train.beta1: {uniform: [0.5, 1.0]}}\n",
     ["space:", "train.beta1"]),
    (OK.replace("{", "{train.batch_size: 33, ") + "space: {measurement.p: {uniform: [0.1, 0.9]}}\n"
     "resources: {workers: 2}\n", ["fixed", "divisible"]),
    # combinations that do not fit the data (its shapes, described: not loaded)
    (OK.replace("{", "{hidden.measurement.name: block_pixel, ")
     + "space: {hidden.inject_at: {choice: [up1, nowhere]}}\n",
     ["space: the trial {hidden.inject_at='nowhere'}", "hidden.inject_at: unknown injection point 'nowhere'"]),
    (OK.replace("{", "{measurement.name: block_patch, ") + "space: {measurement.patch: {int: [4, 40]}}\n",
     ["space: the trial {measurement.patch=40}", "measurement.patch=40 is larger than the 28x28 map"]),
    (OK + "space: {measurement.p: {uniform: [0.1, 1.5]}}\n",
     ["space: the trial {measurement.p=1.5}", "measurement.p=1.5 is outside [0, 1]"]),
    (OK.replace("{", "{hidden.inject_at: up1, ")
     + "space: {hidden.measurement.name: {choice: [block_pixel, extract_patch]}}\n",
     ["hidden.measurement.name=extract_patch", "changes the feature map's shape"]),
    (OK.replace("{", "{hidden.inject_at: project, hidden.measurement.name: block_patch, ")
     + "space: {hidden.measurement.patch: {int: [2, 8]}}\n",
     ["the trial {hidden.measurement.patch=8}", "hidden.measurement.patch=8 is larger than the 7x7 map"]),
    (OK + "space: {data.limit: {choice: [1000, 40]}}\n", ["the trial {data.limit=40}", "fewer than one batch of 64"]),
    (OK.replace("{", "{model.conditional: true, data.name: image_folder, data.root: IMAGES, data.image_size: 28, "
                "data.validation_size: 2, ")
     + "space: {train.lr_d: {loguniform: [1.0e-4, 1.0e-3]}}\n", ["fixed:", "model.conditional needs every"]),
    (OK.replace("{", "{measurement.name: keep_patch, measurement.patch: 29, ")
     + "space: {train.lr_d: {loguniform: [1.0e-4, 1.0e-3]}}\n", ["fixed:", "measurement.patch=29 is larger"]),
    (OK.replace("{", "{data.name: mnist, data.root: /no/such/dir, ")
     + "space: {measurement.p: {uniform: [0.1, 0.9]}}\n",
     ["data:", "mnist: /no/such/dir does not exist"]),
    # the scheduler and the metric
    (OK + "scheduler: {name: asha, grace_period: 100}\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n",
     ["scheduler.grace_period", "eval.every=500"]),
    (OK + "scheduler: {name: asha, grace_period: 2000}\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n",
     ["scheduler.grace_period", "train.steps=2000"]),
    ("num_samples: 4\nfixed: {train.steps: 500}\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n",
     ["scheduler.grace_period", "train.steps=500"]),  # the default grace period, eval.every, is the end
    (OK + "scheduler: {name: asha, reduction_factor: 1}\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n",
     ["scheduler.reduction_factor"]),
    (OK + "scheduler: {name: hyperband}\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n", ["scheduler.name"]),
    (OK.replace("{", "{eval.every: 0, ") + "space: {measurement.p: {uniform: [0.1, 0.9]}}\n", ["eval.every"]),
    (OK.replace("{", "{eval.every: 0, ") + "scheduler: {name: fifo}\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n",
     ["eval.every"]),
    (OK + "metric: loss\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n", ["metric", "'loss'", "fid"]),
    (OK + "mode: max\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n", ["mode", "worst"]),
    (OK + "metric: classifier_score\nmode: min\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n", ["mode"]),
    (OK + "search: {algorithm: bayes}\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n", ["search.algorithm"]),
    # population-based training
    (OK + "scheduler: {name: pbt}\nspace: {train.lr_d: {loguniform: [1.0e-4, 1.0e-3]}}\n",
     ["scheduler.perturbation_interval", "multiple of eval.every=500"]),
    (OK + "scheduler: {name: pbt, perturbation_interval: 750}\nspace: {train.lr_d: {loguniform: [1.0e-4, 1.0e-3]}}\n",
     ["perturbation_interval: 750 is not a multiple of eval.every=500", "checkpoint"]),
    (OK.replace("{", "{train.checkpoint_every: 300, ")
     + "scheduler: {name: pbt, perturbation_interval: 1000}\nspace: {train.lr_d: {loguniform: [1.0e-4, 1.0e-3]}}\n",
     ["not a multiple of train.checkpoint_every=300"]),
    (OK + "scheduler: {name: pbt, perturbation_interval: 2000}\nspace: {train.lr_d: {loguniform: [1.0e-4, 1.0e-3]}}\n",
     ["perturbation_interval: 2000", "train.steps=2000"]),
    (OK + "scheduler: {name: pbt, perturbation_interval: 1000}\nspace: {mode: {choice: [ambient, ignore]}}\n",
     ["pbt perturbs the continuous keys", "has none"]),
    (OK + "scheduler: {name: pbt, perturbation_interval: 1000}\nsearch: {algorithm: tpe}\n"
     "space: {train.lr_d: {loguniform: [1.0e-4, 1.0e-3]}}\n", ["search.algorithm: tpe cannot drive pbt", "random"]),
    (OK + "metric: [fid, classifier_score]\nscheduler: {name: pbt, perturbation_interval: 1000}\n"
     "space: {train.lr_d: {loguniform: [1.0e-4, 1.0e-3]}}\n", ["pbt clones the best trials on one metric"]),
    (OK + "scheduler: {name: pbt, perturbation_interval: 1000, quantile_fraction: 0.8}\n"
     "space: {train.lr_d: {loguniform: [1.0e-4, 1.0e-3]}}\n", ["scheduler.quantile_fraction", "(0, 0.5]"]),
    (OK + "scheduler: {name: pbt, perturbation_interval: 1000}\nspace: {mode: {choice: [ambient, ignore]}, "
     "train.lr_d: {loguniform: [1.0e-4, 1.0e-3], when: {mode: [ambient]}}}\n",
     ["space.train.lr_d.when", "pbt trials all have the same keys"]),
    (OK.replace("num_samples: 4", "num_samples: 1") + "scheduler: {name: pbt, perturbation_interval: 1000}\n"
     "space: {train.lr_d: {loguniform: [1.0e-4, 1.0e-3]}}\n", ["num_samples", "at least 2"]),
    # two objectives
    (OK + "metric: [fid, classifier_score]\nscheduler: {name: asha}\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n",
     ["scheduler: asha", "two", "fid, classifier_score", "name: fifo"]),
    (OK + "metric: [fid, fid]\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n", ["metric", "two different"]),
    (OK + "metric: [fid, classifier_score, fid]\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n", ["metric"]),
    (OK + "metric: []\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n", ["metric"]),
    (OK + "metric: [fid, loss]\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n", ["metric", "'loss'"]),
    (OK + "metric: [fid, classifier_score]\nmode: min\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n",
     ["mode", "one per metric"]),
    (OK + "metric: [fid, classifier_score]\nmode: [min, min]\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n",
     ["mode", "classifier_score is better when higher"]),
    # counts
    ("fixed: {train.steps: 2000}\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n", ["num_samples", "required"]),
    ("num_samples: 0\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n", ["num_samples", ">= 1"]),
    ("num_samples: '4'\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n", ["num_samples"]),
    (OK + "max_concurrent_trials: 0\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n", ["max_concurrent_trials"]),
    # resources
    (OK + "resources: {workers: 0}\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n", ["resources.workers"]),
    (OK + "resources: {workers: 1.5}\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n", ["resources.workers"]),
    (OK + "resources: {gpus_per_worker: -1}\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n",
     ["resources.gpus_per_worker"]),
    (OK + "resources: {cpus_per_worker: 0}\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n",
     ["resources.cpus_per_worker"]),
    (OK + "resources: {gpus_per_worker: 2}\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n",
     ["resources.gpus_per_worker=2", "one GPU", "resources.workers"]),
    (OK + "resources: {workers: 2, gpus_per_worker: 0.5}\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n",
     ["resources.workers=2 with resources.gpus_per_worker=0.5", "Duplicate GPU"]),
    (OK + "resources: {cluster: {CPU: many}}\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n",
     ["resources.cluster"]),
    (OK + "resources: {cluster: 8}\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n", ["resources.cluster"]),
    (OK + "resources: {gpus: 1}\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n", ["resources.gpus", "unknown key"]),
    (OK + "resources: 2\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n", ["resources", "must be a mapping"]),
])
def test_errors_name_the_place_in_the_file(tmp_path, text, fragments):
    if "IMAGES" in text:  # an unlabelled image folder
        from PIL import Image

        (tmp_path / "images").mkdir()
        for i in range(64):
            Image.new("L", (28, 28), i).save(tmp_path / "images" / f"{i}.png")
        text = text.replace("IMAGES", str(tmp_path / "images"))
    _error(tmp_path, text, *fragments)


def test_a_missing_file_and_bad_yaml_are_errors(tmp_path):
    with pytest.raises(SpaceError, match="does not exist"):
        load_space(tmp_path / "absent.yaml")
    _error(tmp_path, "space: {measurement.p: [\n", "not valid YAML")


# A "billion laughs" YAML list (as in tests/test_config.py): each anchor lists nine aliases of the one before.
BOMB = "[" + ", ".join(f"&{name} [{', '.join([f'*{prev}' if prev else 'lol'] * 9)}]"
                       for prev, name in zip(["", *"abcdefgh"], "abcdefghi")) + "]"


@pytest.mark.parametrize("text", [
    "fixed: {measurement.steps: BOMB}\nspace: {measurement.p: {uniform: [0.1, 0.9]}}\n",  # was a MemoryError
    "space: {measurement.name: {choice: BOMB}}\n",
])
def test_an_anchor_bomb_in_a_space_file_is_refused_while_loading(tmp_path, text):
    _error(tmp_path, "num_samples: 2\n" + text.replace("BOMB", BOMB),
           "search space", "its YAML aliases expand past 10,000 nodes (an anchor bomb?); refused")


def test_a_huge_value_in_a_space_file_is_quoted_as_a_bounded_prefix(tmp_path):
    message = _error(tmp_path, f"num_samples: {'9x' * 50_000}\nspace: {{measurement.p: {{uniform: [0.1, 0.9]}}}}\n",
                     "num_samples: must be an integer >= 1, got '9x9x")
    assert len(message) < len(str(tmp_path)) + 300, message[:1000]


# --- plan_resources -------------------------------------------------------------------------------------


def _space(tmp_path, num_samples=4, max_concurrent=None, batch_size=64, **resources):
    text = (f"num_samples: {num_samples}\nfixed: {{train.steps: 2000, train.batch_size: {batch_size}}}\n"
            "space: {measurement.p: {uniform: [0.1, 0.9]}}\n")
    if max_concurrent is not None:
        text += f"max_concurrent_trials: {max_concurrent}\n"
    if resources:
        text += "resources: {" + ", ".join(f"{k}: {v}" for k, v in resources.items()) + "}\n"
    return _load(tmp_path, text)


def test_plan_resources_on_cpus(tmp_path):
    # 2 CPUs, 4 trials, 1 worker each: 1 CPU per worker and its stream, 2 trials at a time
    assert plan_resources(_space(tmp_path), [{"CPU": 2}]) == (0.75, 2)
    # one trial at a time gets both CPUs
    assert plan_resources(_space(tmp_path, max_concurrent=1), [{"CPU": 2}]) == (1.75, 1)
    # more concurrency than trials is capped by num_samples
    assert plan_resources(_space(tmp_path, num_samples=3, max_concurrent=8), [{"CPU": 16}]) == (16 / 3 - 0.25, 3)
    # 2 workers per trial on 2 CPUs: 1 CPU each, one trial at a time
    assert plan_resources(_space(tmp_path, workers=2), [{"CPU": 2}]) == (0.75, 1)
    # an explicit cpus_per_worker packs as many trials as fit
    assert plan_resources(_space(tmp_path, num_samples=8, cpus_per_worker=2), [{"CPU": 7}]) == (2.0, 3)
    assert plan_resources(_space(tmp_path, num_samples=20, cpus_per_worker=0.1), [{"CPU": 1}]) == (0.1, 2)


def test_plan_resources_refuses_a_trial_that_cannot_fit_naming_the_space_keys(tmp_path):
    # The plan itself (GPUs, fractions, every refusal): tests/run/test_plan.py.
    with pytest.raises(SweepError, match=r"resources\.workers=2 x \(1\.5 CPUs"):
        plan_resources(_space(tmp_path, workers=2, cpus_per_worker=1.5), [{"CPU": 2}])
    with pytest.raises(SweepError, match=r"resources\.cluster"):
        plan_resources(_space(tmp_path, gpus_per_worker=1), [{"CPU": 8}])


# --- trial names ------------------------------------------------------------------------------------------


def test_trial_name_is_readable_and_deterministic():
    point = {"measurement.name": "block_patch", "measurement.patch": 7, "train.lr_d": 0.000123456,
             "hidden.measurement.p": 0.123456, "mode": "ambient"}
    name = trial_name(3, point)
    assert name == "0003_name=block_patch_patch=7_lr_d=0.000123_hidden_p=0.123_mode=ambient"
    assert trial_name(3, dict(point)) == name
    assert trial_name(12, point).startswith("0012_") and trial_name(12, point) != name
    assert trial_name(5, {"train.lr_g": 1234.5678}) == "0005_lr_g=1.23e+03"


def test_trial_name_is_at_most_100_characters():
    point = {f"model.key{i}": f"value_number_{i}" for i in range(20)}
    point["model.last"] = "x" * 300
    name = trial_name(42, point)
    assert len(name) <= 100 and name.startswith("0042_key0=value_number_0") and not name.endswith("_")
    assert trial_name(42, point) == name
    long = trial_name(7, {"mode": "x" * 300})
    assert long.startswith("0007_mode=x") and len(long) == 100


# --- the project's own spaces -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SPACES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_spaces_load_and_sample_valid_configs(path):
    space = load_space(path)
    assert space.num_samples >= 1 and space.params
    if space.search.algorithm == "grid":
        points = space.grid()
    else:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        points = []
        for _ in range(10):
            trial = study.ask()
            space.define_by_run(trial)
            points.append(trial.params)
    for point in points:
        space.trial_config(point)
    assert plan_resources(space, [{"CPU": 64, "GPU": 8}])[1] >= 1


def test_condition_values_take_the_parent_key_type(tmp_path):
    """`when: {hidden.inject_at: [1]}` names the block index "1" that the choice holds as a string."""
    space = _load(tmp_path, """
num_samples: 2
fixed: {train.steps: 2000}
space:
  hidden.inject_at: {choice: [1, -1]}
  hidden.measurement.name: {choice: [block_pixel]}
  hidden.measurement.p: {uniform: [0.1, 0.5], when: {hidden.inject_at: [1]}}
""")
    (conditional,) = [p for p in space.params if p.when]
    assert conditional.when == {"hidden.inject_at": ["1"]}
    assert conditional.active({"hidden.inject_at": "1"}) and not conditional.active({"hidden.inject_at": "-1"})


# --- named bundles, exclude and table (a grid of named cells: search_spaces/paper_table.yaml) -----------------

BUNDLES = textwrap.dedent("""\
    search: {algorithm: grid}
    scheduler: {name: fifo}
    fixed: {train.steps: 2000, eval.every: 250, train.lr_d: 0.0002}
    table: {rows: row, columns: arm}
    space:
      arm:
        choice:
          clean: {mode: clean, measurement.name: none}
          ambient: {mode: ambient}
          hidden@up1: {mode: ambient, hidden.inject_at: up1}
      row:
        when: {arm: [ambient, hidden@up1]}
        choice:
          pixel:
            measurement: {name: block_pixel, p: 0.8}
            arm:
              hidden@up1: {hidden.measurement: {name: block_pixel, unit: channel, p: 0.8}}
          patch:
            measurement.name: block_patch
            measurement.patch: 14
            arm:
              hidden@up1: {hidden.measurement.name: block_patch, hidden.measurement.patch: 7}
      train.seed: {choice: [0, 1]}
    exclude:
      - {row: patch, train.seed: 1}
""")


def test_bundles_expand_into_their_config_keys_and_optuna_sees_their_names(tmp_path):
    space = _load(tmp_path, BUNDLES)
    assert [p.key for p in space.params].index("arm") < [p.key for p in space.params].index("row")
    cells = sorted((p["arm"], p.get("row"), p["train.seed"]) for p in space.grid())
    assert cells == sorted([("clean", None, 0), ("clean", None, 1)] + [
        (arm, row, seed) for arm in ("ambient", "hidden@up1") for row, seed in (("pixel", 0), ("pixel", 1), ("patch", 0))])
    assert space.num_samples == 8 and space.table == {"rows": "row", "columns": "arm"}
    # The row's keys inside G reach the hidden arm only; the clean arm has no row at all.
    assert space.config_keys({"arm": "hidden@up1", "row": "patch", "train.seed": 0}) == {
        "mode": "ambient", "hidden.inject_at": "up1", "train.seed": 0, "measurement.name": "block_patch",
        "measurement.patch": 14, "hidden.measurement.name": "block_patch", "hidden.measurement.patch": 7}
    ambient = space.trial_config({"arm": "ambient", "row": "pixel", "train.seed": 1})
    assert (ambient.measurement.name, ambient.measurement.p, ambient.hidden.inject_at) == ("block_pixel", 0.8, None)
    assert ambient.hidden.measurement.name == "none" and ambient.train.seed == 1
    clean = space.trial_config({"arm": "clean", "train.seed": 0})
    assert (clean.mode, clean.measurement.name) == ("clean", "none")
    described = space.describe()["row"]
    assert described["choice"] == ["pixel", "patch"] and described["when"] == {"arm": ["ambient", "hidden@up1"]}
    assert described["bundles"]["patch"]["arm"]["hidden@up1"]["hidden.measurement.patch"] == 7
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    space.define_by_run(trial)
    assert trial.params["arm"] in ("clean", "ambient", "hidden@up1") and "mode" not in trial.params


def test_exclude_spares_the_combinations_that_could_not_run(tmp_path):
    # unmeasure has no restoration for Gaussian-Projection: refused in the grid, accepted once excluded.
    text = BUNDLES.replace("ambient: {mode: ambient}", "unmeasure: {mode: unmeasure}\n      ambient: {mode: ambient}") \
        .replace("when: {arm: [ambient, hidden@up1]}", "when: {arm: [unmeasure, ambient, hidden@up1]}") \
        .replace("  train.seed:", "      gauss: {measurement.name: gaussian_projection}\n  train.seed:") \
        .replace("exclude:\n", "exclude:\n  - {row: gauss, arm: [unmeasure, hidden@up1]}\n")
    space = _load(tmp_path, text)
    assert not any(p.get("row") == "gauss" and p["arm"] != "ambient" for p in space.grid())
    assert sum(p.get("row") == "gauss" for p in space.grid()) == 2  # ambient, seeds 0 and 1
    refused = text.replace("  - {row: gauss, arm: [unmeasure, hidden@up1]}\n", "")
    assert refused != text
    _error(tmp_path, refused, "the trial", "arm='unmeasure'", "row='gauss'")


BUNDLE_ERRORS = [
    ("arm:\n    choice:", "mode:\n    choice:", ["space.mode.choice", "is a config key"]),
    ("ambient: {mode: ambient}", "ambient: {mode: ambient, trian.steps: 3}",
     ["space.arm.choice.ambient.trian.steps", "did you mean 'train.steps'"]),
    ("ambient: {mode: ambient}", "ambient: {mode: ambient, train.lr_d: 0.001}",
     ["space.arm.choice.ambient.train.lr_d", "also set in fixed"]),
    ("ambient: {mode: ambient}", "ambient: {mode: ambient, data.limit: 64, eval.n_samples: 10}",
     ["space.arm.choice.ambient.eval.n_samples", "cannot be swept"]),
    ("ambient: {mode: ambient}", "ambient: {mode: ambient, measurement.p: lots}",
     ["space.arm.choice.ambient.measurement.p"]),
    ("ambient: {mode: ambient}", "ambient: mode=ambient", ["space.arm.choice.ambient", "expected a mapping"]),
    ("ambient: {mode: ambient}", "0.5: {mode: ambient}", ["space.arm.choice", "0.5", "must be a string"]),
    ("ambient: {mode: ambient}", "ambient: {mode: ambient, measurement.name: block_patch}",
     ["space.arm.choice.ambient", "space.row.choice.pixel", "both set measurement.name"]),
    ("hidden@up1: {hidden.measurement.name: block_patch",
     "hidden@up2: {hidden.measurement.name: block_patch", ["space.row.choice.patch.arm", "'hidden@up2'", "arm's names"]),
    ("hidden.measurement.patch: 7}", "hidden.measurement.patch: 7, measurement.patch: 4}",
     ["space.row.choice.patch.arm.hidden@up1", "sets measurement.patch"]),
    ("when: {arm: [ambient, hidden@up1]}", "when: {arm: [ambient, hiden@up1]}", ["space.row.when", "hiden@up1"]),
    ("{row: patch, train.seed: 1}", "{rwo: patch}", ["exclude[0].rwo", "not a choice key"]),
    ("{row: patch, train.seed: 1}", "{row: pach}", ["exclude[0].row", "'pach' is not among"]),
    ("{row: patch, train.seed: 1}", "{row: patch, arm: clean}", ["exclude[0]", "matches no grid point"]),
    ("{row: patch, train.seed: 1}", "not-a-mapping", ["exclude[0]", "expected a mapping"]),
    ("search: {algorithm: grid}", "search: {algorithm: tpe}\nnum_samples: 4", ["exclude", "only a grid search"]),
    ("table: {rows: row, columns: arm}", "table: {rows: row, columns: mode}", ["table.columns", "'mode'"]),
    ("table: {rows: row, columns: arm}", "table: {rows: row, columns: row}", ["table", "both 'row'"]),
    ("table: {rows: row, columns: arm}", "table: {rows: row}", ["table", "expected {rows: KEY, columns: KEY}"]),
]


@pytest.mark.parametrize("old, new, fragments", BUNDLE_ERRORS, ids=[f[0] for _, _, f in BUNDLE_ERRORS])
def test_bundle_exclude_and_table_errors_name_their_place(tmp_path, old, new, fragments):
    assert old in BUNDLES
    _error(tmp_path, BUNDLES.replace(old, new, 1), *fragments)


def test_the_paper_table_is_every_row_by_arm_by_seed_with_the_clean_arm_shared():
    space = load_space(SPACES / "paper_table.yaml")
    cells: dict[tuple, list] = {}
    for point in space.grid():
        cells.setdefault((point.get("row"), point["arm"]), []).extend(space.seed_values(point))
    hidden = [f"{arm}@{point}" for arm in ("ambient_and_hidden", "hidden_only") for point in ("project", "up1", "up2")]
    # the CPU's: the hidden arms at up1 only, hidden_only (last) on the headline row only
    arms = ["ignore", "unmeasure", "ambient", "ambient_and_hidden@up1", "hidden_only@up1"]
    rows = ["block_pixel_p0.5", "block_pixel_p0.8", "block_pixel_p0.95", "block_patch_14", "keep_patch_14",
            "convolve_noise"]
    expected = {(None, "clean"): [0, 1, 2], ("block_pixel_p0.8", "hidden_only@up1"): [0, 1, 2]}
    expected |= {(row, arm): [0, 1, 2] for row in rows for arm in arms[:-1]}  # three seeds in every cell
    expected |= {("gaussian_projection_m100", arm): [0, 1, 2] for arm in ("ignore", "ambient")}
    assert {cell: sorted(seeds) for cell, seeds in cells.items()} == expected
    assert space.trial_count() == 3 + 6 * 4 * 3 + 3 + 2 * 3 == 84 and space.seeds == 3
    # Each arm at its searched balance: the plain GANs at clean_balance's point, the measured arms at ambient's.
    balance = {arm: (cfg.train.lr_g, cfg.model.d_width, cfg.train.ema) for arm in ("clean", *arms)
               for cfg in [space.trial_config({"arm": arm} | ({"row": "block_pixel_p0.8"} if arm != "clean" else {}))]}
    assert balance == {"clean": (0.00094, 48, 0.995), "ignore": (0.00094, 48, 0.995),
                       "unmeasure": (0.00094, 48, 0.995), "ambient": (0.00018, 32, 0.995),
                       "ambient_and_hidden@up1": (0.00018, 32, 0.995), "hidden_only@up1": (0.00018, 32, 0.995)}
    assert (space.search.algorithm, space.scheduler.name, space.table) == ("grid", "fifo", {"rows": "row", "columns": "arm"})
    # The row's patch inside G is half the feature map's side at each injection point (7, 14, 28).
    configs = {arm: space.trial_config({"arm": arm, "row": "block_patch_14"}) for arm in hidden}
    assert {arm: cfg.hidden.measurement.patch for arm, cfg in configs.items()} == {
        f"{arm}@{point}": patch for arm in ("ambient_and_hidden", "hidden_only")
        for point, patch in (("project", 4), ("up1", 7), ("up2", 14))}
    # The two hidden arms differ in what D sees of the fakes alone (the image measurement or not).
    fakes = {"ambient_and_hidden": "both", "hidden_only": "hidden_only"}
    assert {arm: cfg.hidden.fake_measurement for arm, cfg in configs.items()} == {
        arm: fakes[arm.split("@")[0]] for arm in hidden}
    ignore = space.trial_config({"arm": "ignore", "row": "block_patch_14"})
    assert ignore.hidden.inject_at is None and ignore.hidden.measurement.name == "none"
    # The CPU schedule's plan: two trials on 2 CPUs, each worker 0.75 and its data stream 0.25 beside it.
    assert plan_resources(space, [{"CPU": 2}]) == (0.75, 2)
