"""The dataset task: rows from JSONL / Parquet, checked before training, errors naming file and row."""

import numpy as np
import pytest

import entropy_rl
from conftest import write_jsonl
from entropy_rl.config import ConfigError, TaskConfig
from entropy_rl.tasks import DataError, Problem, make_task
from entropy_rl.tasks.dataset import load_problems


def _task(path, **fields):
    return make_task(TaskConfig(name="dataset", train_file=str(path), **fields))


def test_jsonl_rows_become_problems_and_validation_is_held_out(sums_jsonl):
    task = _task(sums_jsonl, val_size=4)
    val = task.validation_problems()
    assert len(val) == 4 and all(isinstance(p, Problem) for p in val)
    train = task.sample_problems(8, np.random.default_rng(0))
    assert len(train) == 8 and not set(train) & set(val)
    assert task.max_response_tokens == TaskConfig().max_response_tokens


def test_verl_layout_with_chat_messages_and_nested_answer(tmp_path):
    rows = [
        {
            "prompt": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "1+1="},
            ],
            "reward_model": {"ground_truth": 2, "style": "rule"},
        }
    ] * 3
    path = write_jsonl(tmp_path / "verl.jsonl", rows)
    problems = load_problems(path, "prompt", "reward_model.ground_truth")
    assert problems[0].answer == "2"
    assert problems[0].messages == (("system", "Be brief."), ("user", "1+1="))
    assert problems[0].prompt == "Be brief.\n1+1="


def test_parquet_and_a_separate_validation_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"question": ["1+2=", "2+2=", "3+2="], "solution": ["3", "4", "5"]})
    pq.write_table(table, tmp_path / "train.parquet")
    pq.write_table(table.slice(0, 2), tmp_path / "val.parquet")
    task = _task(
        tmp_path / "train.parquet",
        val_file=str(tmp_path / "val.parquet"),
        prompt_key="question",
        answer_key="solution",
    )
    assert [p.answer for p in task.validation_problems()] == ["3", "4"]
    assert {p.prompt for p in task.sample_problems(3, np.random.default_rng(0))} == {
        "1+2=",
        "2+2=",
        "3+2=",
    }


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ({"answer": "1"}, "row 2: no prompt field 'prompt'"),
        ({"prompt": "1+0="}, "row 2: no answer field 'answer'"),
        ({"prompt": "   ", "answer": "1"}, "row 2: prompt field 'prompt' is empty"),
        ({"prompt": 7, "answer": "1"}, "row 2: prompt field 'prompt' must be a string or a list"),
        ({"prompt": "1+0=", "answer": ""}, "row 2: answer field 'answer' is empty"),
        ({"prompt": [], "answer": "1"}, "row 2: prompt field 'prompt' has an empty list"),
    ],
)
def test_a_bad_row_names_file_and_row(tmp_path, bad_row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "1+1=", "answer": "2"}, bad_row])
    with pytest.raises(DataError, match=message) as info:
        _task(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file_unknown_format_and_config_checks(tmp_path):
    with pytest.raises(DataError, match="no such data file"):
        _task(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="unknown data format"):
        _task(tmp_path / "data.csv")
    with pytest.raises(ConfigError, match=r"task\.train_file"):
        entropy_rl.load_config(None, ["task.name=dataset", "model.path=m"])  # checked
    with pytest.raises(ConfigError, match=r"task\.reward"):
        TaskConfig(reward="not_a_path")


def test_an_empty_file_says_so(tmp_path):
    for text in ("", "\n  \n"):
        path = tmp_path / "empty.jsonl"
        path.write_text(text)
        with pytest.raises(DataError) as info:
            _task(path)
        assert str(info.value) == f"{path} is empty"


def test_a_broken_line_is_one_error_naming_that_line(tmp_path, capfd):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"prompt": "1+1=", "answer": "2"}\n\n{"prompt": broken\n{"prompt": "x"}\n')
    with pytest.raises(DataError) as info:
        _task(path)
    assert str(info.value).startswith(f"{path}: line 3: invalid JSON")  # as every JSONL reader
    assert "\n" not in str(info.value)
    assert capfd.readouterr().err == ""  # nothing else printed


def test_a_json_list_of_rows(tmp_path):
    import json

    rows = [{"prompt": f"{i}+1=", "answer": str(i + 1)} for i in range(4)]
    listed = tmp_path / "rows.json"
    listed.write_text(json.dumps(rows, indent=2))
    assert [p.answer for p in load_problems(listed, "prompt", "answer")] == ["1", "2", "3", "4"]
    listed.write_text(json.dumps([rows[0], 7]))
    with pytest.raises(DataError, match=r"row 2: expected a JSON object, got int"):
        load_problems(listed, "prompt", "answer")


def test_without_a_val_file_the_held_out_rows_are_said(sums_jsonl):
    """The hold-out of min(val_size, rows // 2) training rows is printed when a run starts
    (`Task.notes`; the runner's print is checked in test_hf_model's run)."""
    (note,) = _task(sums_jsonl).notes
    assert note.startswith(
        "task.val_file not set: holding out 6 of 12 rows of train.jsonl for validation "
        "(task.val_size=256"
    )
    assert note.endswith("training on the other 6")
    assert _task(sums_jsonl, val_file=str(sums_jsonl)).notes == ()
