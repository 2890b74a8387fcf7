"""sum3 with an exploration bottleneck: the base model learns a common but wrong strategy.

Prompts, responses and the reward are sum3's (`23+45+67=` -> `068,135`, reward on the total).
Only the demonstrations the base model learns from differ:

1. A *trap* prompt is one where the units digits of a and b sum to 10 or more, so the partial
   sum a+b carries into the tens (about 45% of prompts).
2. On a trap prompt, a demonstration follows the wrong strategy with probability
   `task.trap_rate`: it drops that carry, writing a+b-10 as the partial sum and a+b+c-10 as
   the total (consistent arithmetic from a wrong partial sum). Otherwise it is correct.
3. Digit noise (`pretrain.noise`) is applied on top, as for sum3.
4. The base model is sum3's, fine-tuned on these demonstrations (`pretrain.finetune_steps`):
   trained from scratch on them, the 1M-parameter model had not learnt the units digit of the
   total after 900-1,500 steps (greedy accuracy 0.06-0.16), where sum3 alone learns it.

So the base model's greedy answer is wrong on about 45% of the prompts, and the right answer
there hangs on one rarely sampled token (the tens digit of the partial sum): a path RL can
only reinforce if it still samples it.
"""

from __future__ import annotations

import numpy as np

from entropy_rl.config import TaskConfig
from entropy_rl.tasks.base import Problem, noisy_digits, register_task
from entropy_rl.tasks.sum3 import Sum3Task


def operands(problem: Problem) -> tuple[int, int, int]:
    """(a, b, c) of a sum3 prompt `a+b+c=`."""
    a, b, c = (int(x) for x in problem.prompt.rstrip("=").split("+"))
    return a, b, c


def is_trap(problem: Problem) -> bool:
    """True when a+b carries from the units into the tens."""
    a, b, _ = operands(problem)
    return a % 10 + b % 10 >= 10


def wrong_answer(problem: Problem) -> str:
    """The dropped-carry response: partial sum a+b-10, total a+b+c-10."""
    a, b, c = operands(problem)
    return f"{a + b - 10:03d},{a + b + c - 10:03d}"


@register_task
class Sum3TrapTask(Sum3Task):
    """sum3 whose demonstrations drop the a+b carry on trap prompts with rate `task.trap_rate`."""

    name = "sum3_trap"
    base_task = "sum3"
    base_model_fields = (*Sum3Task.base_model_fields, "trap_noise")
    inert_fields = ()  # its trap_rate shapes its base model

    def __init__(self, config: TaskConfig) -> None:
        super().__init__(config)
        self.trap_rate = config.trap_rate
        self.trap_noise = config.trap_noise

    def demonstration(self, problem: Problem, rng: np.random.Generator, noise: float) -> str:
        """The wrong strategy on a trap prompt with probability `trap_rate`, then digit noise
        (`task.trap_noise` when set, else `noise`, pretrain.noise).

        Draws one uniform number for every problem, trap or not, so streams stay aligned."""
        wrong = rng.random() < self.trap_rate and is_trap(problem)
        noise = noise if self.trap_noise is None else self.trap_noise
        return noisy_digits(wrong_answer(problem) if wrong else problem.answer, rng, noise)
