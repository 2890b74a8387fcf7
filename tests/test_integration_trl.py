"""EntropyGRPOTrainer and EntropyLawCallback on a tiny local Qwen2 model (CPU, no downloads)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "fixtures"))

pytest.importorskip("trl")

import torch
from datasets import Dataset
from make_trl_logs import (
    PROMPTS,
    digit_sum_parity_reward,
    tiny_grpo_args,
    tiny_grpo_run,
    tiny_model,
)
from transformers import TrainerControl, TrainerState, TrainingArguments
from trl import GRPOConfig

from entropy_rl.core import PolicyLossConfig
from entropy_rl.integrations.trl import EntropyGRPOTrainer, EntropyLawCallback


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A saved tiny Qwen2 model and its character tokenizer (make_trl_logs.tiny_model)."""
    path = tmp_path_factory.mktemp("tiny_qwen2")
    model, tok = tiny_model()
    model.save_pretrained(path)
    return path, tok


def make_trainer(tiny, tmp_path, entropy_config, **overrides):
    path, tok = tiny
    args = {"bf16": False, "report_to": "none", "max_steps": 2, **overrides}
    return EntropyGRPOTrainer(
        model=str(path),
        reward_funcs=digit_sum_parity_reward,
        args=GRPOConfig(**tiny_grpo_args(tmp_path / "out", **args)),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tok,
        entropy_config=entropy_config,
    )


@pytest.mark.parametrize("mode", ["clip_cov", "kl_cov"])
def test_training_logs_entropy_metrics(tiny, tmp_path, mode):
    # clip_cov_lb/ub widened so Clip-Cov has candidates in a batch of random-ish rewards.
    cfg = PolicyLossConfig(
        mode=mode, clip_cov_ratio=0.2, kl_cov_ratio=0.2, clip_cov_lb=-10.0, clip_cov_ub=10.0
    )
    trainer = make_trainer(tiny, tmp_path, cfg, max_steps=5)
    trainer.add_callback(EntropyLawCallback())
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "entropy" in entry]
    assert len(logs) == 5
    assert {"law/ceiling", "law/a", "law/b", "law/r2"} <= logs[-1].keys()  # fitted at 5 points
    assert "law/a" not in logs[-2]
    expected = {"entropy", "cov/logp_adv", "cov/logp_pi_adv", "cov/pos_frac", f"{mode}/frac"}
    if mode == "kl_cov":
        expected.add("kl_cov/abs_kl")
    for entry in logs:
        assert expected <= entry.keys()
        assert all(math.isfinite(entry[key]) for key in expected)
        assert 0.0 < entry[f"{mode}/frac"] <= 1.0
        assert 0.0 <= entry["cov/pos_frac"] <= 1.0


def test_ppo_mode_leaves_trl_loss_untouched(tiny, tmp_path):
    trainer = make_trainer(tiny, tmp_path, PolicyLossConfig(mode="ppo"), max_steps=1)
    trainer.train()
    (entry,) = [e for e in trainer.state.log_history if "entropy" in e]
    assert "cov/logp_adv" not in entry
    assert "clip_ratio/region_mean" in entry  # TRL's own loss ran


@pytest.mark.parametrize(
    ("fields", "knob"),
    [
        ({"mode": "kl_cov", "kl_cov_ratio": 0.2}, "kl_cov_coef"),
        ({"mode": "ppo", "entropy_coef": 0.01}, "entropy_coef"),  # the bonus, in our loss
    ],
)
def test_entropy_controller_sets_the_knob_every_step(tiny, tmp_path, fields, knob):
    # A target far above any entropy of this vocabulary: the strength rises every step (kp 4
    # keeps it under control_max_scale for the 3 steps).
    cfg = PolicyLossConfig(**fields, entropy_target=5.0, control_kp=4.0)
    trainer = make_trainer(tiny, tmp_path, cfg, max_steps=3, gradient_accumulation_steps=2)
    trainer.train()
    logs = [e for e in trainer.state.log_history if "entropy" in e]
    assert len(logs) == 3
    assert all("cov/logp_adv" in e for e in logs)  # our loss ran, TRL's did not
    scales = [e["control/scale"] for e in logs]  # one decision per optimizer step
    assert scales == sorted(scales) and scales[-1] > scales[0] > 1.0
    assert all(e["control/target"] == 5.0 for e in logs)
    for e in logs:
        assert e["control/value"] == pytest.approx(e["control/scale"] * getattr(cfg, knob))


