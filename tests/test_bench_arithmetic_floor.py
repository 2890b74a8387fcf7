"""benchmarks/arithmetic_floor.py: its FLOP count of an RL step and its GEMM rate."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import arithmetic_floor
import vs_trl

from entropy_rl.config import load_config
from entropy_rl.tasks import make_task
from entropy_rl.training.models import count_parameters, load_pretrained
from entropy_rl.training.policy import Policy, local_worker


def test_step_flops_count_the_probe_and_the_passes(tmp_path):
    vs_trl.make_model(32, tmp_path / "model")
    size = ["model.hidden_size=32", "model.intermediate_size=128"]
    flops = {}
    for probe in (0, 64):
        config = load_config(None, [*vs_trl.OVERRIDES, *size, f"diagnostics.probe_size={probe}"])
        model, tokenizer = load_pretrained(tmp_path / "model")
        policy = Policy(model.eval(), tokenizer)
        worker = local_worker(policy, make_task(config.task))
        flops[probe] = arithmetic_floor.step_flops(policy, worker, config)
        params = count_parameters(model)
    # at least the updates' forward and backward: 6 x params per token, 128 rows of >= 11 tokens
    assert flops[0] > 6 * params * 128 * 11
    assert flops[64] > flops[0]


def test_best_rate_is_a_positive_rate():
    torch.manual_seed(0)
    assert 1e6 < arithmetic_floor.best_rate(32, 128, repeats=5) < 1e15
