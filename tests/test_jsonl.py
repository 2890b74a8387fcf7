"""The one JSON-lines reader (`entropy_rl.runs.jsonl`) that metrics.jsonl, other tools' JSONL
logs and JSONL data files are read with."""

import pytest

from entropy_rl.runs.jsonl import JsonlError, jsonl_lines, read_jsonl
from entropy_rl.runs.metrics_log import read_records, whole_rows


def test_objects_with_their_line_numbers_blank_lines_skipped(tmp_path):
    text = '{"step": 0}\n\n  \n{"step": 1}\r\n'
    assert list(jsonl_lines(text, "log")) == [
        (1, '{"step": 0}', {"step": 0}),
        (4, '{"step": 1}\r', {"step": 1}),
    ]


@pytest.mark.parametrize(
    ("line", "problem"),
    [("{not json", "invalid JSON (Expecting property name"), ("[1]", "expected a JSON object")],
)
def test_a_bad_line_names_the_file_and_the_line(tmp_path, line, problem):
    path = tmp_path / "metrics.jsonl"
    path.write_text(f'{{"step": 0}}\n\n{line}\n')
    with pytest.raises(JsonlError) as info:
        read_records(path)
    assert str(info.value).startswith(f"{path}: line 3: {problem}")
    assert info.value.line == 3


def test_a_half_written_last_line_ends_the_records_only_when_allowed(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": ')
    assert read_jsonl(path, partial_tail=True) == [{"a": 1}, {"a": 2}]
    with pytest.raises(JsonlError, match="line 3: invalid JSON"):
        read_jsonl(path)
    path.write_text('{"a": 1}\n{"a": \n{"a": 3}\n')  # not the last line: an error all the same
    with pytest.raises(JsonlError, match="line 2: invalid JSON"):
        read_jsonl(path, partial_tail=True)


def test_whole_rows_stop_at_the_first_line_a_resume_cannot_keep(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0}\n{"step": 1}\n[2]\n{"step": 3}\n')
    assert whole_rows(path) == (['{"step": 0}', '{"step": 1}'], "line 3 is not a whole JSON row")
