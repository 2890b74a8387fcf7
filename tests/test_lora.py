"""LoRA (model.lora_rank > 0): only the adapters train and the base weights stay bit for bit
what they were; the update lowers the loss; Clip-Cov, KL-Cov and the diagnostics run; the
checkpoint holds the adapter only and a resume after a kill gives the uninterrupted run's
metrics and adapter; `entropy-rl eval` reads the adapter; a bad value is one line and exit
code 2; torchrun trains it."""

import json
import math
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import entropy_rl
from conftest import HF_TINY, TINY, _first_digit_even, full_killed_resumed
from entropy_rl.commands import cli
from entropy_rl.commands.evaluate import evaluate_model
from entropy_rl.config import ModelConfig, load_config
from entropy_rl.errors import ConfigError
from entropy_rl.runs.checkpoint import find_checkpoint
from entropy_rl.runs.metrics_log import read_records
from entropy_rl.tasks.base_models import base_model_dir
from entropy_rl.tasks.sum3 import Sum3Task
from entropy_rl.training import runner
from entropy_rl.training.distributed import Dist
from entropy_rl.training.lora import add_lora, is_adapter, load_adapter
from entropy_rl.training.models import build_model, build_tokenizer, load_pretrained
from entropy_rl.training.policy import Policy
from entropy_rl.training.rollout import (
    HeadInputs,
    Rollout,
    head_parameters,
    hidden_at,
    response_logits,
)
from entropy_rl.training.trainer import Batch, optimizer_step

LORA = ["model.lora_rank=4", "model.lora_alpha=8"]
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


def _deterministic(run):
    return [
        {k: v for k, v in r.items() if not k.startswith("time/")}
        for r in read_records(run / "metrics.jsonl")
    ]


def _adapter(checkpoint):
    return load_file(checkpoint / "model" / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def kl_runs(tmp_path_factory, base_cache):
    """A KL-Cov LoRA run; the same run killed during step 5 (checkpoints 2 and 4), then
    resumed."""
    root = tmp_path_factory.mktemp("lora_kl")
    config = load_config(
        None, [*TINY, f"pretrain.cache_dir={base_cache}", *LORA, "loss.mode=kl_cov"]
    )
    full_killed_resumed(config, root)
    return root, config


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory, base_cache):
    """A Clip-Cov LoRA run, with its policy and optimizer, and the weights it started from."""
    root = tmp_path_factory.mktemp("lora_clip")
    overrides = [*TINY, f"pretrain.cache_dir={base_cache}", *LORA, "loss.mode=clip_cov"]
    config = load_config(None, [*overrides, "loss.clip_cov_ratio=0.2", "loss.clip_cov_lb=0"])
    seen = {}
    real_loop = runner._loop

    def spying_loop(run_dir, config, policy, worker, optimizer, state, *args):
        start = {k: v.detach().clone() for k, v in policy.model.state_dict().items()}
        seen.update(policy=policy, optimizer=optimizer, start=start)
        return real_loop(run_dir, config, policy, worker, optimizer, state, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Sum3Task, "reward", _first_digit_even)
        patch.setattr(runner, "_loop", spying_loop)
        runner.train(config, root / "run", show_progress=False)
    return {**seen, "run": root / "run", "config": config}


def test_only_the_adapters_require_grad_and_the_optimizer_holds_them(clip_run):
    model, optimizer = clip_run["policy"].model, clip_run["optimizer"]
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    adapters = {n for n, _ in model.named_parameters() if is_adapter(n)}
    assert trained == adapters
    layers = clip_run["config"].model.num_layers
    assert len(adapters) == 2 * len(TARGETS) * layers  # lora_A and lora_B on each target
    assert all(any(f".{t}." in n for t in TARGETS) for n in adapters)
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert held == {id(p) for n, p in model.named_parameters() if n in adapters}


def test_base_weights_stay_bit_identical_and_every_adapter_weight_changes(clip_run):
    start, end = clip_run["start"], clip_run["policy"].model.state_dict()
    assert start.keys() == end.keys()
    for name in start:
        assert torch.equal(start[name], end[name]) != is_adapter(name), name
    base, _ = load_pretrained(base_model_dir(clip_run["config"]))  # the run started from it
    for name, weight in base.state_dict().items():
        lora_name = name.replace(".weight", ".base_layer.weight").replace(
            ".bias", ".base_layer.bias"
        )
        assert torch.equal(weight, end.get(name, end.get(lora_name))), name


