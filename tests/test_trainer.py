"""The RL loop end to end on a tiny model: metrics, checkpoints, resume, diagnostics, faults."""

import math

import pytest
import torch

from entropy_rl.runs.checkpoint import find_checkpoint
from entropy_rl.runs.metrics_log import read_records
from entropy_rl.training import runner, trainer
from entropy_rl.training.models import load_pretrained
from entropy_rl.training.pretrain import base_model_dir

STEP_KEYS = {
    "step", "reward/mean", "entropy/mean", "entropy/by_position", "cov/logp_adv",
    "cov/logp_pi_adv", "cov/pos_frac", "dynamics/dH_actual", "dynamics/dH_lemma1",
    "ppo/clip_frac", "ppo/approx_kl", "grad/norm", "response/len_mean", "time/step_s",
    "time/tokens_per_s", "faults/reward_errors", "faults/skipped_steps",
}  # fmt: skip
VAL_KEYS = {"val/acc", "val/acc_greedy", "val/pass_at_k"}


def _deterministic(records):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in records]


@pytest.mark.parametrize("mode", ["ppo", "clip_cov", "kl_cov"])
def test_run_writes_metrics_checkpoint_plots_and_changes_every_parameter(
    tmp_path, tiny_config, easy_reward, mode
):
    config = tiny_config(f"loss.mode={mode}", "loss.clip_cov_ratio=0.2", "loss.kl_cov_ratio=0.2")
    summary = runner.train(config, tmp_path / "run", show_progress=False)
    run = tmp_path / "run"
    records = read_records(run / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(7))
    for record in records[:-1]:
        assert record.keys() >= STEP_KEYS
        if mode != "ppo":
            assert f"{mode}/frac" in record
    assert all(records[s].keys() >= VAL_KEYS for s in (0, 2, 4, 6))
    assert any(r["reward/mean"] > 0 for r in records)
    assert all(r["val/pass_at_k"] >= r["val/acc"] for r in records if "val/acc" in r)
    assert (run / "config.yaml").is_file() and (run / "summary.json").is_file()
    assert (run / "dynamics.png").stat().st_size > 0 and (run / "entropy_law.png").is_file()
    assert summary["steps"] == 6
    base, _ = load_pretrained(base_model_dir(config))
    trained, _ = load_pretrained(find_checkpoint(run) / "model")
    unchanged = [
        name
        for (name, p0), (_, p1) in zip(
            base.named_parameters(), trained.named_parameters(), strict=True
        )
        if torch.equal(p0, p1)
    ]
    assert not unchanged


def test_a_run_draws_its_tokens_by_rollout_sampling(tmp_path, tiny_config, monkeypatch):
    """rollout.sampling reaches the sampler of every rollout and evaluation of a run; with
    inverse_cdf the run completes, and its first rollout differs from multinomial's."""
    from entropy_rl.training.rollout import engine

    seen, firsts = [], {}
    original = engine.sample

    def recording(*args, **kwargs):
        seen.append(kwargs["sampling"])
        rollout = original(*args, **kwargs)
        firsts.setdefault(kwargs["sampling"], rollout.response_ids)
        return rollout

    monkeypatch.setattr(engine, "sample", recording)
    for method in ("multinomial", "inverse_cdf"):
        seen.clear()
        config = tiny_config("train.steps=2", f"rollout.sampling={method}")
        assert runner.train(config, tmp_path / method, show_progress=False)["steps"] == 2
        assert seen and set(seen) == {method}
    assert not torch.equal(firsts["multinomial"], firsts["inverse_cdf"])


def test_existing_run_dir_is_refused(tmp_path, tiny_config):
    runner.train(tiny_config("train.steps=1"), tmp_path / "run", show_progress=False)
    with pytest.raises(runner.ConfigError, match="--resume"):
        runner.train(tiny_config("train.steps=1"), tmp_path / "run", show_progress=False)


class _Killed(Exception):
    pass


def test_resume_after_kill_reproduces_the_uninterrupted_run(
    tmp_path, tiny_config, easy_reward, monkeypatch
):
    config = tiny_config("loss.mode=clip_cov", "loss.clip_cov_ratio=0.2")
    runner.train(config, tmp_path / "full", show_progress=False)
    full = _deterministic(read_records(tmp_path / "full" / "metrics.jsonl"))

    real_step = runner.run_step
    calls = []

    def dying_step(*args, **kwargs):  # killed during step 3, after the step-2 checkpoint
        calls.append(1)
        if len(calls) == 4:
            raise _Killed
        return real_step(*args, **kwargs)

    monkeypatch.setattr(runner, "run_step", dying_step)
    with pytest.raises(_Killed):
        runner.train(config, tmp_path / "killed", show_progress=False)
    monkeypatch.setattr(runner, "run_step", real_step)
    assert len(read_records(tmp_path / "killed" / "metrics.jsonl")) == 3
    runner.train(None, tmp_path / "killed", resume=True, show_progress=False)
    resumed = _deterministic(read_records(tmp_path / "killed" / "metrics.jsonl"))
    assert resumed == full


