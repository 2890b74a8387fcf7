"""`entropy-rl eval`: pass@k, greedy accuracy and answer entropy of a run's checkpoint or a
saved model, on the task's validation prompts or a data file."""

import inspect
import json
import math
import re
import subprocess
import sys

import pytest

from conftest import TINY, _first_digit_even
from entropy_rl.commands import cli
from entropy_rl.commands import evaluate as model_eval
from entropy_rl.commands.evaluate import evaluate_model
from entropy_rl.config import load_config
from entropy_rl.runs.checkpoint import find_checkpoint
from entropy_rl.runs.metrics_log import read_records
from entropy_rl.tasks.sum3 import Sum3Task
from entropy_rl.training import runner
from entropy_rl.training.validation import answer_entropy, shown_ks, validation_seed


def test_answer_entropy_against_a_hand_computation():
    assert answer_entropy(["7"] * 5) == 0.0
    expected = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert answer_entropy(["a", "a", "b", "c"]) == pytest.approx(expected)
    assert answer_entropy(list("abcd")) == pytest.approx(math.log(4))
    assert shown_ks(16) == [1, 2, 4, 8, 16] and shown_ks(6) == [1, 2, 4, 6] and shown_ks(1) == [1]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, base_cache):
    """A finished tiny run (6 steps, validation every 2 on 16 prompts x 2 samples), trained
    with easy_reward's reward, once for the module's tests (which only read it)."""
    run = tmp_path_factory.mktemp("eval") / "run"
    config = load_config(None, [*TINY, f"pretrain.cache_dir={base_cache}"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Sum3Task, "reward", _first_digit_even)
        runner.train(config, run, show_progress=False)
    return run, read_records(run / "metrics.jsonl")[-1]


@pytest.fixture
def finished_run(trained_run, easy_reward):
    """trained_run, with the reward it was trained with (easy_reward) in place."""
    return trained_run


def test_eval_of_a_runs_checkpoint_reproduces_its_final_validation(finished_run):
    """With the seed of the final validation row, eval draws the very same samples from the
    checkpoint: pass@1 is val/acc, pass@2 (n = k = 2) val/pass_at_k, greedy the same."""
    run, last = finished_run
    result = evaluate_model(run, overrides=[f"eval.seed={validation_seed(0, last['step'])}"])
    assert result["prompts"] == 16 and result["samples"] == 2 and result["run"] == str(run)
    assert result["pass_at_k"]["1"] == pytest.approx(last["val/acc"], abs=1e-12)
    assert result["pass_at_k"]["2"] == pytest.approx(last["val/pass_at_k"], abs=1e-12)
    assert result["acc_greedy"] == pytest.approx(last["val/acc_greedy"], abs=1e-12)


def test_eval_draws_tokens_as_the_run_did(tmp_path, tiny_config, easy_reward):
    """A run with rollout.sampling=inverse_cdf: eval of its checkpoint at the final
    validation row's seed draws by inverse_cdf too, so it reproduces that row; overridden
    to multinomial, it draws other samples."""
    run = tmp_path / "run"
    runner.train(tiny_config("rollout.sampling=inverse_cdf"), run, show_progress=False)
    last = read_records(run / "metrics.jsonl")[-1]
    seed = f"eval.seed={validation_seed(0, last['step'])}"
    result = evaluate_model(run, overrides=[seed, "eval.samples=2"])
    assert result["pass_at_k"]["1"] == pytest.approx(last["val/acc"], abs=1e-12)
    assert result["pass_at_k"]["2"] == pytest.approx(last["val/pass_at_k"], abs=1e-12)
    other = evaluate_model(run, overrides=[seed, "eval.samples=2", "rollout.sampling=multinomial"])
    assert other["entropy"] != result["entropy"]  # the token entropy of other samples


def test_eval_pass_at_1_agrees_with_val_acc_within_sampling_error(finished_run):
    run, last = finished_run
    result = evaluate_model(run, overrides=["eval.samples=24", "eval.seed=7"])
    ks = [result["pass_at_k"][str(k)] for k in range(1, 25)]
    assert len(ks) == 24 and ks == sorted(ks)  # pass@k grows with k
    p, n_run, n_eval = result["pass_at_k"]["1"], 16 * 2, 16 * 24
    se = math.sqrt(p * (1 - p) / n_run + p * (1 - p) / n_eval)
    assert abs(p - last["val/acc"]) <= 4 * se + 1e-9
    assert 0 <= result["answer_entropy"] <= math.log(24) and result["entropy"] > 0


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "entropy_rl", "eval", *args], capture_output=True, text=True
    )


