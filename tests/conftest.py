"""Shared fixtures: a tiny configuration whose base model is made once per test session
(once per pytest-xdist worker: each worker has its own session and temporary folders).
torch and the trainer are imported where they are used: the pytest-xdist controller, which
runs no test, imports this file too."""

import os

import pytest

from entropy_rl.config import load_config


def pytest_configure(config):
    """One torch thread in each pytest-xdist worker (pyproject's addopts run one per CPU)
    and in the processes its tests start: two workers with a thread per core each
    oversubscribe the cores, and OpenMP's waiting threads then make a test several times
    slower on 2 cores."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


WHOLE_MODULES = (
    "test_distributed.py",  # worker_out: one torchrun job
    "test_entropy_control.py",  # controlled: three runs
    "test_eval.py",  # trained_run: one run
    "test_lora.py",  # kl_runs and clip_run: four runs
    "test_resume.py",  # runs: two runs
)
"""Modules whose tests share a costly module fixture: pytest-xdist gives each one whole to
a single worker, which makes the fixture once (spread over two workers, both would)."""


def pytest_xdist_make_scheduler(config, log):
    """`--dist load` (pytest-xdist's default), except that each of WHOLE_MODULES goes to one
    worker. (`--dist loadgroup` with xdist_group marks would say the same, but pytest-xdist
    3.8 names the group in `item._nodeid`, which pytest 9 no longer reads: the marks were
    ignored.) Whole modules are handed out first, as LoadScopeScheduling hands out its
    largest units first."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class WholeModules(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module.endswith(WHOLE_MODULES) else nodeid

    return WholeModules(config, log)


TINY = [
    "model.hidden_size=32",
    "model.num_layers=1",
    "model.num_heads=2",
    "model.intermediate_size=64",
    "pretrain.max_steps=40",
    "pretrain.cooldown_steps=20",
    "pretrain.batch_size=64",
    "pretrain.lr=3e-3",
    "pretrain.min_greedy=0",  # a seconds-old base model learns no addition: use it anyway
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
    """A pretrain cache directory shared by the session's tiny runs, with TINY's base model
    made in it here, in this process (a test's `entropy-rl` subprocess that found it missing
    would make it after seconds of imports, in whichever test came first)."""
    from entropy_rl.training.pretrain import pretrain

    cache = tmp_path_factory.mktemp("base_models")
    pretrain(load_config(None, [*TINY, f"pretrain.cache_dir={cache}"]))
    return cache


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


TINY_HF_ALPHABET = "0123456789+="
CHAT_TEMPLATE = "{% for m in messages %}{{ m['content'] }}{% endfor %}"


@pytest.fixture(scope="session")
def tiny_hf_model(tmp_path_factory):
    """A random 2-layer Qwen2 and a tokenizer with a chat template, saved with
    save_pretrained: what `--model PATH` loads."""
    from entropy_rl.config import ModelConfig
    from entropy_rl.training.models import build_model, build_tokenizer

    tokenizer = build_tokenizer(TINY_HF_ALPHABET)
    tokenizer.chat_template = CHAT_TEMPLATE
    shape = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    model = build_model(shape, len(tokenizer), max_positions=64, seed=0)
    directory = tmp_path_factory.mktemp("tiny_hf")
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def write_jsonl(path, rows):
    import json

    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def sums_jsonl(tmp_path):
    """Twelve `a+b=` prompts with their sums, one JSON object per line."""
    rows = [{"prompt": f"{a}+{b}=", "answer": str(a + b)} for a in range(3) for b in range(4)]
    return write_jsonl(tmp_path / "train.jsonl", rows)


HF_TINY = [
    "task.name=dataset",
    "task.max_response_tokens=3",
    "task.val_size=4",
    "train.steps=2",
    "train.prompts_per_step=4",
    "train.group_size=4",
    "train.mini_batches=2",
    "eval.every=1",
    "eval.samples=2",
    "diagnostics.probe_size=4",
    "loss.entropy_coef=0.01",
]
"""Overrides of a few-second run of the tiny HF model on a data file (with --model and
task.train_file); the entropy bonus moves every weight even when no reward is earned."""


class Killed(Exception):
    """Raised in place of a training step: a crash mid-run."""


def train_killed_at(config, run_dir, call: int) -> None:
    """Train `config` into `run_dir`, killed (Killed) in place of its `call`-th step."""
    from entropy_rl.training import runner

    real_step, calls = runner.run_step, []

    def dying_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise Killed
        return real_step(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "run_step", dying_step)
        with pytest.raises(Killed):
            runner.train(config, run_dir, show_progress=False)


def full_killed_resumed(config, root, call: int = 6) -> None:
    """Train `config` (with `_first_digit_even` as sum3's reward) into root/full; again
    into root/partial, killed in place of its `call`-th step; then a copy of that,
    root/resumed, resumed."""
    import shutil

    from entropy_rl.tasks.sum3 import Sum3Task
    from entropy_rl.training import runner

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Sum3Task, "reward", _first_digit_even)
        runner.train(config, root / "full", show_progress=False)
        train_killed_at(config, root / "partial", call)
        shutil.copytree(root / "partial", root / "resumed")
        runner.train(None, root / "resumed", resume=True, show_progress=False)
