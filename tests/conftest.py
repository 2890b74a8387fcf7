"""Shared fixtures: a tiny configuration whose base model is made once per test session."""

import pytest

from entropy_rl.config import load_config

TINY = [
    "model.hidden_size=32",
    "model.num_layers=1",
    "model.num_heads=2",
    "model.intermediate_size=64",
    "pretrain.steps=40",
    "pretrain.batch_size=64",
    "pretrain.lr=3e-3",
    "train.steps=6",
    "train.prompts_per_step=4",
    "train.group_size=4",
    "train.mini_batches=2",
    "train.save_every=2",
    "eval.every=2",
    "eval.samples=2",
    "task.val_size=16",
    "diagnostics.probe_size=8",
]


@pytest.fixture(scope="session")
def base_cache(tmp_path_factory):
    """A pretrain cache directory shared by the session's tiny runs."""
    return tmp_path_factory.mktemp("base_models")


@pytest.fixture
def tiny_overrides(base_cache):
    """CLI-style overrides for a run of a few seconds."""
    return [*TINY, f"pretrain.cache_dir={base_cache}"]


@pytest.fixture
def tiny_config(tiny_overrides):
    def make(*extra):
        return load_config(None, [*tiny_overrides, *extra])

    return make


def _first_digit_even(self, problem, response):
    """A reward any policy earns about half the time: the response starts with an even digit."""
    return 1.0 if response[:1] in "02468" else 0.0


@pytest.fixture
def easy_reward(monkeypatch):
    """Replace sum3's verifier, which a seconds-old tiny model never satisfies, with one that
    pays about half the samples, so advantages are non-zero and every update does something."""
    from entropy_rl.tasks.sum3 import Sum3Task

    monkeypatch.setattr(Sum3Task, "reward", _first_digit_even)
    return _first_digit_even
