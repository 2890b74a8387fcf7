"""A Hugging Face model from a local directory (`--model`) trained on a data file with the
math reward, through the command line; bad paths and rows stop with one-line errors."""

import json

import pytest
import torch

from conftest import HF_TINY, write_jsonl
from entropy_rl.commands import cli
from entropy_rl.runs.checkpoint import find_checkpoint
from entropy_rl.tasks import Problem
from entropy_rl.training.models import load_pretrained
from entropy_rl.training.policy import Policy


def test_train_cli_with_model_dir_jsonl_and_math_reward(
    tmp_path, tiny_hf_model, sums_jsonl, capsys
):
    """In-process (`python -m entropy_rl train --model DIR` in a subprocess: test_distributed's
    torchrun jobs, on the same model and data file)."""
    run = tmp_path / "run"
    args = ["train", "--quiet", "--run-dir", str(run), "--model", str(tiny_hf_model)]
    args += ["--reward", "math", f"task.train_file={sums_jsonl}", *HF_TINY]
    code = cli.main(args)
    err = capsys.readouterr().err
    assert code == 0, err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2]
    assert all("val/acc" in r and "reward/mean" in r for r in records)
    assert "model.path" not in err
    assert "task.val_file not set: holding out 4 of 12 rows of train.jsonl" in err
    saved = (run / "config.yaml").read_text()
    assert str(tiny_hf_model) in saved and "reward: math" in saved
    base, _ = load_pretrained(tiny_hf_model)
    trained, tokenizer = load_pretrained(find_checkpoint(run) / "model")
    assert tokenizer.chat_template
    for (name, before), (_, after) in zip(
        base.named_parameters(), trained.named_parameters(), strict=True
    ):
        assert not torch.equal(before, after), name


def _main(capsys, *args):
    code = cli.main(["train", "--quiet", *args])
    err = capsys.readouterr().err.strip()
    return code, err


def test_missing_or_non_model_dir_is_one_line_exit_2(tmp_path, capsys, sums_jsonl):
    data = [f"task.train_file={sums_jsonl}", *HF_TINY]
    code, err = _main(
        capsys, "--run-dir", str(tmp_path / "a"), "--model", str(tmp_path / "nowhere"), *data
    )
    assert code == 2 and "nowhere" in err and len(err.splitlines()) == 1
    junk = tmp_path / "junk"
    junk.mkdir()
    code, err = _main(capsys, "--run-dir", str(tmp_path / "b"), "--model", str(junk), *data)
    assert code == 2 and "junk" in err and "not a saved model" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_a_model_saved_without_its_tokenizer_is_one_line_exit_2(tmp_path, capsys, sums_jsonl):
    """transformers would make an empty tokenizer of the model's family and the run die in a
    reshape; train and eval refuse it, naming the directory and the fix, before a run exists."""
    from entropy_rl.config import ModelConfig
    from entropy_rl.training.models import build_model

    shape = ModelConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
    model_dir = tmp_path / "no_tokenizer"
    build_model(shape, 16, max_positions=16, seed=0).save_pretrained(model_dir)
    run = tmp_path / "run"
    args = ["--run-dir", str(run), "--model", str(model_dir), f"task.train_file={sums_jsonl}"]
    code, err = _main(capsys, *args, *HF_TINY)
    fix = f"tokenizer.save_pretrained('{model_dir}')"
    assert code == 2 and len(err.splitlines()) == 1 and not run.exists()
    assert f"{model_dir} holds a model but no tokenizer" in err and fix in err
    assert cli.main(["eval", str(model_dir), "--data", str(sums_jsonl)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no tokenizer" in err and fix in err


def test_bad_row_stops_before_training(tmp_path, capsys, tiny_hf_model):
    rows = [{"prompt": "1+1=", "answer": "2"}, {"prompt": "1+2=", "answer": [3]}]
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    run = tmp_path / "run"
    code, err = _main(
        capsys,
        "--run-dir",
        str(run),
        "--model",
        str(tiny_hf_model),
        f"task.train_file={path}",
        *HF_TINY,
    )
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{path}, row 2: answer field 'answer' must be a string or a number" in err
    assert not run.exists()


def test_dataset_task_needs_a_model(capsys, tmp_path, sums_jsonl):
    code, err = _main(
        capsys, "--run-dir", str(tmp_path / "r"), f"task.train_file={sums_jsonl}", *HF_TINY
    )
    assert code == 2 and "--model" in err


def test_prompts_use_the_chat_template_when_asked(tiny_hf_model):
    model, tokenizer = load_pretrained(tiny_hf_model)
    plain = Policy(model, tokenizer)
    chat = Policy(model, tokenizer, chat_template=True)
    problem = Problem("1+2=", "3", messages=(("system", "1"), ("user", "1+2=")))
    assert plain.encode_prompt(problem) == [
        tokenizer.bos_token_id,
        *tokenizer.encode("1+2=", add_special_tokens=False),
    ]
    assert chat.encode_prompt(problem) == tokenizer.encode("11+2=", add_special_tokens=False)


def test_vllm_engine_without_vllm_is_a_one_line_error(tmp_path, capsys, tiny_hf_model, sums_jsonl):
    pytest.importorskip("entropy_rl.training.rollout.vllm")
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    code, err = _main(
        capsys,
        "--run-dir",
        str(tmp_path / "r"),
        "--model",
        str(tiny_hf_model),
        f"task.train_file={sums_jsonl}",
        *HF_TINY,
        "rollout.engine=vllm",
    )
    assert code == 2 and "pip install 'entropy-rl[vllm]'" in err and len(err.splitlines()) == 1


def test_gradient_checkpointing_trains(tmp_path, tiny_hf_model, sums_jsonl):
    from entropy_rl.config import load_config
    from entropy_rl.training import runner

    overrides = [*HF_TINY, "train.steps=1", "model.gradient_checkpointing=true"]
    overrides += [f"model.path={tiny_hf_model}", f"task.train_file={sums_jsonl}"]
    runner.train(load_config(None, overrides), tmp_path / "run", show_progress=False)
    base, _ = load_pretrained(tiny_hf_model)
    trained, _ = load_pretrained(find_checkpoint(tmp_path / "run") / "model")
    assert not torch.equal(base.lm_head.weight, trained.lm_head.weight)
