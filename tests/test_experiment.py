"""`entropy-rl experiment` and `entropy-rl report` on a miniature grid: the experiment through
a subprocess (which runs its jobs in subprocesses of their own), the rest in-process."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from entropy_rl.analysis.report.sections import SECTIONS
from entropy_rl.commands.cli import main
from entropy_rl.commands.experiment import load_experiment
from entropy_rl.config import ConfigError
from entropy_rl.runs.checkpoint import list_checkpoints

EXAMPLE_LOG = Path(__file__).parent.parent / "examples" / "synthetic_grpo_log.jsonl"
HEADINGS = [f"{i}. " for i in range(1, len(SECTIONS) + 1)]


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "entropy_rl", *args], capture_output=True, text=True, timeout=600
    )


def _main(capsys, *args):
    """The CLI in this process (no interpreter start-up): (exit code, stderr)."""
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def _nested(overrides):
    tree = {}
    for item in overrides:
        key, value = item.split("=", 1)
        section, name = key.split(".")
        tree.setdefault(section, {})[name] = yaml.safe_load(value)
    return tree


@pytest.fixture
def tiny_experiment(tmp_path, tiny_overrides):
    """Two runs (GRPO and Clip-Cov, one seed) of the tiny config."""
    base = tmp_path / "tiny.yaml"
    base.write_text(yaml.safe_dump(_nested(tiny_overrides)))
    spec = {
        "name": "mini",
        "base": "tiny.yaml",
        "overrides": {"loss.entropy_coef": 0.0},
        "tasks": {"sum3": {"task.name": "sum3"}},
        "methods": {"grpo": {"loss.mode": "ppo"}, "clip_cov": {"loss.mode": "clip_cov"}},
        "sizes": {"tiny": {}},
        "seeds": [0],
    }
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_miniature_grid_and_report(tmp_path, tiny_experiment, capsys):
    out = tmp_path / "exp"
    result = _cli("experiment", "--config", str(tiny_experiment), "--out", str(out), "--jobs", "2")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "experiment.json").read_text())
    assert [r["dir"] for r in manifest["runs"]] == [
        "sum3/tiny/grpo/seed0",
        "sum3/tiny/clip_cov/seed0",
    ]
    assert all(r["status"] == "done" for r in manifest["runs"])
    assert "clip_cov" in (out / "sum3/tiny/clip_cov/seed0/config.yaml").read_text()

    # in-process from here: a subprocess costs seconds of imports, and the one above ran the CLI
    code, err = _main(capsys, "experiment", "--config", tiny_experiment, "--out", out)
    assert code == 0 and "2 already finished" in err

    report = tmp_path / "report"
    code, err = _main(capsys, "report", out, "--out", report)
    assert code == 0, err
    page = (report / "report.html").read_text()
    for heading in HEADINGS:
        assert f"<h2>{heading}" in page, heading
    assert page.count("data:image/png;base64,") >= 5
    assert "over 16 prompts x 2 samples has a sampling std of at most 0.088" in page
    for name in ("dynamics_sum3.png", "law_sum3.png", "lemma1.png", "positions_sum3.png"):
        assert (report / name).read_bytes()[:4] == b"\x89PNG", name
    claims = [v["claim"] for v in json.loads((report / "verdicts.json").read_text())]
    assert any(c.startswith("4.") for c in claims) and any(
        c.startswith("Reviewers") for c in claims
    )


def test_report_reads_foreign_logs(tmp_path, capsys):
    state = {
        "log_history": [
            {"step": s, "entropy": 0.7 - 0.04 * s, "eval_acc": 0.4 + 0.03 * s + 0.01 * (s % 2)}
            for s in range(10)
        ]
    }
    trl = tmp_path / "checkpoint-10" / "trainer_state.json"
    trl.parent.mkdir()
    trl.write_text(json.dumps(state))
    code, err = _main(capsys, "report", trl, "--out", tmp_path / "r")
    assert code == 2 and "--reward-key" in err  # eval_acc is not a default key
    code, err = _main(capsys, "report", trl, "--out", tmp_path / "r", "--reward-key", "eval_acc")
    assert code == 0, err
    code, err = _main(capsys, "report", EXAMPLE_LOG, "--out", tmp_path / "r2")
    assert code == 0, err
    page = (tmp_path / "r" / "report.html").read_text()
    for heading in HEADINGS:
        assert f"<h2>{heading}" in page, heading
    assert "checkpoint-10" in (tmp_path / "r" / "report.html").read_text()
    page = (tmp_path / "r2" / "report.html").read_text()
    assert "no dynamics/dH_lemma1" in page and "synthetic_grpo_log" in page


def test_report_text_describes_a_single_foreign_log(tmp_path, capsys):
    """No sentence that fits only this project's experiments (prompt counts, seeds, "1 runs")
    on one log from elsewhere; a ceiling from four points is flagged wherever it appears."""
    assert main(["report", str(EXAMPLE_LOG), "--out", str(tmp_path / "r")]) == 0
    assert "(1 run)" in capsys.readouterr().out
    text = (tmp_path / "r" / "report.md").read_text() + (tmp_path / "r" / "report.html").read_text()
    for wrong in ("256 prompts", "over seeds;", "mean over seeds", "1 runs", "pooled fit"):
        assert wrong not in text, wrong
    assert "from 1 run;" in text and "no spread" in text
    short = tmp_path / "short.jsonl"
    rows = [(0.9, 0.40), (0.7, 0.55), (0.5, 0.62), (0.4, 0.70)]
    short.write_text("".join(json.dumps({"entropy": h, "reward": r}) + "\n" for h, r in rows))
    assert main(["report", str(short), "--out", str(tmp_path / "s")]) == 0
    markdown = (tmp_path / "s" / "report.md").read_text()
    assert markdown.count("(unreliable: 4 points < 5)") >= 3  # law text, law table, final table


def test_report_bad_input_is_one_line_exit_2(tmp_path, capsys):
    code, err = _main(capsys, "report", tmp_path / "missing", "--out", tmp_path / "r")
    assert code == 2 and "not an experiment directory" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"methdos": {}}, "unknown key 'methdos'"),
        ({"grids": [{"methods": ["nope"]}]}, "grids[0].methods: unknown nope"),
        ({"methods": {"grpo": {"loss.mode": "grpo"}}}, "run sum3/tiny/grpo/seed0: loss.mode"),
        ({"seeds": "0"}, "seeds must be a non-empty list"),
        ({"tasks": {"sum3": {"task.name": "sum4"}}}, "run sum3/tiny/grpo/seed0: task.name must be"),
    ],
)
def test_bad_experiment_file_names_the_problem(tiny_experiment, capsys, change, message):
    spec = yaml.safe_load(tiny_experiment.read_text())
    spec.update(change)
    tiny_experiment.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_experiment(tiny_experiment)
    code, err = _main(capsys, "experiment", "--config", tiny_experiment, "--dry-run")
    assert code == 2 and message in err


@pytest.mark.parametrize(
    "path",
    sorted((Path(__file__).parent.parent / "experiments").glob("*.yaml")),
    ids=lambda p: p.name,
)
def test_every_shipped_experiment_file_loads_and_checks(path):
    """Each experiment file the docs quote makes runs whose configs pass the run's checks
    (a renamed field or a refused combination would fail here, not after a base model)."""
    from entropy_rl.training.checks import check

    runs = load_experiment(path).runs
    assert runs
    for run in runs:
        check(run.config)


def test_shipped_experiment_parses():
    path = Path(__file__).parent.parent / "experiments" / "paper_small.yaml"
    experiment = load_experiment(path)
    methods = {r.method for r in experiment.runs}
    assert {"grpo", "clip_cov", "kl_cov", "entropy_bonus", "clip_higher"} <= methods
    assert len({r.size for r in experiment.runs if r.method == "grpo"}) >= 3
    assert len({r.task for r in experiment.runs}) == 2


def test_runs_of_a_local_model_need_no_base_model(tmp_path, tiny_experiment):
    import dataclasses

    from entropy_rl.commands.experiment import _base_model_jobs, _train_job

    spec = load_experiment(tiny_experiment).runs[0]
    local = dataclasses.replace(
        spec,
        config=dataclasses.replace(
            spec.config, model=dataclasses.replace(spec.config.model, path=str(tmp_path))
        ),
    )
    assert _base_model_jobs(tmp_path, [local]) == []
    assert _train_job(tmp_path, local).needs == ()
    fresh_cache = dataclasses.replace(spec.config.pretrain, cache_dir=str(tmp_path / "cache"))
    embedded = dataclasses.replace(
        spec, config=dataclasses.replace(spec.config, pretrain=fresh_cache)
    )
    assert len(_base_model_jobs(tmp_path, [embedded])) == 1  # the embedded model is pretrained


def test_a_base_model_that_has_not_learnt_keeps_its_runs_waiting(tmp_path, tiny_config):
    import dataclasses

    from entropy_rl.commands.experiment import _Job
    from entropy_rl.training.pretrain import base_model_dir, pretrain, write_check

    config = tiny_config()  # min_greedy 0: a seconds-old base model is accepted
    base = pretrain(config)
    assert base == base_model_dir(config)
    progress = tmp_path / "base.progress.json"
    job = _Job(
        "base",
        [],
        tmp_path / "base.log",
        needs=(base,),
        min_greedy=config.pretrain.min_greedy,
        total_steps=900,
        progress=progress,
    )
    assert job.ready()
    strict = dataclasses.replace(job, min_greedy=0.85)
    assert not strict.ready()  # saved, but it learnt nothing: its runs never start
    assert not dataclasses.replace(job, needs=(tmp_path / "missing",)).ready()
    assert job.steps_done() == (0, 900)  # no check yet
    write_check(progress, 800, 4500, 1.434, 0.012)
    assert job.steps_done() == (800, 4500)
    write_check(progress, 1000, 1300, 1.264, 0.939)
    assert job.steps_done() == (1000, 1300)  # the hold ended: the total is the real one


def _processes_naming(path: Path) -> list[int]:
    """The live processes whose command line names `path` (Linux's /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if proc.name.isdigit() and str(path) in cmdline:
            found.append(int(proc.name))
    return found


def test_a_kill_of_the_experiment_stops_its_runs_with_a_checkpoint(tmp_path, tiny_experiment):
    """SIGTERM to the experiment's process alone (`kill PID`) reaches its running job, which
    checkpoints and stops, as Ctrl-C does; no run is left training on its own."""
    import signal
    import time

    spec = yaml.safe_load(tiny_experiment.read_text())
    spec["methods"] = {"grpo": {"loss.mode": "ppo", "train.steps": 400}}
    tiny_experiment.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = tmp_path / "exp"
    argv = [sys.executable, "-m", "entropy_rl", "experiment", "--config", str(tiny_experiment)]
    proc = subprocess.Popen([*argv, "--out", str(out), "--jobs", "1"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    metrics = out / "sum3/tiny/grpo/seed0/metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (
        metrics.exists() and len(metrics.read_text().splitlines()) >= 2
    ):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    left = _processes_naming(out)
    for pid in left:  # a failure here leaves no run training beside the suite
        os.kill(pid, signal.SIGKILL)
    assert proc.returncode != 0 and "Traceback" not in err, err
    assert left == []
    steps = len(metrics.read_text().splitlines())
    assert steps < 401
    assert list_checkpoints(metrics.parent)[0].step == steps  # newest first
