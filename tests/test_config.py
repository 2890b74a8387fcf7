"""The config tree: scale-dependent defaults (`SCALE_DEFAULTS`), overrides, the saved
config.yaml, and what `--help` shows."""

import dataclasses

import pytest
import yaml

from entropy_rl.commands import cli
from entropy_rl.commands.api import load_config as checked_config
from entropy_rl.config import (
    SCALE_DEFAULTS,
    VERL_FIELDS,
    Config,
    ConfigError,
    ModelConfig,
    TrainConfig,
    default_config,
    describe_fields,
    dump_config,
    load_config,
    scale_defaults,
)
from entropy_rl.core import PolicyLossConfig
from entropy_rl.training import runner

EMBEDDED = {
    "train.lr": 5e-5,
    "loss.clip_cov_ratio": 0.03,
    "loss.kl_cov_ratio": 0.2,
    "loss.kl_cov_coef": 2.0,
    "model.autocast": False,
}
REAL = {
    "train.lr": 1e-6,
    "loss.clip_cov_ratio": 2e-4,
    "loss.kl_cov_ratio": 2e-3,
    "loss.kl_cov_coef": 1.0,
    "model.autocast": True,
}


def _get(config: Config, key: str):
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def _values(config: Config) -> dict:
    return {key: _get(config, key) for key in SCALE_DEFAULTS}


def test_the_table_holds_the_toy_and_the_paper_values():
    assert scale_defaults() == EMBEDDED
    assert scale_defaults("/some/model") == REAL
    paper = PolicyLossConfig()  # the core keeps the paper's values; the table reads them
    for key in ("clip_cov_ratio", "kl_cov_ratio", "kl_cov_coef"):
        assert SCALE_DEFAULTS[f"loss.{key}"].real == getattr(paper, key)
    assert all(d.why for d in SCALE_DEFAULTS.values())


def test_embedded_defaults_are_the_toy_values_and_equal_config():
    config = load_config(None)
    assert _values(config) == EMBEDDED
    assert config == Config() == default_config()
    # the dataclass defaults are read from the table, not written again
    assert TrainConfig().lr == 5e-5 and ModelConfig().autocast is False
    assert config.eval.every == 5


def test_a_model_path_selects_the_real_model_values_without_the_path_existing():
    config = load_config(None, ["model.path=/nowhere/Qwen2.5-7B"])
    assert _values(config) == REAL
    assert config == default_config("/nowhere/Qwen2.5-7B")
    # every other field is the same as on the embedded task
    real, embedded = dataclasses.asdict(config), dataclasses.asdict(Config())
    for key in [*SCALE_DEFAULTS, "model.path"]:
        section, name = key.split(".")
        del real[section][name], embedded[section][name]
    assert real == embedded


def test_clip_cov_on_the_embedded_task_selects_the_toy_ratio():
    assert load_config(None, ["loss.mode=clip_cov"]).loss.clip_cov_ratio == 0.03
    assert load_config(None, ["loss.mode=clip_cov", "model.path=m"]).loss.clip_cov_ratio == 2e-4


@pytest.mark.parametrize("path", ["", "/some/model"])
def test_an_explicit_value_wins_from_overrides_and_files(tmp_path, path):
    other = {
        "train.lr": 3e-5,
        "loss.clip_cov_ratio": 0.5,
        "loss.kl_cov_ratio": 0.01,
        "loss.kl_cov_coef": 0.3,
        "model.autocast": not scale_defaults(path)["model.autocast"],
    }
    overrides = [f"{key}={value}" for key, value in other.items()]
    assert _values(load_config(None, [f"model.path={path}", *overrides])) == other
    tree: dict = {"model": {"path": path}}
    for key, value in other.items():
        section, name = key.split(".")
        tree.setdefault(section, {})[name] = value
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump(tree))
    assert _values(load_config(file)) == other
    # one field set, the others still follow the scale
    partial = load_config(None, [f"model.path={path}", "train.lr=3e-5"])
    assert _values(partial) == {**scale_defaults(path), "train.lr": 3e-5}


