"""Tests of reading training logs: JSON lines, CSV, dashboard exports, and malformed files."""

import json

import numpy as np
import pytest

from entropy_rl.analysis.readers import (
    LogFormatError,
    read_entropy_reward,
    read_log_columns,
)


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _sparse_records(n=12, every=3):
    """Entropy every step, val/acc every `every` steps, like a training log."""
    records = []
    for step in range(n):
        record = {"step": step, "entropy/mean": 0.7 - 0.04 * step, "reward/mean": 0.1 * step}
        if step % every == 0:
            record["val/acc"] = 0.3 + 0.03 * step
        records.append(record)
    return records


def test_jsonl_keeps_records_with_both_keys(tmp_path):
    path = _write_jsonl(tmp_path / "run.jsonl", _sparse_records())
    series = read_entropy_reward(path)
    np.testing.assert_array_equal(series.steps, [0, 3, 6, 9])
    np.testing.assert_allclose(series.entropy, [0.7, 0.58, 0.46, 0.34])
    np.testing.assert_allclose(series.reward, [0.3, 0.39, 0.48, 0.57])
    assert (series.entropy_key, series.reward_key, series.step_key) == (
        "entropy/mean",
        "val/acc",
        "step",
    )


def test_jsonl_blank_lines_nulls_and_explicit_keys(tmp_path):
    path = tmp_path / "run.jsonl"
    lines = [json.dumps(r) for r in _sparse_records()]
    lines.insert(2, "   ")
    lines.append(json.dumps({"step": 99, "entropy/mean": None, "val/acc": 0.9}))
    path.write_text("\n".join(lines) + "\n\n")
    series = read_entropy_reward(path, entropy_key="entropy/mean", reward_key="reward/mean")
    assert series.reward_key == "reward/mean"
    assert series.steps.size == 12  # the null-entropy record is dropped


def test_record_index_when_no_step_key(tmp_path):
    records = [{"entropy": 0.5 - 0.1 * i, "reward": 0.1 * i} for i in range(4)]
    records[1].pop("reward")
    series = read_entropy_reward(_write_jsonl(tmp_path / "run.jsonl", records))
    assert series.step_key is None
    np.testing.assert_array_equal(series.steps, [0, 2, 3])


def test_read_log_columns_gives_nan_for_missing(tmp_path):
    path = _write_jsonl(tmp_path / "run.jsonl", _sparse_records(n=4))
    cols = read_log_columns(path, ["step", "val/acc"])
    np.testing.assert_array_equal(cols["step"], [0, 1, 2, 3])
    assert np.isnan(cols["val/acc"][1:3]).all()
    assert cols["val/acc"][3] == pytest.approx(0.39)


def test_csv_plain_with_empty_cells(tmp_path):
    path = tmp_path / "run.csv"
    path.write_text("step,entropy,val/acc\n0,0.7,0.3\n1,0.6,\n2,0.5,0.5\n\n3,0.4,0.6\n")
    series = read_entropy_reward(path)
    np.testing.assert_array_equal(series.steps, [0, 2, 3])
    np.testing.assert_allclose(series.reward, [0.3, 0.5, 0.6])


def test_csv_wandb_export_ignores_min_max_columns(tmp_path):
    path = tmp_path / "export.csv"
    head = (
        '"Step","grpo-7b - actor/entropy","grpo-7b - actor/entropy__MIN",'
        '"grpo-7b - actor/entropy__MAX","grpo-7b - val/acc"'
    )
    rows = ["0,0.7,0.1,0.9,0.30", "1,0.6,0.1,0.9,", "2,0.5,0.2,0.8,0.50", "3,0.4,0.2,0.7,0.60"]
    path.write_text("\n".join([head, *rows]) + "\n")
    series = read_entropy_reward(path)
    assert (series.entropy_key, series.reward_key, series.step_key) == (
        "grpo-7b - actor/entropy",
        "grpo-7b - val/acc",
        "Step",
    )
    np.testing.assert_allclose(series.entropy, [0.7, 0.5, 0.4])
    np.testing.assert_array_equal(series.steps, [0, 2, 3])


def test_unknown_suffix_is_sniffed(tmp_path):
    jsonl = _write_jsonl(tmp_path / "run.log", _sparse_records())
    assert read_entropy_reward(jsonl).steps.size == 4
    csv_path = tmp_path / "run.txt"
    csv_path.write_text("entropy,reward\n0.7,0.3\n0.6,0.4\n0.5,0.5\n")
    assert read_entropy_reward(csv_path).steps.size == 3


def _error(path, **kwargs):
    with pytest.raises(LogFormatError) as info:
        read_entropy_reward(path, **kwargs)
    return str(info.value)


@pytest.mark.parametrize(
    ("line3", "words"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"step": 2, "entropy": "abc", "reward": 0.5}', "'entropy' is not a number"),
        ('{"step": 2, "entropy": true, "reward": 0.5}', "'entropy' is not a number"),
        ('{"step": 2, "entropy": 0.5, "reward": Infinity}', "'reward' is infinite"),
    ],
)
def test_malformed_jsonl_names_file_and_line(tmp_path, line3, words):
    path = tmp_path / "bad.jsonl"
    good = [json.dumps({"step": i, "entropy": 0.5, "reward": 0.5}) for i in range(2)]
    path.write_text("\n".join([*good, line3, *good]) + "\n")
    message = _error(path)
    assert "bad.jsonl: line 3:" in message
    assert words in message