def test_clip_cov_and_the_diagnostics_run_with_lora(clip_run):
    records = read_records(clip_run["run"] / "metrics.jsonl")
    updates = records[:-1]  # the last row only measures
    assert any(r["clip_cov/frac"] > 0 for r in updates)
    for key in ("dynamics/dH_actual", "dynamics/dH_lemma1", "cov/logp_adv", "entropy/mean"):
        assert all(math.isfinite(r[key]) for r in updates), key
    assert any(r["dynamics/dH_actual"] != 0 for r in updates)  # the adapters move the policy


def _tiny_lora_policy():
    tokenizer = build_tokenizer("0123456789+=")
    shape = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    model = build_model(shape, len(tokenizer), max_positions=32, seed=0).eval()
    add_lora(model, ModelConfig(lora_rank=4), seed=0)
    return Policy(model, tokenizer)


def test_the_probe_logits_at_chosen_positions_are_the_full_logits_rows_with_lora():
    policy = _tiny_lora_policy()
    g = torch.Generator().manual_seed(1)
    prompts = torch.randint(3, 15, (4, 3), generator=g)  # (B, P)
    responses = torch.randint(3, 15, (4, 5), generator=g)  # (B, T)
    rollout = Rollout(prompts, torch.ones_like(prompts), responses, torch.ones_like(responses))
    rows, positions = torch.tensor([0, 1, 1, 3]), torch.tensor([4, 0, 2, 4])  # (S,), (S,)
    keep = torch.zeros(responses.shape, dtype=torch.bool)  # (B, T)
    keep[rows, positions] = True
    with torch.no_grad():
        full = response_logits(policy.model, rollout, float32_head=True)  # (B, T, V)
        hidden = hidden_at(policy.model, rollout, keep)  # (S, H)
        picked = HeadInputs(hidden, *head_parameters(policy.model)).logits(slice(None))
    torch.testing.assert_close(picked, full[rows, positions], rtol=1e-6, atol=1e-6)


def test_updates_lower_the_loss_on_a_fixed_batch_and_leave_the_base_alone():
    policy = _tiny_lora_policy()
    config = load_config(None, ["train.mini_batches=1", "train.lr=1e-3"])
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(3, 15, (8, 3), generator=g)  # (B, P)
    responses = torch.randint(3, 15, (8, 5), generator=g)  # (B, T)
    rollout = Rollout(prompts, torch.ones_like(prompts), responses, torch.ones_like(responses))
    with torch.no_grad():
        old = response_logits(policy.model, rollout).log_softmax(-1)  # (B, T, V)
    old = old.gather(-1, responses[..., None]).squeeze(-1)  # (B, T)
    advantages = torch.randn(8, generator=g)  # (B,)
    batch = Batch(rollout, advantages, old, None, None, config.loss)
    start = {k: v.clone() for k, v in policy.model.state_dict().items()}
    optimizer = runner._optimizer(policy.model, config)
    everything = torch.arange(8)
    losses = [optimizer_step(policy, optimizer, batch, everything, config, Dist())["loss/policy"]]
    losses += [optimizer_step(policy, optimizer, batch, everything, config, Dist())["loss/policy"]]
    losses += [optimizer_step(policy, optimizer, batch, everything, config, Dist())["loss/policy"]]
    assert losses[0] > losses[1] > losses[2], losses
    for name, weight in policy.model.state_dict().items():
        assert torch.equal(weight, start[name]) != is_adapter(name), name


def test_kl_cov_penalty_acts_with_lora(kl_runs):
    root, _ = kl_runs
    updates = read_records(root / "full" / "metrics.jsonl")[:-1]
    assert any(r["kl_cov/frac"] > 0 and r["kl_cov/abs_kl"] > 0 for r in updates)


