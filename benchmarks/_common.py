"""Helpers shared by the benchmark scripts (run as `python benchmarks/<name>.py`)."""

import itertools
import resource
import time


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(table: dict, key: str, fn):
    """`fn`, wrapped to add the seconds each call takes to `table[key]`."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            table[key] = table.get(key, 0.0) + time.perf_counter() - start

    return wrapper


def time_our_steps(parts: dict, update: str) -> None:
    """Wrap this project's step phases (`entropy_rl.training.trainer`, the rollout worker) so that
    each call adds its seconds to `parts`: rollout, reward, collect, `update` (the label of
    the updates) and probe. Read them back with `our_breakdown`."""
    from entropy_rl.training import policy, trainer

    policy.RolloutWorker.sample = timed(parts, "rollout", policy.RolloutWorker.sample)
    policy.RolloutWorker.score = timed(parts, "reward", policy.RolloutWorker.score)
    trainer.collect = timed(parts, "collect", trainer.collect)
    trainer.update = timed(parts, update, trainer.update)
    trainer._probe = timed(parts, "probe", trainer._probe)


def our_breakdown(parts: dict, steps: int, rest: str) -> dict:
    """`time_our_steps`'s seconds per step, with collect replaced by what it spends besides
    the rollout and the reward, labelled `rest` (old log-probs and statistics)."""
    split = dict(parts)
    split[rest] = split.pop("collect") - split["rollout"] - split["reward"]
    return {key: value / steps for key, value in split.items()}


def train_timed(trainer, updates_per_step: int, warmup: int, steps: int, level, sync=None):
    """Train a TRL GRPOTrainer set up for (warmup + steps) x updates_per_step optimizer steps,
    one RL step being updates_per_step of them. Returns the timed RL steps' seconds (after
    `warmup`), the memory `level()` read as training begins, and where a timed step's time
    goes: its `_generate` calls, the rest of its `_generate_and_score_completions` calls
    (reward and old log-probs), and the updates (the rest of the step). `sync()` runs before
    each step's clock is read (a CUDA synchronize)."""
    from transformers import TrainerCallback

    marks: list[float] = []
    begin: dict[str, float] = {}
    parts: dict[str, float] = {}
    counted: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            begin["level"] = level()
            marks.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % updates_per_step == 0:
                if sync is not None:
                    sync()
                marks.append(time.perf_counter())
            if state.global_step == updates_per_step * warmup:  # the breakdown: timed steps only
                counted.update(parts)

    trainer._generate = timed(parts, "rollout (generate)", trainer._generate)
    trainer._generate_and_score_completions = timed(
        parts, "score", trainer._generate_and_score_completions
    )
    trainer.add_callback(Clock())
    trainer.train()
    times = [b - a for a, b in itertools.pairwise(marks)][warmup:]
    done = {key: (parts[key] - counted.get(key, 0.0)) / steps for key in parts}
    score = done.pop("score")
    done["reward + old log-probs"] = score - done["rollout (generate)"]
    done[f"update ({updates_per_step} optimizer steps)"] = sum(times) / steps - score
    return times, begin["level"], done