def fixed_batch(trainer, seed=0):
    """A hand-built TRL micro-batch with old log-probs away from the current ones (ratio != 1)."""
    g = torch.Generator().manual_seed(seed)
    tok = trainer.processing_class
    prompt_ids = torch.tensor([tok.encode(p)[:5] for p in ["12+34", "7+8+9", "1+2+3", "40+50"]])
    completion_ids = torch.randint(3, len(tok), (4, 6), generator=g)
    completion_mask = torch.ones(4, 6, dtype=torch.long)
    completion_mask[1, 4:] = 0
    completion_mask[3, 2:] = 0
    return {
        "prompt_ids": prompt_ids,
        "prompt_mask": torch.ones_like(prompt_ids),
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "advantages": torch.tensor([1.0, -0.5, 0.25, -0.75]),
        "old_per_token_logps": -2.5 + 0.3 * torch.randn(4, 6, generator=g),
        "num_items_in_batch": completion_mask.sum(),
    }


@pytest.mark.parametrize(
    ("agg", "loss_type"),
    [("token_mean", "bnpo"), ("seq_mean_token_mean", "grpo"), ("token_mean", "dr_grpo")],
)
def test_kl_cov_without_penalty_equals_trl_unclipped_loss(tiny, tmp_path, agg, loss_type):
    """KL-Cov with kl_cov_coef=0 is the unclipped surrogate -A r; TRL's bnpo / grpo loss
    with epsilon = epsilon_high = 1e6 (clipping never active) is the same. Both losses and
    their gradients are compared on one fixed batch whose old log-probs differ from the
    current ones, so r != 1."""
    cfg = PolicyLossConfig(mode="kl_cov", kl_cov_ratio=0.2, kl_cov_coef=0.0, agg=agg)
    with pytest.warns(UserWarning, match="clip range"):
        trainer = make_trainer(tiny, tmp_path, cfg, loss_type=loss_type, epsilon=1e6)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 2  # both divide by it
    inputs = fixed_batch(trainer)
    params = [p for p in trainer.model.parameters() if p.requires_grad]

    ours = trainer.compute_loss(trainer.model, inputs)
    ours_grad = torch.autograd.grad(ours, params, allow_unused=True)
    theirs = super(EntropyGRPOTrainer, trainer)._compute_loss(trainer.model, inputs)
    theirs_grad = torch.autograd.grad(theirs, params, allow_unused=True)

    assert ours.item() != pytest.approx(0.0, abs=1e-6)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)
    for a, b in zip(ours_grad, theirs_grad, strict=True):
        if a is None or b is None:
            assert a is None and b is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    assert trainer._metrics["train"]["kl_cov/frac"][-1] > 0


def _controls(trainer, key="control/value"):
    return [e[key] for e in trainer.state.log_history if key in e]


def test_trls_adaptive_entropy_runs_with_our_loss_and_its_checkpoint(tiny, tmp_path):
    """TRL's use_adaptive_entropy with KL-Cov: the bonus starts at TRL's entropy_coef, is
    off on the first step (no entropy measured yet), moves by entropy_coef_delta after each
    optimizer step toward a target above every entropy here, and is saved and restored by
    TRL's own checkpoint."""
    trl_rule = {"use_adaptive_entropy": True, "entropy_target": 5.0, "entropy_coef_delta": 0.01}
    cfg = PolicyLossConfig(mode="kl_cov", kl_cov_ratio=0.2)
    args = {"gradient_accumulation_steps": 2, "save_strategy": "steps", "save_steps": 2}
    trainer = make_trainer(tiny, tmp_path, cfg, max_steps=3, **trl_rule, **args)
    assert trainer.entropy_config.control_rule == "fixed_step"
    trainer.train()
    assert _controls(trainer) == pytest.approx([0.0, 0.01, 0.02])
    assert all(h < 5.0 for h in _controls(trainer, "control/update_entropy"))
    assert trainer.entropy_coef == pytest.approx(0.03)  # TRL's own attribute, kept in step
    assert "cov/logp_adv" in trainer.state.log_history[0]  # our loss ran, TRL's did not
    saved = json.loads((tmp_path / "out" / "checkpoint-2" / "entropy_ctrl_state.json").read_text())
    assert saved["entropy_coef"] == pytest.approx(0.02)

    resumed = make_trainer(tiny, tmp_path, cfg, max_steps=3, **trl_rule, **args)
    resumed.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-2"))
    assert _controls(resumed)[2:] == pytest.approx([0.02])  # steps 1-2: the restored history


def test_trls_top_entropy_quantile_runs_as_our_top_entropy_mode(tiny, tmp_path):
    cfg = PolicyLossConfig(mode="ppo", entropy_coef=0.01)  # a bonus of ours: our loss runs
    trainer = make_trainer(tiny, tmp_path, cfg, max_steps=1, top_entropy_quantile=0.25)
    assert trainer.entropy_config.mode == "top_entropy"
    assert trainer.entropy_config.top_entropy_quantile == 0.25
    trainer.train()
    (entry,) = [e for e in trainer.state.log_history if "entropy" in e]
    assert 0.25 <= entry["top_entropy/frac"] < 0.5  # the top quarter, with ties