def test_the_checkpoint_holds_the_adapter_only(kl_runs):
    root, config = kl_runs
    saved = find_checkpoint(root / "full")
    files = {p.name for p in (saved / "model").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    assert not files & {"config.json", "model.safetensors"}
    weights = _adapter(saved)
    assert len(weights) == 2 * len(TARGETS) * config.model.num_layers
    assert all(k.startswith("base_model.model.") and is_adapter(k) for k in weights)
    settings = json.loads((saved / "model" / "adapter_config.json").read_text())
    assert settings["r"] == 4 and settings["lora_alpha"] == 8
    assert set(settings["target_modules"]) == set(TARGETS)
    assert settings["base_model_name_or_path"] == str(base_model_dir(config))
    state = torch.load(saved / "trainer_state.pt", weights_only=True)
    assert len(state["optimizer"]["state"]) == len(weights)  # AdamW over the adapters only
    shapes = sorted(tuple(s["exp_avg"].shape) for s in state["optimizer"]["state"].values())
    assert shapes == sorted(tuple(w.shape) for w in weights.values())


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_peft_loads_the_saved_adapter_as_the_run_does(kl_runs):
    from peft import PeftModel

    root, config = kl_runs
    saved = find_checkpoint(root / "full") / "model"
    ours, _ = load_pretrained(base_model_dir(config))
    add_lora(ours, config.model, seed=1)
    load_adapter(ours, saved)
    base, _ = load_pretrained(base_model_dir(config))
    theirs = PeftModel.from_pretrained(base, saved).eval()
    ids = torch.tensor([[1, 5, 6, 7, 8]])  # (1, L)
    plain, _ = load_pretrained(base_model_dir(config))
    with torch.no_grad():
        assert torch.equal(ours(ids).logits, theirs(ids).logits)
        assert not torch.equal(ours(ids).logits, plain(ids).logits)


def test_a_resume_after_a_kill_continues_exactly(kl_runs):
    root, _ = kl_runs
    assert _deterministic(root / "resumed") == _deterministic(root / "full")
    full, resumed = (
        _adapter(find_checkpoint(root / "full")),
        _adapter(find_checkpoint(root / "resumed")),
    )
    assert full.keys() == resumed.keys()
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    step4 = _adapter(root / "partial" / "checkpoint-000004")  # the resume went on from here
    assert any(not torch.equal(full[k], step4[k]) for k in full)


def test_eval_reads_a_lora_checkpoint(kl_runs):
    root, config = kl_runs
    result = evaluate_model(root / "full", overrides=["eval.samples=2"])
    assert result["model"] == str(find_checkpoint(root / "full") / "model")
    assert result["prompts"] == config.task.val_size and 0 <= result["pass_at_k"]["1"] <= 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.lora_rank=-1", "model.lora_rank must be >= 0"),
        ("model.lora_alpha=0", "model.lora_alpha must be > 0"),
        ("model.lora_dropout=1", "model.lora_dropout must be in [0, 1)"),
        ("model.lora_target_modules=", "model.lora_target_modules must be comma-separated"),
        ("model.lora_target_modules=q proj", "model.lora_target_modules must be comma-separated"),
    ],
)
def test_a_bad_lora_value_is_a_config_error(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, [override])


def test_lora_with_vllm_is_refused():
    with pytest.raises(ConfigError, match=re.escape("model.lora_rank > 0 needs a rollout engine")):
        entropy_rl.load_config(None, ["model.lora_rank=8", "rollout.engine=vllm"])  # checked


def test_a_bad_lora_value_is_one_line_exit_2_from_the_cli(tmp_path):
    run = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "entropy_rl", "train", "--run-dir", str(run), "model.lora_rank=-1"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "model.lora_rank must be >= 0 (0: no LoRA), got -1" in result.stderr
    assert not run.exists()


def test_a_target_module_the_model_lacks_is_one_line_exit_2(
    tmp_path, capsys, tiny_hf_model, sums_jsonl
):
    args = ["--model", str(tiny_hf_model), f"task.train_file={sums_jsonl}", *HF_TINY]
    args += ["model.lora_rank=2", "model.lora_target_modules=q_proj,qkv"]
    code = cli.main(["train", "--quiet", "--run-dir", str(tmp_path / "run"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "model.lora_target_modules:" in err and "qkv" in err


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_torchrun_trains_a_model_dir_with_lora(tmp_path, tiny_hf_model, sums_jsonl, strategy):
    from test_distributed import _torchrun

    run = tmp_path / "run"
    args = ["-m", "entropy_rl", "train", "--quiet", "--run-dir", str(run)]
    args += ["--model", str(tiny_hf_model), f"task.train_file={sums_jsonl}", *HF_TINY, *LORA]
    _torchrun(
        *args, "loss.mode=kl_cov", f"distributed.strategy={strategy}", done=run / "summary.json"
    )
    records = read_records(run / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2]
    saved = find_checkpoint(run)
    state = torch.load(saved / "trainer_state.pt", weights_only=True)
    assert state["world_size"] == 2
    weights = _adapter(saved)
    assert len(state["optimizer"]["state"]) == len(weights) == 2 * len(TARGETS) * 2
    assert not (saved / "model" / "model.safetensors").exists()
    lora_b = [w for k, w in weights.items() if "lora_B" in k]
    assert all(bool(w.abs().sum() > 0) for w in lora_b)  # zero at the start: every one moved
