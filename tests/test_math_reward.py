"""The math reward (math-verify, in any thread) and user rewards by import path."""

import sys
import threading

import pytest

from entropy_rl.config import ConfigError, TaskConfig
from entropy_rl.tasks import Problem, make_reward, make_task
from entropy_rl.tasks.rewards import import_reward, math_reward, score_all


@pytest.mark.parametrize(
    ("response", "answer", "expected"),
    [
        ("so the answer is \\boxed{42}.", "42", 1.0),
        ("\\boxed{7} but later 42", "42", 0.0),  # the boxed answer wins over the last number
        ("40 + 2 = 42", "42", 1.0),  # no box: the last number
        ("42 then 43", "42", 0.0),
        ("\\boxed{\\frac{1}{2}}", "0.5", 1.0),
        ("the answer is 0.5", "\\frac12", 1.0),
        ("no number at all", "42", 0.0),
        ("", "42", 0.0),
    ],
)
def test_math_reward(response, answer, expected):
    assert math_reward(response, answer) == expected


def test_math_reward_works_outside_the_main_thread():
    """math-verify's own timeouts use signals; ours are off, so a worker thread can call it."""
    scored = score_all(math_reward, [("\\boxed{3}", "3"), ("4", "5")] * 3, timeout_s=30)
    assert scored.rewards == [1.0, 0.0] * 3 and scored.errors == 0
    out = []
    thread = threading.Thread(target=lambda: out.append(math_reward("x = 12", "12")))
    thread.start()
    thread.join()
    assert out == [1.0]


def _user_module(tmp_path, monkeypatch, body):
    (tmp_path / "my_rewards.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_rewards", None)


def test_user_reward_by_import_path_gets_prompt_response_answer(tmp_path, monkeypatch):
    _user_module(
        tmp_path,
        monkeypatch,
        "def score(prompt, response, answer):\n"
        "    return float(response == answer) + (0.5 if prompt == '1+1=' else 0.0)\n",
    )
    config = TaskConfig(reward="my_rewards:score")
    reward = make_reward(config, make_task(TaskConfig()))
    assert reward(Problem("1+1=", "2"), "2") == 1.5
    assert reward(Problem("1+2=", "3"), "2") == 0.0


def test_crashing_user_reward_scores_zero_and_is_counted(tmp_path, monkeypatch):
    _user_module(
        tmp_path,
        monkeypatch,
        "def flaky(prompt, response, answer):\n"
        "    if response == 'boom':\n        raise RuntimeError('user bug')\n    return 1.0\n",
    )
    reward = make_reward(TaskConfig(reward="my_rewards:flaky"), make_task(TaskConfig()))
    calls = [(Problem("p", "a"), r) for r in ("ok", "boom", "ok")]
    scored = score_all(reward, calls, timeout_s=5)
    assert scored.rewards == [1.0, 0.0, 1.0] and scored.errors == 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz:fn", "cannot import no_such_module_xyz"),
        ("math:no_such_function", "has no function 'no_such_function'"),
    ],
)
def test_bad_import_path_is_a_config_error(spec, message):
    with pytest.raises(ValueError, match=message):
        import_reward(spec)
    with pytest.raises(ConfigError, match=r"task\.reward"):
        make_reward(TaskConfig(reward=spec), make_task(TaskConfig()))


TRL_STYLE = '''
import re


def reward_len(completions, **kwargs):
    """TRL docs' kind of length reward: completions close to 20 characters score best."""
    return [-abs(20 - len(completion)) for completion in completions]


def format_reward(completions, **kwargs):
    """TRL docs' kind of format reward, on conversational completions."""
    pattern = r"^<think>.*?</think><answer>.*?</answer>$"
    contents = [completion[0]["content"] for completion in completions]
    return [1.0 if re.match(pattern, content) else 0.0 for content in contents]


def accuracy(completions, solution, prompts, **kwargs):
    """A dataset column by its name, as TRL passes columns."""
    return [float(c == s) + 0.5 * (p == "1+1=") for c, s, p in zip(completions, solution, prompts)]


def needs_ids(completions, completion_ids, **kwargs):
    return [0.0]
'''


def test_trl_style_rewards_from_the_working_directory(tmp_path, monkeypatch):
    """A `module:function` in the working directory imports (sys.path untouched afterwards),
    and a function with a `completions` parameter is called as TRL's GRPOTrainer calls it."""
    (tmp_path / "trl_rewards.py").write_text(TRL_STYLE)
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("trl_rewards", None)
    path = [p for p in sys.path if p not in ("", ".", str(tmp_path))]  # as the entropy-rl script
    monkeypatch.setattr(sys, "path", list(path))
    task = make_task(TaskConfig())

    def reward(fn, **fields):
        return make_reward(TaskConfig(reward=f"trl_rewards:{fn}", **fields), task)

    assert reward("reward_len")(Problem("1+1=", "2"), "x" * 18) == -2
    assert sys.path == path
    chat = Problem("1+1=", "2", messages=(("user", "1+1="),))
    assert reward("format_reward")(chat, "<think>a</think><answer>2</answer>") == 1.0
    assert reward("format_reward")(chat, "2") == 0.0
    accuracy = reward("accuracy", answer_key="data.solution")
    assert accuracy(Problem("1+1=", "2"), "2") == 1.5 and accuracy(Problem("2+2=", "4"), "5") == 0
    with pytest.raises(ConfigError) as info:
        reward("needs_ids")
    assert "TRL-style: called as fn(prompts=, completions=, answer=" in str(info.value)
    assert "completion_ids" in str(info.value) and "\n" not in str(info.value)


def test_a_reward_that_takes_neither_signature_is_refused(tmp_path, monkeypatch):
    _user_module(tmp_path, monkeypatch, "def two(prompt, response):\n    return 1.0\n")
    with pytest.raises(ConfigError, match=r"called as fn\(prompt, response, answer\)"):
        make_reward(TaskConfig(reward="my_rewards:two"), make_task(TaskConfig()))