def test_the_model_path_of_a_file_or_an_override_decides(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("model:\n  path: /some/model\n")
    assert _values(load_config(file)) == REAL
    assert _values(load_config(file, ["model.path="])) == EMBEDDED  # the override wins


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["loss.mode=kl_cov"],
        ["model.path=/some/model"],
        ["model.path=/some/model", "train.lr=1e-4", "loss.clip_cov_ratio=0.03"],
        ["train.lr=1e-6", "model.autocast=true"],
    ],
)
def test_a_saved_config_round_trips_and_a_resumed_run_reads_it_unchanged(tmp_path, overrides):
    config = load_config(None, overrides)
    file = tmp_path / "config.yaml"
    file.write_text(dump_config(config))
    assert load_config(file) == config
    runner.prepare_run_dir(tmp_path / "run", config)
    assert runner.load_run_config(tmp_path / "run") == config


def test_help_shows_both_values_of_a_scale_dependent_field(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    assert "train.lr = 5e-5 (embedded task) / 1e-6 (--model)" in out
    assert "loss.clip_cov_ratio = 0.03 (embedded task) / 2e-4 (--model)" in out
    assert "model.autocast = False (embedded task) / True (--model)" in out
    rows = {name: (default, doc) for name, default, doc in describe_fields()}
    assert set(SCALE_DEFAULTS) <= set(rows)
    assert SCALE_DEFAULTS["loss.kl_cov_ratio"].why in rows["loss.kl_cov_ratio"][1]
    assert rows["eval.every"][0] == "5" and rows["loss.clip_low"][0] == "0.2"


@pytest.mark.parametrize(
    ("args", "ratio"),
    [(["loss.mode=clip_cov"], 0.03), (["loss.mode=clip_cov", "--model", "/m"], 2e-4)],
)
def test_train_command_resolves_the_scale(tmp_path, monkeypatch, args, ratio):
    seen = []
    monkeypatch.setattr(runner, "train", lambda config, *a, **k: seen.append(config) or {})
    assert cli.main(["train", "--quiet", "--run-dir", str(tmp_path / "run"), *args]) == 0
    assert seen[0].loss.mode == "clip_cov" and seen[0].loss.clip_cov_ratio == ratio


def test_demo_methods_are_the_defaults_plus_the_loss_mode():
    from entropy_rl.commands.demo import method_config

    assert method_config("grpo", []) == load_config(None)
    kl_cov = method_config("kl_cov", ["train.steps=5"])
    assert kl_cov == load_config(None, ["loss.mode=kl_cov", "train.steps=5"])
    assert kl_cov.loss.kl_cov_ratio == 0.2 and kl_cov.eval.every == 5


@pytest.mark.parametrize("base", [None, "defaults", "demo"])
def test_experiment_base_defaults(tmp_path, base):
    from entropy_rl.commands.experiment import load_experiment

    spec = {"methods": {"kl": {"loss.mode": "kl_cov"}}, "tasks": {"t": {}}, "sizes": {"s": {}}}
    if base is not None:
        spec["base"] = base
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    (run,) = load_experiment(path).runs
    assert run.config == load_config(None, ["loss.mode=kl_cov", "train.seed=0"])
    (tmp_path / "mine.yaml").write_text("train:\n  lr: 3.0e-5\n")
    path.write_text(yaml.safe_dump({**spec, "base": "mine.yaml"}))
    (run,) = load_experiment(path).runs
    assert run.config.train.lr == 3e-5 and run.config.loss.kl_cov_ratio == 0.2


def _float_fields() -> list[str]:
    """Dotted names of every float field of the config tree."""
    return [
        name
        for name, _, _ in describe_fields()
        if isinstance(_get(Config(), name) if name.count(".") == 1 else None, float)
    ]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_every_float_field_refuses_non_finite_numbers(value):
    names = _float_fields()
    assert {"train.lr", "train.temperature", "train.grad_clip", "pretrain.lr"} <= set(names)
    assert len(names) >= 20
    for name in names:
        with pytest.raises(ConfigError, match="finite") as info:
            load_config(None, [f"{name}={value}"])
        message = str(info.value)
        assert message.startswith(f"{name} must be a finite number") and "\n" not in message


def test_a_yaml_file_with_nan_is_refused(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("train:\n  temperature: .nan\n")
    with pytest.raises(ConfigError, match=r"train\.temperature must be a finite number"):
        load_config(file)


def test_dr_grpo_is_an_advantage_estimator():
    assert load_config(None, ["train.advantage=dr_grpo"]).train.advantage == "dr_grpo"


@pytest.mark.parametrize(
    "argv",
    [
        ["loss.mode=kl_cov", "--run-dir", "RUN", "loss.kl_cov_ratio=2e-3"],
        ["--run-dir", "RUN", "loss.mode=kl_cov", "--quiet", "loss.kl_cov_ratio=2e-3"],
        ["loss.mode=kl_cov", "--quiet", "--run-dir", "RUN", "loss.kl_cov_ratio=2e-3"],
    ],
)
def test_overrides_may_stand_anywhere_on_the_command_line(tmp_path, monkeypatch, argv):
    seen = []
    monkeypatch.setattr(runner, "train", lambda config, *a, **k: seen.append((config, a)) or {})
    argv = [str(tmp_path / "run") if a == "RUN" else a for a in argv]
    assert cli.main(["train", *argv]) == 0
    config, (run_dir,) = seen[0]
    assert config.loss.mode == "kl_cov" and config.loss.kl_cov_ratio == 2e-3
    assert run_dir == tmp_path / "run"


def test_a_late_unknown_option_is_still_refused(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "loss.mode=kl_cov", "--run-dir", "x", "--bogus", "a=1"])
    assert info.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_probe_tokens_must_be_positive_while_the_probe_is_on():
    assert Config().diagnostics.probe_tokens == 2048
    for bad in ("0", "-3"):
        with pytest.raises(ConfigError) as info:
            load_config(None, [f"diagnostics.probe_tokens={bad}"])
        message = str(info.value)
        assert message.startswith("diagnostics.probe_tokens must be >= 1") and "\n" not in message
    off = load_config(None, ["diagnostics.probe_size=0", "diagnostics.probe_tokens=0"])
    assert off.diagnostics.probe_tokens == 0


@pytest.mark.parametrize("estimator", ["grpo", "dr_grpo", "rloo", "reinforce_pp"])
def test_a_group_relative_estimator_refuses_a_group_of_one(estimator):
    """A group of one response is its own baseline: every advantage 0 (RLOO's is undefined),
    so a run would train nothing; the config says so in one line."""
    import torch

    from entropy_rl.core import compute_advantages

    try:
        advantages = compute_advantages(torch.tensor([[0.0], [1.0], [0.5]]), estimator)
        assert not advantages.any()
    except ValueError:
        assert estimator == "rloo"
    with pytest.raises(ConfigError) as info:
        checked_config(None, [f"train.advantage={estimator}", "train.group_size=1"])
    message = str(info.value)
    assert message.startswith(f"train.group_size must be >= 2 for train.advantage={estimator}")
    assert "\n" not in message
    assert checked_config(None, [f"train.advantage={estimator}", "train.group_size=2"])


def test_a_field_named_as_verl_names_it_is_refused_with_ours_named(tmp_path):
    assert set(VERL_FIELDS.values()) <= {name for name, _, _ in describe_fields()}
    with pytest.raises(ConfigError) as info:
        load_config(None, ["data.train_files=x.parquet"])
    assert str(info.value) == (
        "unknown config field 'data.train_files' (verl's name; ours is task.train_file)"
    )
    file = tmp_path / "verl.yaml"
    file.write_text("actor_rollout_ref:\n  rollout:\n    n: 4\n")
    with pytest.raises(
        ConfigError,
        match=r"'actor_rollout_ref\.rollout\.n' \(verl's name; ours is train\.group_size\)",
    ):
        load_config(file)
    with pytest.raises(ConfigError, match=r"^unknown config field 'data'$"):
        load_config(None, ["data.shuffle=true"])
