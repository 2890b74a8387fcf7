import dataclasses
import json

import numpy as np
import pytest
import torch

from entropy_rl.config import Config, ModelConfig, PretrainConfig, TaskConfig
from entropy_rl.training.models import build_tokenizer, load_pretrained
from entropy_rl.training.pretrain import (
    base_model_dir,
    char_table,
    encode_batch,
    lr_factor,
    parent_config,
    pretrain,
    read_record,
)


def small_config(tmp_path, **pretrain):
    return Config(
        model=ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64),
        task=TaskConfig(val_size=16),
        pretrain=PretrainConfig(
            batch_size=32,
            cache_dir=str(tmp_path),
            **{"max_steps": 90, "cooldown_steps": 20, "check_every": 10, **pretrain},
        ),
    )


def test_encode_batch_matches_tokenizer():
    tok = build_tokenizer("0123456789+=,")
    table = char_table(tok, "0123456789+=,")
    ids, mask = encode_batch(table, tok, ["23+45+67=", "1+2="], ["068,135", "03,3"])
    row0 = [1, *tok.encode("23+45+67=068,135", add_special_tokens=False), 2]
    row1 = [1, *tok.encode("1+2=03,3", add_special_tokens=False), 2]
    assert ids.tolist() == [row0, row1 + [0] * (len(row0) - len(row1))]
    # targets are next tokens: the response characters and eos only
    assert mask[0].tolist() == [0.0] * 9 + [1.0] * 8
    assert mask[1].tolist() == [0.0] * 4 + [1.0] * 5 + [0.0] * 8


def test_pretrain_trains_saves_and_caches(tmp_path):
    config = small_config(tmp_path)
    torch.manual_seed(0)
    expected = torch.rand(2)
    torch.manual_seed(0)
    losses = []
    checks = []

    def progress(step, total, loss, greedy):
        losses.append((step, loss))
        if greedy is not None:
            checks.append((step, total, greedy))

    directory = pretrain(config, progress=progress)
    assert torch.equal(torch.rand(2), expected)  # global RNG untouched
    assert [s for s, _ in losses] == list(range(1, 91))  # the cap: it never reaches 0.85
    assert np.mean([x for _, x in losses[-5:]]) < np.mean([x for _, x in losses[:5]])
    assert directory == base_model_dir(config)
    assert directory.parent == tmp_path and directory.name.startswith("sum3-")
    record = json.loads((directory / "pretrain.json").read_text())
    assert record["final_loss"] == pytest.approx(losses[-1][1])
    assert record["config"]["pretrain"]["max_steps"] == 90
    assert record["num_parameters"] > 0
    assert [c[0] for c in checks] == list(range(10, 91, 10))
    assert [c[1] for c in checks] == [90] * 9
    assert [c["val/acc_greedy"] for c in record["checks"]] == [c[2] for c in checks]
    assert set(record["validation"]) == {
        "val/acc",
        "val/acc_greedy",
        "val/pass_at_k",
        "entropy/mean",
    }
    assert record["validation"]["val/acc_greedy"] == checks[-1][2]  # greedy: deterministic
    assert record["validation"]["entropy/mean"] > 0 and record["parent_validation"] is None
    assert record["learnt"] is False  # 30 steps of a 1-layer model learn no addition
    assert record["steps"] == 90 and record["cooldown_start"] == 70  # cooled down at the cap
    model, tok = load_pretrained(directory)
    assert model.config.hidden_size == 32 and len(tok) == 16

    def fail(*args):
        raise AssertionError("cached base model was retrained")

    assert pretrain(config, progress=fail) == directory


def test_base_model_dir_depends_on_config(tmp_path):
    config = small_config(tmp_path)
    assert base_model_dir(config) == base_model_dir(small_config(tmp_path))
    other_cache = dataclasses.replace(
        config, pretrain=dataclasses.replace(config.pretrain, cache_dir=str(tmp_path / "x"))
    )
    assert base_model_dir(other_cache).name == base_model_dir(config).name
    changed = [
        small_config(tmp_path, noise=0.3),
        small_config(tmp_path, seed=1),
        dataclasses.replace(config, task=TaskConfig(val_size=17)),
        dataclasses.replace(config, model=dataclasses.replace(config.model, num_layers=2)),
    ]
    names = {base_model_dir(c).name for c in changed} | {base_model_dir(config).name}
    assert len(names) == 5


def test_lr_factor_warms_up_holds_and_cools_down():
    factors = [lr_factor(step, 4, 10, 5) for step in range(15)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4:11] == [1.0] * 7  # the hold, then the first cool-down step
    assert factors[10:] == sorted(factors[10:], reverse=True) and 0 < factors[-1] < 0.1
    assert lr_factor(20, 4, 10, 5) == 0.0


def test_the_first_check_that_reaches_cooldown_at_starts_the_cool_down(tmp_path):
    totals, checks = [], []

    def progress(step, total, loss, greedy):
        totals.append(total)
        if greedy is not None:
            checks.append(step)

    directory = pretrain(small_config(tmp_path, cooldown_at=0.0), progress=progress)
    assert totals == [90] * 9 + [30] * 21  # announced: the cap, then check 10 + 20 cool-down
    assert checks == [10, 20, 30]
    record = read_record(directory)
    assert record["cooldown_start"] == 10 and record["steps"] == 30