@pytest.mark.parametrize(
    ("cfg", "trl", "message"),
    [
        (PolicyLossConfig(mode="clip_cov"), {"top_entropy_quantile": 0.2}, "use one of them"),
        (
            PolicyLossConfig(mode="kl_cov", entropy_target=0.5),
            {"use_adaptive_entropy": True},
            "in one place",
        ),
        (PolicyLossConfig(mode="kl_cov", entropy_coef=0.01), {"entropy_coef": 0.02}, "one place"),
    ],
)
def test_trl_entropy_options_set_twice_are_refused(tiny, tmp_path, cfg, trl, message):
    with pytest.raises(ValueError, match=message):
        make_trainer(tiny, tmp_path, cfg, **trl)


def test_unsupported_trl_option_is_refused(tiny, tmp_path):
    with pytest.raises(ValueError, match="beta"):
        make_trainer(tiny, tmp_path, PolicyLossConfig(mode="clip_cov"), beta=0.1)


def test_auto_gains_are_refused_without_the_probe(tiny, tmp_path):
    cfg = PolicyLossConfig(mode="kl_cov", entropy_target=0.5, control_gains="auto")
    with pytest.raises(ValueError, match="Lemma-1 probe, which TRL's trainer does not run"):
        make_trainer(tiny, tmp_path, cfg)


def test_entropy_config_type_checked(tiny, tmp_path):
    with pytest.raises(TypeError, match="PolicyLossConfig"):
        make_trainer(tiny, tmp_path, {"mode": "kl_cov"})


def _on_log(callback, logs):
    args = TrainingArguments(output_dir="unused", report_to="none")
    callback.on_log(args, TrainerState(), TrainerControl(), logs=logs)
    return logs


def test_entropy_law_callback_fits_after_five_points():
    callback = EntropyLawCallback()
    a, b = 0.8, 1.2
    entropies = [1.5, 1.2, 1.0, 0.8, 0.6, 0.5]
    keys = {"law/ceiling", "law/a", "law/b", "law/r2", "law/reliable"}
    for i, h in enumerate(entropies):
        logs = _on_log(callback, {"entropy": h, "reward": b - a * math.exp(h), "loss": 0.1})
        if i < 4:
            assert not keys & logs.keys()
        else:
            assert keys <= logs.keys()
            assert logs["law/a"] == pytest.approx(a)
            assert logs["law/b"] == pytest.approx(b)
            assert logs["law/ceiling"] == pytest.approx(b - a)
            assert logs["law/r2"] == pytest.approx(1.0)
    assert len(callback.entropy) == len(entropies)


def test_entropy_law_callback_fits_an_eval_metric_with_the_last_training_entropy():
    """Trainer logs training metrics, then an evaluation's (eval_* keys, no `entropy`)."""
    callback = EntropyLawCallback(reward_key="eval_reward")
    a, b = 0.6, 1.3
    for h in [1.4, 1.1, 0.9, 0.7, 0.6, 0.5]:
        training = _on_log(callback, {"entropy": h, "reward": 0.0, "loss": 0.1})
        assert not any(key.startswith("law/") for key in training)
        evaluation = _on_log(callback, {"eval_reward": b - a * math.exp(h), "eval_loss": 0.2})
    assert callback.entropy == [1.4, 1.1, 0.9, 0.7, 0.6, 0.5]
    assert evaluation["law/a"] == pytest.approx(a) and evaluation["law/b"] == pytest.approx(b)
    assert evaluation["law/reliable"] == 1.0


def test_dr_grpo_loss_type_needs_token_mean(tiny, tmp_path):
    cfg = PolicyLossConfig(mode="kl_cov", agg="seq_mean_token_mean")
    with pytest.raises(ValueError, match="loss_type='dr_grpo'"):
        make_trainer(tiny, tmp_path, cfg, loss_type="dr_grpo")


def test_trls_default_loss_type_replaced_by_agg_is_said_once(tiny, tmp_path, recwarn):
    """TRL's default loss_type 'dapo' has no counterpart: the clip_cov / kl_cov modes aggregate
    as entropy_config.agg says, and the trainer warns so, naming the explicit setting."""
    cfg = PolicyLossConfig(mode="clip_cov")
    with pytest.warns(UserWarning, match="loss_type") as caught:
        make_trainer(tiny, tmp_path, cfg)
    (message,) = [str(w.message) for w in caught if "loss_type" in str(w.message)]
    assert message == (
        "TRL's loss_type='dapo' is not used in entropy_config.mode='clip_cov': the loss is "
        "aggregated as entropy_config.agg='token_mean' says (TRL's 'bnpo': set "
        "loss_type='bnpo' to make it explicit)"
    )
    recwarn.clear()
    make_trainer(tiny, tmp_path, cfg, loss_type="bnpo")
    make_trainer(tiny, tmp_path, PolicyLossConfig(), loss_type="dapo")  # TRL's own loss
    assert not [w for w in recwarn if "loss_type" in str(w.message)]