def test_eval_cli_prints_a_table_and_json(finished_run, tmp_path, capsys):
    run, _ = finished_run
    out = tmp_path / "eval.json"
    result = _cli(str(run), "eval.samples=4", "--out", str(out), "eval.greedy=false")
    assert result.returncode == 0, result.stderr
    for label in ("pass@1 (mean reward, as val/acc)", "pass@2", "pass@4", "answer entropy"):
        assert label in result.stdout
    saved = json.loads(out.read_text())
    assert list(saved["pass_at_k"]) == ["1", "2", "3", "4"] and saved["acc_greedy"] is None
    newest = find_checkpoint(run)
    argv = ["eval", str(newest), "--json", "eval.samples=4", "eval.greedy=false"]
    assert cli.main(argv) == 0
    in_process = json.loads(capsys.readouterr().out)  # here sum3's reward is easy_reward
    assert in_process.keys() == saved.keys() and in_process["model"] == saved["model"]


def test_eval_of_a_model_directory_on_a_data_file(tiny_hf_model, sums_jsonl):
    result = evaluate_model(
        tiny_hf_model, sums_jsonl, overrides=["eval.samples=3", "task.max_response_tokens=3"]
    )
    assert result["prompts"] == 12 and result["data"] == str(sums_jsonl)  # every row
    assert set(result["pass_at_k"]) == {"1", "2", "3"} and result["run"] is None


def test_eval_shows_progress_on_stderr_once_when_not_a_terminal(tiny_hf_model, sums_jsonl, capsys):
    """12 rows x 3 samples and 12 greedy responses: the bar ends at 48/48, drawn once on a
    stderr that is not a terminal (no refresh lines); --quiet shows none; results on stdout."""
    args = ["eval", str(tiny_hf_model), "--data", str(sums_jsonl), "--json", "eval.samples=3"]
    assert cli.main([*args, "task.max_response_tokens=3"]) == 0
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("eval") and "48/48" in line
    assert json.loads(captured.out)["prompts"] == 12
    assert cli.main([*args, "task.max_response_tokens=3", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["NOWHERE"], "not a run directory (config.yaml), a checkpoint (model/) or a saved model"),
        (["MODEL", "--data", "NOWHERE.jsonl"], "no such data file"),
        (["MODEL", "eval.samples=0"], "eval.samples must be > 0"),
    ],
)
def test_eval_errors_are_one_line_exit_2(tiny_hf_model, tmp_path, capsys, args, message):
    args = [
        str(tiny_hf_model) if a == "MODEL" else str(tmp_path / a) if "NOWHERE" in a else a
        for a in args
    ]
    assert cli.main(["eval", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def _help(command: str, capsys) -> str:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    return capsys.readouterr().out


def test_eval_help_explains_its_options_and_the_fields_it_uses(capsys):
    out = _help("eval", capsys)
    for option in ("--data", "--reward", "--json", "--out", "--quiet", "--config", "TARGET"):
        assert option in out
    fields = set(re.findall(r"^  (\w+\.\w+) = ", out, re.M))
    assert {"eval.seed", "eval.samples", "task.max_response_tokens", "rollout.sampling"} <= fields
    assert not fields & {"train.lr", "loss.mode", "log.wandb", "eval.every", "rollout.engine"}
    pretrain = set(re.findall(r"^  (\w+\.\w+) = ", _help("pretrain", capsys), re.M))
    assert {"pretrain.max_steps", "model.hidden_size"} <= pretrain
    assert not pretrain & {"train.lr", "eval.samples"}
    train = set(re.findall(r"^  (\w+\.\w+) = ", _help("train", capsys), re.M))
    assert {"train.lr", "loss.mode", "log.wandb", "eval.samples", "pretrain.max_steps"} <= train


def test_eval_help_lists_every_field_model_eval_reads():
    """The config fields model_eval.py reads (`config.<section>.<field>`, and `settings.<field>`
    for config.eval) are all in `eval --help` (cli.eval.EVAL_FIELDS)."""
    source = inspect.getsource(model_eval)
    read = set(re.findall(r"config\.(\w+\.\w+)", source))
    read |= {f"eval.{name}" for name in re.findall(r"settings\.(\w+)", source)}
    read.discard("train.seed")  # LoRA's initialisation, overwritten by the loaded adapter
    assert read and all(
        any(name == s or name.startswith(s + ".") for s in cli.eval.EVAL_FIELDS) for name in read
    ), sorted(read)