def test_lemma1_tracks_the_probe_entropy_change_at_small_lr(tmp_path, tiny_config, easy_reward):
    # One update a step: Lemma 1's error is second order, so it shrinks with the step size
    # (measured on the tiny base model: 4%, 2%, 1% of the change at lr 2e-5, 1e-5, 5e-6).
    # Steps whose change is under 1e-5 nats (the reward's easy signal learnt, advantages ~0)
    # sit near float32's noise in a difference of entropies ~2.5 and are not compared.
    config = tiny_config("train.lr=1e-5", "train.steps=5", "train.mini_batches=1")
    runner.train(config, tmp_path / "run", show_progress=False)
    records = read_records(tmp_path / "run" / "metrics.jsonl")[:-1]
    compared = [r for r in records if abs(r["dynamics/dH_actual"]) > 1e-5]
    assert len(compared) >= 2
    for r in compared:
        actual, predicted = r["dynamics/dH_actual"], r["dynamics/dH_lemma1"]
        assert abs(predicted - actual) <= 0.05 * abs(actual), r


def test_failing_rewards_count_as_zero(tmp_path, tiny_config, easy_reward, monkeypatch):
    from entropy_rl.tasks.sum3 import Sum3Task

    real_reward = easy_reward
    calls = []

    def flaky(self, problem, response):
        calls.append(1)
        if len(calls) % 7 == 0:
            raise RuntimeError("verifier crashed")
        return real_reward(self, problem, response)

    monkeypatch.setattr(Sum3Task, "reward", flaky)
    runner.train(tiny_config("train.steps=2"), tmp_path / "run", show_progress=False)
    records = read_records(tmp_path / "run" / "metrics.jsonl")
    assert sum(r["faults/reward_errors"] for r in records) > 0
    assert sum(r["faults/val_reward_errors"] for r in records if "val/acc" in r) > 0


def test_repeated_non_finite_losses_stop_the_run_with_checkpoint_intact(
    tmp_path, tiny_config, easy_reward, monkeypatch
):
    real_loss = trainer.policy_loss
    steps_seen = []

    def poisoned(*args, **kwargs):
        loss, metrics = real_loss(*args, **kwargs)
        return (loss * math.nan if len(steps_seen) >= 3 else loss), metrics

    real_step = runner.run_step

    def counting_step(policy, worker, optimizer, config, state, val, dist):
        steps_seen.append(state.step)
        return real_step(policy, worker, optimizer, config, state, val, dist)

    monkeypatch.setattr(trainer, "policy_loss", poisoned)
    monkeypatch.setattr(runner, "run_step", counting_step)
    config = tiny_config("train.max_bad_steps=3", "train.mini_batches=2")
    with pytest.raises(trainer.TrainingError, match="non-finite"):
        runner.train(config, tmp_path / "run", show_progress=False)
    records = read_records(tmp_path / "run" / "metrics.jsonl")
    assert records[-1]["step"] == 2 and records[-1]["faults/skipped_steps"] == 2
    saved = torch.load(find_checkpoint(tmp_path / "run") / "trainer_state.pt", weights_only=True)
    assert saved["run_state"]["step"] == 2  # the checkpoint written after step 1
    trained, _ = load_pretrained(find_checkpoint(tmp_path / "run") / "model")
    assert all(torch.isfinite(p).all() for p in trained.parameters())


def test_a_hanging_reward_times_out_and_counts(tmp_path, tiny_config, easy_reward, monkeypatch):
    import time

    from entropy_rl.tasks.sum3 import Sum3Task

    calls = []

    def sometimes_hangs(self, problem, response):
        calls.append(1)
        if len(calls) == 5:
            time.sleep(3600)  # abandoned in its daemon thread after the timeout
        return easy_reward(self, problem, response)

    monkeypatch.setattr(Sum3Task, "reward", sometimes_hangs)
    config = tiny_config("train.steps=1", "train.reward_timeout_s=0.5", "eval.every=100")
    start = time.perf_counter()
    runner.train(config, tmp_path / "run", show_progress=False)
    assert time.perf_counter() - start < 60
    records = read_records(tmp_path / "run" / "metrics.jsonl")
    assert (
        sum(r["faults/reward_errors"] + r.get("faults/val_reward_errors", 0) for r in records) == 1
    )