def test_every_setting_but_the_cache_directory_is_in_the_key(tmp_path):
    config = small_config(tmp_path)
    for changed in ({"max_steps": 60}, {"check_every": 20}, {"cooldown_at": 0.5}):
        assert base_model_dir(small_config(tmp_path, **changed)) != base_model_dir(config)


def test_min_greedy_judges_the_base_model_without_changing_its_key(tmp_path):
    """pretrain.min_greedy=0, the escape the "has not learnt" message suggests, reuses the
    cached base model rather than pretraining it again; a field that shapes it still counts."""
    config = small_config(tmp_path)
    assert base_model_dir(small_config(tmp_path, min_greedy=0.0)) == base_model_dir(config)
    assert base_model_dir(Config(pretrain=PretrainConfig(min_greedy=0.0))) == base_model_dir(
        Config()
    )
    assert base_model_dir(small_config(tmp_path, noise=0.1)) != base_model_dir(config)


def test_trap_task_fine_tunes_the_sum3_base_model(tmp_path):
    config = small_config(tmp_path, finetune_steps=7)
    trap = dataclasses.replace(config, task=dataclasses.replace(config.task, name="sum3_trap"))
    steps = []
    directory = pretrain(trap, progress=lambda step, total, loss, greedy: steps.append(step))
    parent = base_model_dir(parent_config(trap, "sum3"))  # config, with the default fine-tune
    assert steps == [*range(1, 91), *range(1, 8)]  # the sum3 base model, then the fine-tune
    assert directory.name.startswith("sum3_trap-") and directory != parent
    record = json.loads((directory / "pretrain.json").read_text())
    assert record["fine_tuned_from"] == str(parent) and len(record["losses"]) == 7
    parent_record = json.loads((parent / "pretrain.json").read_text())
    assert record["parent_validation"] == parent_record["validation"]  # it decides "learnt"
    assert json.loads((parent / "pretrain.json").read_text())["fine_tuned_from"] is None
    base, _ = load_pretrained(parent)
    tuned, _ = load_pretrained(directory)
    assert any(
        not torch.equal(a, b) for a, b in zip(base.parameters(), tuned.parameters(), strict=True)
    )
    steps.clear()
    assert pretrain(trap, progress=lambda step, *_: steps.append(step)) == directory
    assert steps == []
    tighter = dataclasses.replace(trap, task=dataclasses.replace(trap.task, trap_rate=0.99))
    assert pretrain(tighter, progress=lambda step, *_: steps.append(step)) != directory
    assert steps == list(range(1, 8))  # a new fine-tune of the same sum3 base model
    record = json.loads((base_model_dir(tighter) / "pretrain.json").read_text())
    assert record["fine_tuned_from"] == str(parent)


def test_a_parent_base_model_ignores_its_inert_fields_and_the_fine_tune():
    trap = Config(
        task=TaskConfig(name="sum3_trap", trap_rate=0.99, val_size=16),
        pretrain=PretrainConfig(finetune_steps=1200, finetune_lr=1e-3, noise=0.1),
    )
    parent = parent_config(trap, "sum3")
    assert parent.task.name == "sum3" and parent.task.trap_rate == TaskConfig().trap_rate
    assert parent.pretrain.finetune_steps == PretrainConfig().finetune_steps
    assert parent.pretrain.finetune_lr == PretrainConfig().finetune_lr
    assert parent.task.val_size == 16 and parent.pretrain.noise == 0.1  # these shape it


def test_pretrain_cli_reports_the_base_model_and_refuses_one_that_learnt_nothing(
    tmp_path, tiny_overrides, capsys
):
    from entropy_rl.commands.cli import main

    fresh = [*tiny_overrides, f"pretrain.cache_dir={tmp_path}"]  # not made by another test
    progress = tmp_path / "progress.json"
    assert main(["pretrain", *fresh, "--progress", str(progress)]) == 0  # any base model passes
    captured = capsys.readouterr()
    out, err = " ".join(captured.out.split()), " ".join(captured.err.split())
    assert "val/acc_greedy" in out and "entropy/mean" in out and "not checked" in out
    assert "pretrain step 40/40" in err  # the held-out check line
    check = json.loads(progress.read_text())  # and the same check, as JSON
    assert (check["step"], check["total"]) == (40, 40) and 0 <= check["val/acc_greedy"] <= 1
    assert main(["pretrain", *fresh, "pretrain.min_greedy=0.85"]) == 2
    err = capsys.readouterr().err
    assert "(cached)" in err  # min_greedy judges the same base model (not in its key)
    last = err.strip().splitlines()[-1]
    assert last.startswith("entropy-rl pretrain: error: the base model ")
    assert "has not learnt task sum3" in last and "pretrain.seed=1" in last


def test_train_and_demo_refuse_a_base_model_that_has_not_learnt(tmp_path, tiny_overrides, capsys):
    from entropy_rl.commands.cli import main

    strict = [*tiny_overrides, "pretrain.min_greedy=0.85"]
    run_dir = tmp_path / "run"
    assert main(["train", "--quiet", "--run-dir", str(run_dir), *strict]) == 2
    assert "has not learnt task sum3" in capsys.readouterr().err
    assert not (run_dir / "metrics.jsonl").exists()
    assert main(["demo", "--out", str(tmp_path / "demo"), *strict]) == 2
    assert "has not learnt task sum3" in capsys.readouterr().err
    assert not (tmp_path / "demo" / "grpo").exists()
