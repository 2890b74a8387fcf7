"""The Python API as a user calls it: `import entropy_rl`, then its exported functions."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import entropy_rl


def test_importing_the_package_is_cheap_and_lists_the_api():
    code = (
        "import sys, entropy_rl\n"
        "heavy = [m for m in ('torch', 'transformers', 'numpy', 'rich') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert callable(entropy_rl.fit_entropy_law) and 'torch' not in sys.modules\n"
        "print(sorted(entropy_rl.__all__))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for name in ("train", "resume", "evaluate", "load_config", "fit_entropy_law", "fit_log"):
        assert name in result.stdout and name in dir(entropy_rl)
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        entropy_rl.trian  # noqa: B018


def test_train_read_fit_and_evaluate_from_python(tmp_path, tiny_overrides, easy_reward):
    config = entropy_rl.load_config(overrides=tiny_overrides)
    run = tmp_path / "run"
    summary = entropy_rl.train(
        config, run, overrides=["loss.mode=kl_cov", "train.steps=4"], show_progress=False
    )
    assert summary["steps"] == 4 and (run / "summary.json").is_file()
    records = entropy_rl.read_metrics(run)
    assert [r["step"] for r in records] == [0, 1, 2, 3, 4]
    assert "kl_cov/frac" in records[0]
    fit = entropy_rl.fit_log(run)  # val/acc at steps 0, 2, 4
    assert isinstance(fit, entropy_rl.EntropyLawFit) and fit.n == 3
    same = entropy_rl.fit_entropy_law(
        [r["entropy/mean"] for r in records if "val/acc" in r],
        [r["val/acc"] for r in records if "val/acc" in r],
    )
    assert same == fit
    result = entropy_rl.evaluate(run, overrides=["eval.samples=3"])
    assert result["prompts"] == 16 and set(result["pass_at_k"]) == {"1", "2", "3"}


def test_train_from_a_yaml_file_then_resume(tmp_path, tiny_overrides, easy_reward):
    file = tmp_path / "c.yaml"
    file.write_text("train:\n  steps: 2\n")
    overrides = [o for o in tiny_overrides if not o.startswith("train.steps")]
    run = tmp_path / "run"
    entropy_rl.train(file, run, overrides=overrides, show_progress=False)
    assert entropy_rl.load_config(run / "config.yaml").train.steps == 2
    assert entropy_rl.resume(run, show_progress=False)["steps"] == 2  # finished: nothing to do
    with pytest.raises(entropy_rl.ConfigError, match="already holds a run"):
        entropy_rl.train(file, run, overrides=overrides, show_progress=False)
    with pytest.raises(entropy_rl.ConfigError, match=r"train\.stepz"):
        entropy_rl.train(overrides=["train.stepz=1"])


def test_the_public_names_are_exported_typed_and_lazily():
    """`entropy_rl.__all__` lists the lazily exported names, each of which the
    `TYPE_CHECKING` block imports for type checkers."""
    assert sorted(entropy_rl.__all__) == sorted(["__version__", *entropy_rl._EXPORTS])
    tree = ast.parse(Path(entropy_rl.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and n.test.id == "TYPE_CHECKING")
    typed = {a.name for node in block.body for a in node.names}
    assert typed == set(entropy_rl._EXPORTS)
    for name in entropy_rl._EXPORTS:
        assert getattr(entropy_rl, name) is not None
