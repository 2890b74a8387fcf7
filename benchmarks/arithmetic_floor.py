"""How fast one RL step of `vs_trl.py` could be on this CPU at best: its matrix arithmetic
counted, divided by the best matrix-multiply rate this machine reaches at the model's shapes.

Counts the floating-point operations of the matrix products (mm, addmm, bmm, attention) of
one `entropy_rl.training.trainer.run_step` at vs_trl's work (16 prompts x 8 responses, 4 updates of
32) with `torch.utils.flop_counter.FlopCounterMode`, once with the Lemma-1 probe and once
without it (`diagnostics.probe_size=0`). Without the probe, the step runs the passes TRL's
`GRPOTrainer` runs for that work in vs_trl: generation with the KV cache, a no-grad pass
for old log-probs, and 4 forward-backward updates of the same model on the same tokens.

The rate is the best of `torch.nn.functional.linear` at the model's three projection
shapes (tokens x hidden -> hidden, -> MLP width, MLP width -> hidden), for 576 tokens (32
rows of 10 prompt and 8 response tokens): the fastest the step's largest products can run
here. Every other operation (norms, softmax, attention's small products, Python) only adds
time, so the arithmetic divided by that rate is a lower bound on a step's time, for any
implementation that does this arithmetic.

    .venv/bin/python benchmarks/arithmetic_floor.py                 # hidden 128, the default
    .venv/bin/python benchmarks/arithmetic_floor.py --hidden 256 --threads 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import vs_trl

TOKENS = 32 * 18  # one update's micro-batch: 32 rows of 10 prompt + 8 response tokens


def step_flops(policy, worker, config) -> float:
    """Matrix-product operations of one RL step (after one untimed step)."""
    from torch.utils.flop_counter import FlopCounterMode

    from entropy_rl.training import trainer
    from entropy_rl.training.distributed import Dist
    from entropy_rl.training.run_state import RunState

    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=config.train.lr)
    state = RunState.fresh(config.train.seed)
    state.step = 1  # not an evaluation step
    trainer.run_step(policy, worker, optimizer, config, state, [], Dist())
    state.step += 1
    counter = FlopCounterMode(display=False)
    with counter:
        trainer.run_step(policy, worker, optimizer, config, state, [], Dist())
    return float(counter.get_total_flops())


def best_rate(hidden: int, width: int, repeats: int = 200) -> float:
    """The highest FLOP/s of F.linear at the model's projection shapes, on TOKENS rows."""
    best = 0.0
    for inner, outer in ((hidden, hidden), (hidden, width), (width, hidden)):
        x, w = torch.randn(TOKENS, inner), torch.randn(outer, inner)
        for _ in range(20):
            torch.nn.functional.linear(x, w)
        start = time.perf_counter()
        for _ in range(repeats):
            torch.nn.functional.linear(x, w)
        seconds = (time.perf_counter() - start) / repeats
        best = max(best, 2 * TOKENS * inner * outer / seconds)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=128, help="model.hidden_size (default 128)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from entropy_rl.config import load_config
    from entropy_rl.tasks import make_task
    from entropy_rl.training.models import load_pretrained
    from entropy_rl.training.policy import Policy, local_worker

    size = [f"model.hidden_size={args.hidden}", f"model.intermediate_size={4 * args.hidden}"]
    flops = {}
    with tempfile.TemporaryDirectory(prefix="floor_") as tmp:
        directory = Path(tmp) / "model"
        vs_trl.make_model(args.hidden, directory)
        for name, extra in (("ours", []), ("without the probe", ["diagnostics.probe_size=0"])):
            config = load_config(None, [*vs_trl.OVERRIDES, *size, *extra])
            model, tokenizer = load_pretrained(directory)
            policy = Policy(model.eval(), tokenizer)
            worker = local_worker(policy, make_task(config.task))
            flops[name] = step_flops(policy, worker, config)
    rate = best_rate(args.hidden, 4 * args.hidden)
    print(f"hidden {args.hidden}, {args.threads} thread(s)")
    print(f"best F.linear rate at the model's shapes: {rate / 1e9:.1f} GFLOP/s")
    for name, count in flops.items():
        print(
            f"{name:>18}: {count / 1e9:6.2f} GFLOP per RL step, "
            f"floor {count / rate:.3f} s/step at that rate"
        )


if __name__ == "__main__":
    main()