def test_scoring_and_probe_passes_use_a_float32_head_under_bf16_autocast():
    """Under bf16 autocast (a GPU's in a run; the CPU's here) the trainer's no-grad passes
    give float32 logits from a float32 final projection, so a small change's Lemma-1
    prediction and measured entropy change agree with the float32 run's."""
    from entropy_rl.config import ModelConfig, load_config
    from entropy_rl.training.distributed import Dist
    from entropy_rl.training.models import build_model
    from entropy_rl.training.policy import Policy
    from entropy_rl.training.rollout import Rollout

    config = load_config(
        None, ["train.prompts_per_step=2", "train.group_size=4", "diagnostics.probe_size=4"]
    )
    shape = ModelConfig(
        hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, init_std=0.1
    )
    g = torch.Generator().manual_seed(1)
    rollout = Rollout(
        torch.randint(3, 64, (8, 4), generator=g),  # (B, P)
        torch.ones(8, 4, dtype=torch.long),
        torch.randint(3, 64, (8, 6), generator=g),  # (B, T)
        torch.ones(8, 6, dtype=torch.long),
    )
    results = {}
    for autocast in (False, True):
        policy = Policy(build_model(shape, 64, max_positions=16, seed=0).eval(), None)
        states = trainer._probe_states(rollout.response_mask, config, Dist())  # (4, 6)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            old, entropy, probe = trainer._score_tokens(policy, rollout, config, Dist(), states)
        assert old.dtype == entropy.dtype == probe.before.logits(slice(None)).dtype == torch.float32
        assert probe.before.hidden.shape == (4 * 6, 64)
        with torch.no_grad():
            policy.model.get_decoder().norm.weight.mul_(1 + 1e-3)
        batch = trainer.Batch(rollout, torch.zeros(8), old, probe, None, config.loss)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            results[autocast] = (entropy, trainer._probe(policy, batch, config, Dist()))
    (h32, exact), (h16, mixed) = results[False], results[True]
    torch.testing.assert_close(h16, h32, rtol=0, atol=1e-2)
    for key in ("dynamics/dH_actual", "dynamics/dH_lemma1"):
        assert exact[key] != 0 and abs(mixed[key] - exact[key]) < 0.05 * abs(exact[key]), key


def _probe_policy_and_rollout(response_len: int):
    """A tiny policy and 8 responses of `response_len` columns, with padding after eos."""
    from entropy_rl.config import ModelConfig
    from entropy_rl.training.models import build_model
    from entropy_rl.training.policy import Policy
    from entropy_rl.training.rollout import Rollout

    shape = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    model = build_model(shape, 24, max_positions=64, seed=0).eval()
    g = torch.Generator().manual_seed(2)
    lengths = torch.randint(1, response_len + 1, (8,), generator=g)  # (B,)
    mask = (torch.arange(response_len) < lengths[:, None]).long()  # (B, T)
    rollout = Rollout(
        torch.randint(3, 24, (8, 3), generator=g),  # (B, P)
        torch.ones(8, 3, dtype=torch.long),
        torch.randint(3, 24, (8, response_len), generator=g) * mask,  # (B, T)
        mask,
    )
    return Policy(model, None), rollout


@pytest.mark.parametrize("probe_tokens,logits_mib", [(7, 256), (1000, 256), (1000, 1e-4)])
def test_the_kept_probe_states_do_not_grow_with_the_response_length(probe_tokens, logits_mib):
    """The probe keeps min(probe_tokens, valid states) hidden states (S, H), gathered across
    the scoring pass's micro-batches (2 responses each), and a copy of the head; the logits
    they give equal the full logits' rows, also when the scoring pass works a position at a
    time (train.logits_mib tiny)."""
    from entropy_rl.config import load_config
    from entropy_rl.training.distributed import Dist
    from entropy_rl.training.rollout import response_logits

    overrides = ["train.prompts_per_step=2", "train.group_size=4", "train.mini_batches=2"]
    overrides += ["train.micro_batches=2", "diagnostics.probe_size=5"]
    overrides += [f"diagnostics.probe_tokens={probe_tokens}", f"train.logits_mib={logits_mib}"]
    config = load_config(None, overrides)
    shapes = []
    for response_len in (12, 24):
        policy, rollout = _probe_policy_and_rollout(response_len)
        states = trainer._probe_states(rollout.response_mask, config, Dist())  # (5, T)
        _, _, probe = trainer._score_tokens(policy, rollout, config, Dist(), states)
        valid = int(rollout.response_mask[:5].sum())
        assert probe.before.hidden.shape == (min(probe_tokens, valid), 32)  # (S, H)
        head = policy.model.get_output_embeddings().weight
        assert probe.before.weight.shape == head.shape
        assert probe.before.weight.data_ptr() != head.data_ptr()  # a copy: updates follow
        shapes.append(probe.before.hidden.shape)
        with torch.no_grad():
            full = response_logits(policy.model, rollout.select(slice(0, 5)))  # (5, T, V)
        picked = probe.before.logits(slice(None))  # (S, V)
        torch.testing.assert_close(picked, full[states], rtol=1e-5, atol=1e-6)
    if probe_tokens == 7:
        assert shapes[0] == shapes[1] == (7, 32)
