"""Extending the package from outside it: a loss mode (and an advantage estimator) registered
here, in the test, trains through the trainer and through the TRL adapter; no package file
names them."""

import pytest
import torch

from entropy_rl import load_config  # checked against the registries
from entropy_rl.core import LossMode, PolicyLossConfig, masked_mean, register_loss_mode
from entropy_rl.core.advantages import register_advantage, unregister_advantage
from entropy_rl.core.control import check_loss_config
from entropy_rl.core.losses import unregister_loss_mode
from entropy_rl.errors import ConfigError
from entropy_rl.runs.metrics_log import read_records
from entropy_rl.training import runner
from entropy_rl.training.models import load_pretrained
from entropy_rl.training.pretrain import base_model_dir

MODE = "plain_pg"
SHARE = "plain_pg/pos_adv_frac"


def plain_pg_loss(terms, selection, config):
    """Vanilla policy gradient, -A r on every token without PPO's clip; it logs the share of
    valid tokens with a positive advantage. It selects no tokens."""
    positive = (terms.advantages > 0).to(terms.mask.dtype)  # (B, T)
    return terms.surrogate, {SHARE: masked_mean(positive, terms.mask)}


@pytest.fixture
def plain_pg():
    mode = register_loss_mode(LossMode(MODE, plain_pg_loss, metrics={SHARE: None}))
    yield mode
    unregister_loss_mode(MODE)


def test_a_registered_mode_is_a_valid_loss_mode_and_others_are_not(plain_pg):
    assert not plain_pg.selects_tokens
    assert PolicyLossConfig(mode=MODE).mode == MODE
    with pytest.raises(ValueError, match="plain_pg"):
        check_loss_config(PolicyLossConfig(mode="plain_pgg"))  # it lists the registered modes
    with pytest.raises(ValueError, match="already registered"):
        register_loss_mode(LossMode(MODE, plain_pg_loss))


def test_registered_mode_trains_through_the_trainer(tmp_path, tiny_config, easy_reward, plain_pg):
    config = tiny_config(f"loss.mode={MODE}", "train.steps=2")
    runner.train(config, tmp_path / "run", show_progress=False)
    records = read_records(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2]
    for record in records[:-1]:
        assert 0.0 <= record[SHARE] <= 1.0
        assert not any(
            key.endswith("/frac") and key.startswith(("clip_cov", "kl_cov")) for key in record
        )
    base, _ = load_pretrained(base_model_dir(config))
    trained, _ = load_pretrained(tmp_path / "run" / "checkpoint-000002" / "model")
    moved = [
        not torch.equal(p0, p1)
        for p0, p1 in zip(base.parameters(), trained.parameters(), strict=True)
    ]
    assert all(moved)


def test_registered_advantage_trains_through_the_trainer(tmp_path, tiny_config, easy_reward):
    def centred(rewards, eps):  # (P, G) -> (P, G): r minus the group mean, halved
        return (rewards - rewards.mean(-1, keepdim=True)) / 2

    register_advantage("half_centred", centred)
    try:
        config = tiny_config("train.advantage=half_centred", "train.steps=1")
        runner.train(config, tmp_path / "run", show_progress=False)
    finally:
        unregister_advantage("half_centred")
    assert len(read_records(tmp_path / "run" / "metrics.jsonl")) == 2


def test_registered_mode_trains_through_the_trl_adapter(tmp_path, plain_pg):
    pytest.importorskip("trl")
    from datasets import Dataset
    from trl import GRPOConfig

    from entropy_rl.config import ModelConfig
    from entropy_rl.integrations.trl import EntropyGRPOTrainer
    from entropy_rl.training.models import build_model, build_tokenizer

    tok = build_tokenizer("0123456789+=,")
    shape = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    build_model(shape, vocab_size=len(tok), max_positions=64, seed=0).save_pretrained(
        tmp_path / "model"
    )
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        bf16=False,
        report_to="none",
        max_steps=1,
        learning_rate=1e-2,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=6,
        logging_steps=1,
        save_strategy="no",
        seed=0,
    )

    def reward(completions, **kwargs):  # varied and deterministic: even lengths pay
        return [float(len(text) % 2 == 0) for text in completions]

    trainer = EntropyGRPOTrainer(
        model=str(tmp_path / "model"),
        reward_funcs=reward,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": ["12+34+56=", "7+8+9=", "1+2+3=", "3+3+3="]}),
        processing_class=tok,
        entropy_config=PolicyLossConfig(mode=MODE),
    )
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    (entry,) = [e for e in trainer.state.log_history if SHARE in e]
    assert 0.0 < entry[SHARE] < 1.0 and "cov/logp_adv" in entry
    assert any(
        not torch.equal(p0, p1) for p0, p1 in zip(before, trainer.model.parameters(), strict=True)
    )


def test_an_estimator_declares_the_smallest_group_it_needs():
    with pytest.raises(ConfigError, match=r"group_size must be >= 2 for train\.advantage=rloo"):
        load_config(None, ["train.advantage=rloo", "train.group_size=1"])
    register_advantage("leave_two_out", lambda rewards, eps: rewards * 0, min_group=3)
    try:
        with pytest.raises(ConfigError, match=r">= 3 for train\.advantage=leave_two_out"):
            load_config(None, ["train.advantage=leave_two_out", "train.group_size=2"])
        assert load_config(None, ["train.advantage=leave_two_out", "train.group_size=4"])
    finally:
        unregister_advantage("leave_two_out")
