"""Extending the package from outside it, continued (tests/test_extension.py holds the loss
mode and the advantage estimator): a task, a rollout engine and a controller knob, each
registered here, in the test, are checked by the config and trained through the trainer."""

import numpy as np
import pytest

import entropy_rl
from conftest import HF_TINY
from entropy_rl.config import ConfigError, TaskConfig
from entropy_rl.core import CONTROL_KNOBS, Knob, register_knob
from entropy_rl.core.control import control_knob
from entropy_rl.runs.metrics_log import read_records
from entropy_rl.tasks import TASKS, Problem, Task, make_task, register_task
from entropy_rl.training import runner
from entropy_rl.training.engines import ROLLOUT_ENGINES, register_engine, unregister_engine
from entropy_rl.training.rollout.engine import transformers_engine

TASK = "pairs"
ENGINE = "counting"


class PairsTask(Task):
    """`a+b=` -> the sum, with a and b in 0..4: a task of the user's, on the user's model."""

    name = TASK
    max_response_tokens = 1

    @classmethod
    def check(cls, config: TaskConfig) -> None:
        if config.train_file:
            raise ConfigError(f"task.train_file is not read by {TASK}: it makes its problems")

    def __init__(self, config: TaskConfig) -> None:
        self._val = [self._problem(a, b) for a, b in ((0, 1), (2, 2), (4, 3), (1, 1))]

    @staticmethod
    def _problem(a: int, b: int) -> Problem:
        return Problem(prompt=f"{a}+{b}=", answer=str((a + b) % 10))

    def validation_problems(self) -> list[Problem]:
        return list(self._val)

    def sample_problems(self, n: int, rng: np.random.Generator) -> list[Problem]:
        return [self._problem(*rng.integers(0, 5, size=2)) for _ in range(n)]

    def reward(self, problem: Problem, response: str) -> float:
        return float(response.strip() == problem.answer)


@pytest.fixture
def pairs():
    cls = register_task(PairsTask)
    yield cls
    TASKS.remove(TASK)


def _hf_overrides(model) -> list[str]:
    """HF_TINY's few-second run on the tiny HF model, on the task `pairs`."""
    kept = [o for o in HF_TINY if not o.startswith("task.name=")]
    return [*kept, f"task.name={TASK}", f"model.path={model}"]


def test_a_registered_task_is_checked_and_built_by_name(pairs):
    assert isinstance(make_task(TaskConfig(name=TASK)), PairsTask)
    with pytest.raises(ConfigError, match=f"task.name={TASK} needs a model"):
        entropy_rl.load_config(None, [f"task.name={TASK}"])  # a Task needs the user's model
    with pytest.raises(ConfigError, match=f"task.train_file is not read by {TASK}"):
        entropy_rl.load_config(
            None, [f"task.name={TASK}", "model.path=m", "task.train_file=x.jsonl"]
        )
    with pytest.raises(ConfigError, match=f"task.name must be one of .*{TASK}; got 'pairz'"):
        entropy_rl.load_config(None, ["task.name=pairz", "model.path=m"])
    with pytest.raises(ValueError, match="already registered"):
        register_task(PairsTask)


def test_a_registered_task_trains_through_the_trainer(tmp_path, tiny_hf_model, pairs):
    config = entropy_rl.load_config(None, _hf_overrides(tiny_hf_model))
    runner.train(config, tmp_path / "run", show_progress=False)
    records = read_records(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2]
    assert all(0.0 <= r["val/acc"] <= 1.0 for r in records)


@pytest.fixture
def counting():
    """An engine of the user's: ours (transformers), counting the engines built; it offers
    multinomial sampling only and no LoRA."""
    built = []

    def factory(config, policy, model_dir, dist):
        built.append(model_dir)
        return transformers_engine(config, policy, model_dir, dist)

    register_engine(ENGINE, factory)
    yield built
    unregister_engine(ENGINE)


def test_a_registered_engine_is_checked_by_what_it_offers(counting):
    assert ENGINE in ROLLOUT_ENGINES
    base = [f"rollout.engine={ENGINE}"]
    assert entropy_rl.load_config(None, base).rollout.engine == ENGINE
    with pytest.raises(ConfigError, match=f"is not offered by rollout.engine={ENGINE}"):
        entropy_rl.load_config(None, [*base, "rollout.sampling=inverse_cdf"])
    with pytest.raises(ConfigError, match=r"model\.lora_rank > 0 needs a rollout engine"):
        entropy_rl.load_config(None, [*base, "model.lora_rank=4"])
    with pytest.raises(ValueError, match="already registered"):
        register_engine(ENGINE, lambda *args: None)


def test_a_registered_engine_samples_the_run(tmp_path, tiny_overrides, counting):
    config = entropy_rl.load_config(
        None, [*tiny_overrides, f"rollout.engine={ENGINE}", "train.steps=2"]
    )
    runner.train(config, tmp_path / "run", show_progress=False)
    assert len(counting) == 1  # built once, for the run
    assert [r["step"] for r in read_records(tmp_path / "run" / "metrics.jsonl")] == [0, 1, 2]


@pytest.fixture
def clip_high_knob():
    knob = register_knob(Knob("clip_high"))
    yield knob
    CONTROL_KNOBS.remove("clip_high")


def test_a_registered_knob_is_steered_in_every_mode(tmp_path, tiny_overrides, clip_high_knob):
    control = ["loss.entropy_target=0.5", "loss.entropy_control=clip_high"]
    for mode in ("ppo", "kl_cov"):
        config = entropy_rl.load_config(None, [f"loss.mode={mode}", *control])
        assert control_knob(config.loss) == clip_high_knob
    with pytest.raises(ValueError, match="a knob is a field of PolicyLossConfig"):
        register_knob(Knob("temperature"))
    config = entropy_rl.load_config(None, [*tiny_overrides, *control, "train.steps=2"])
    runner.train(config, tmp_path / "run", show_progress=False)
    trained = [r for r in read_records(tmp_path / "run" / "metrics.jsonl") if "loss/policy" in r]
    assert len(trained) == 2
    for record in trained:  # clip_high (0.2) times the controller's scale
        assert record["control/value"] == pytest.approx(0.2 * record["control/scale"])
