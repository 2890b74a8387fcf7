"""`entropy-rl train` and `pretrain` through a subprocess, as a user runs them."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from entropy_rl.config import load_config
from entropy_rl.runs.checkpoint import find_checkpoint
from entropy_rl.training.models import load_pretrained
from entropy_rl.training.pretrain import base_model_dir


def _cli(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "entropy_rl", *args], capture_output=True, text=True, **kwargs
    )


def test_train_cli_writes_a_run_directory_and_changes_every_parameter(tmp_path, tiny_overrides):
    run = tmp_path / "run"
    # A seconds-old tiny model rarely earns a reward; the entropy bonus still moves every weight.
    args = [*tiny_overrides, "loss.mode=kl_cov", "loss.entropy_coef=0.01"]
    result = _cli("train", "--quiet", "--run-dir", str(run), *args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "run summary" in result.stdout and "run summary" not in result.stderr  # the result
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "dynamics.png"):
        assert (run / name).is_file(), name
    assert (find_checkpoint(run) / "model" / "model.safetensors").is_file()
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(7))
    assert "kl_cov" in (run / "config.yaml").read_text()
    base, _ = load_pretrained(base_model_dir(load_config(None, args)))
    trained, _ = load_pretrained(find_checkpoint(run) / "model")
    for (name, before), (_, after) in zip(
        base.named_parameters(), trained.named_parameters(), strict=True
    ):
        assert not torch.equal(before, after), name


def test_pretrain_prints_its_result_on_stdout(tiny_overrides, capsys):
    from entropy_rl.commands import cli

    assert cli.main(["pretrain", *tiny_overrides]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("base model: ") and len(out.splitlines()) == 1  # unwrapped
    assert " steps, " in out and " steps, " not in err  # notices ("cached") on stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["loss.mdoe=kl_cov"], "unknown config field 'loss.mdoe' (did you mean 'loss.mode'?)"),
        (["train.steps=many"], "train.steps must be int"),
        (["loss.mode=clip_cov", "loss.clip_cov_lb=9"], "loss.clip_cov_lb must be < clip_cov_ub"),
        (["train.lr=-1"], "train.lr must be > 0"),
        (["train.lr=nan"], "train.lr must be a finite number, got nan"),
        (["loss.mode=grpo"], "loss.mode must be one of"),
        (
            ["rollout.sampling=gumbel"],
            "rollout.sampling=gumbel is not offered by rollout.engine=transformers",
        ),
        (
            ["rollout.engine=vllm", "rollout.sampling=inverse_cdf"],
            "rollout.sampling=inverse_cdf is not offered by rollout.engine=vllm",
        ),
        (["steps"], "must look like section.field=value"),
        (["loss.entropy_target=0.5"], "loss.entropy_coef must be > 0 with entropy_target"),
        (
            ["loss.entropy_target=0.5", "loss.entropy_control=kl_cov_coef"],
            "entropy_control='kl_cov_coef' acts in mode 'kl_cov', not 'ppo'",
        ),
    ],
)
def test_bad_config_is_one_line_exit_2(tmp_path, overrides, message, capsys):
    """In the test's process (a subprocess each cost 2.5 s of imports); the subprocess path is
    test_bad_yaml_file_is_one_line_exit_2's."""
    from entropy_rl.commands import cli

    assert cli.main(["train", "--run-dir", str(tmp_path / "run"), *overrides]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # no work started


def test_bad_yaml_file_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  stepz: 3\n")
    result = _cli("train", "--config", str(bad), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and "train.stepz" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_train_help_documents_every_field(capsys):
    from entropy_rl.commands import cli
    from entropy_rl.config import describe_fields

    with pytest.raises(SystemExit) as done:
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    for name, _, doc in describe_fields():
        assert name in out and doc.split()[0] in out


def test_ctrl_c_saves_a_checkpoint_that_resumes(tmp_path, tiny_overrides):
    run = tmp_path / "run"
    args = ["train", "--quiet", "--run-dir", str(run), *tiny_overrides, "train.steps=400"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "entropy_rl", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        metrics = run / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "resume with" in stderr
    done = len((run / "metrics.jsonl").read_text().splitlines())
    assert done < 401
    state = torch.load(find_checkpoint(run) / "trainer_state.pt", weights_only=True)
    assert state["run_state"]["step"] == done
    result = _cli("train", "--resume", str(run), "--run-dir", str(run))
    assert result.returncode == 2 and "--resume uses the run's saved config" in result.stderr