def test_entropy_law_callback_skips_incomplete_logs_and_failed_fits():
    callback = EntropyLawCallback(entropy_key="H", reward_key="R")
    assert _on_log(callback, {"H": 1.0}) == {"H": 1.0}  # no reward: no point
    _on_log(callback, {"H": float("nan"), "R": 0.5})  # not finite: no point
    assert callback.entropy == []
    for _ in range(6):  # constant entropy: the fit raises ValueError, nothing is added
        logs = _on_log(callback, {"H": 1.0, "R": 0.5})
        assert not any(key.startswith("law/") for key in logs)
    assert len(callback.entropy) == 6
    with pytest.raises(ValueError, match="min_points"):
        EntropyLawCallback(min_points=4)


def test_kl_cov_penalty_adds_to_the_loss(tiny, tmp_path):
    """Off-policy (old log-probs given), the selected tokens' |log r| raises the loss."""
    trainer = make_trainer(tiny, tmp_path, PolicyLossConfig(mode="kl_cov", kl_cov_ratio=0.2))
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    inputs = fixed_batch(trainer)
    with_penalty = trainer.compute_loss(trainer.model, inputs).item()
    abs_kl = trainer._metrics["train"]["kl_cov/abs_kl"][-1]
    frac = trainer._metrics["train"]["kl_cov/frac"][-1]
    trainer.entropy_config = PolicyLossConfig(mode="kl_cov", kl_cov_ratio=0.2, kl_cov_coef=0.0)
    without = trainer.compute_loss(trainer.model, inputs).item()
    assert abs_kl > 0
    # token_mean: the penalty adds coef * (selected share) * (mean |log r| over the selection).
    assert with_penalty - without == pytest.approx(frac * abs_kl, rel=1e-4)


def test_core_does_not_import_trl():
    code = "import sys, entropy_rl.core; assert 'trl' not in sys.modules, 'trl imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_trl_run_logged_to_tensorboard_is_read_by_fit_and_watch(tmp_path, capsys):
    """TRL's own GRPOTrainer with report_to="tensorboard" and an evaluation each step (the
    run of scripts/fixtures/make_trl_logs.py): fit and watch find its keys (preset trl) in
    the events Hugging Face's callback wrote, and fit there gives the law of the same numbers
    taken from the trainer's own log history."""
    from entropy_rl.analysis.law import fit_entropy_law
    from entropy_rl.analysis.readers import read_entropy_reward
    from entropy_rl.commands.cli import main

    trainer = tiny_grpo_run(tmp_path / "out", steps=6)
    by_step: dict[int, dict] = {}
    for entry in trainer.state.log_history:
        by_step.setdefault(entry["step"], {}).update(entry)
    rows = [r for r in by_step.values() if "entropy" in r and "eval_reward" in r]
    assert len(rows) == 6
    expected = fit_entropy_law([r["entropy"] for r in rows], [r["eval_reward"] for r in rows])

    series = read_entropy_reward(tmp_path / "out" / "runs")  # HF's TensorBoard events
    assert (series.kind, series.preset) == ("tensorboard", "trl")
    assert (series.entropy_key, series.reward_key) == ("train/entropy", "eval/reward")
    assert series.steps.tolist() == [r["step"] for r in rows]
    fit = fit_entropy_law(series.entropy, series.reward)
    for name in ("a", "b", "ceiling"):
        assert getattr(fit, name) == pytest.approx(getattr(expected, name), rel=1e-4, abs=1e-5)
    state = read_entropy_reward(tmp_path / "out")  # the output folder: its trainer_state.json
    assert (state.kind, state.entropy_key, state.reward_key) == (
        "trainer_state",
        "entropy",
        "eval_reward",
    )
    assert fit_entropy_law(state.entropy, state.reward).ceiling == pytest.approx(expected.ceiling)

    capsys.readouterr()  # the trainer's own log lines
    runs = str(tmp_path / "out" / "runs")
    assert main(["fit", runs, "--json", "--out", str(tmp_path / "fit")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["preset"] == "trl" and summary["fit"]["n"] == 6
    assert summary["fit"]["ceiling"] == pytest.approx(fit.ceiling)
    assert main(["watch", runs, "--once", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["step"] for x in lines] == series.steps.tolist()
    assert lines[-1]["law"]["ceiling"] == pytest.approx(fit.ceiling)