def test_malformed_csv_cell_names_file_and_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("step,entropy,reward,note\n0,0.7,0.3,x\n1,0.6,oops,y\n2,0.5,0.5,z\n")
    message = _error(path)
    assert "bad.csv: line 3:" in message
    assert "'reward' is not a number: 'oops'" in message


def test_unused_non_numeric_csv_column_is_fine(tmp_path):
    path = tmp_path / "run.csv"
    path.write_text("note,entropy,reward\na,0.7,0.3\nb,0.6,0.4\nc,0.5,0.5\n")
    assert read_entropy_reward(path).steps.size == 3


def test_ragged_csv_row_names_file_and_line(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("entropy,reward\n0.7,0.3\n0.6,0.4\n0.5\n")
    message = _error(path)
    assert "ragged.csv: line 4:" in message
    assert "1 cells, header has 2" in message


def test_missing_key_lists_available_keys(tmp_path):
    path = _write_jsonl(tmp_path / "run.jsonl", _sparse_records())
    message = _error(path, reward_key="val/score")
    assert "no key 'val/score'" in message
    assert "'val/acc'" in message


def test_no_candidate_key_lists_tried_and_available(tmp_path):
    records = [{"step": i, "ent": 0.5, "acc": 0.1 * i} for i in range(5)]
    message = _error(_write_jsonl(tmp_path / "run.jsonl", records))
    assert (
        "no entropy key found (tried entropy/mean, actor/entropy, entropy, train/entropy" in message
    )
    assert "'ent'" in message


def test_available_keys_are_capped(tmp_path):
    record = {f"k{i}": 1.0 for i in range(40)}
    message = _error(_write_jsonl(tmp_path / "run.jsonl", [record]))
    assert "'k14'" in message
    assert "'k15'" not in message
    assert "and 25 more" in message


def test_too_few_points_says_how_many_have_both(tmp_path):
    path = _write_jsonl(tmp_path / "run.jsonl", _sparse_records(n=6))
    message = _error(path)
    assert "only 2 record(s) have both 'entropy/mean' (6 records) and 'val/acc' (2 records)" in (
        message
    )


def test_ambiguous_dashboard_key(tmp_path):
    path = tmp_path / "two_runs.csv"
    path.write_text("a - entropy,b - entropy,reward\n0.7,0.6,0.3\n")
    assert "matches several columns" in _error(path)


def test_missing_file_and_directory(tmp_path):
    assert "no such file" in _error(tmp_path / "nope.jsonl")
    assert "no log in it" in _error(tmp_path)


def test_trainer_state_json_log_history(tmp_path):
    """TRL's GRPOTrainer writes trainer_state.json with per-step dicts in log_history."""
    history = [
        {"step": s, "entropy": 0.7 - 0.01 * s, "reward": 0.4 + 0.01 * s, "loss": 0.1}
        for s in range(1, 6)
    ]
    history.append({"step": 5, "train_runtime": 12.3})  # the final summary entry
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"global_step": 5, "log_history": history}, indent=2))
    series = read_entropy_reward(path)
    assert series.entropy_key == "entropy" and series.reward_key == "reward"
    assert series.steps.tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(series.reward, [0.41, 0.42, 0.43, 0.44, 0.45])


def test_trainer_state_bad_entry_names_it(tmp_path):
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"log_history": [{"step": 1}, 3]}))
    with pytest.raises(LogFormatError, match="log_history entry 2"):
        read_entropy_reward(path)


def test_summary_table_and_progress_flag_an_unreliable_ceiling():
    import io

    from rich.console import Console

    from entropy_rl.analysis.live_law import live_law
    from entropy_rl.analysis.summary import summary_table
    from entropy_rl.training.runner import _Display

    law = {"a": 1.0, "b": 34.8, "ceiling": 33.8, "r2": 0.37, "n": 3}
    summary = {
        "entropy_start": 0.7, "entropy_end": 0.3, "val_acc_start": 0.4, "val_acc_end": 0.6,
        "val_acc_greedy_start": None, "val_acc_greedy_end": None, "cov_pos_step_frac": 1.0,
        "lemma1": None, "law": law,
    }  # fmt: skip
    out = io.StringIO()
    Console(file=out, width=200).print(summary_table({"run": summary}))
    assert "33.800 (unreliable: 3 points < 5, R² 0.37 < 0.8)" in out.getvalue()
    display, points = _Display(10, 0, Console(file=io.StringIO()), enabled=False), []
    for step, (h, acc) in enumerate([(1.0, 0.5), (0.9, 0.1), (0.8, 0.7), (0.7, 0.2), (0.6, 0.6)]):
        record = {"step": step, "reward/mean": 0.5, "entropy/mean": h, "val/acc": acc}
        points, keys, _ = live_law(points, record)  # the row's law/* keys, as the trainer's
        display.update(record | keys)
    status = display.progress.tasks[0].fields["status"]
    assert "ceiling" in status and "(unreliable: R² " in status
