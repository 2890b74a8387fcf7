import re

import numpy as np
import pytest

from entropy_rl.config import ConfigError, TaskConfig
from entropy_rl.tasks import TASKS, Problem, make_task
from entropy_rl.tasks.sum3 import Sum3Task, make_problem

FORMAT = re.compile(r"[0-9]{3},[0-9]{3}")


@pytest.fixture(scope="module")
def task():
    return make_task(TaskConfig())


def test_registry_and_unknown_name():
    assert isinstance(make_task(TaskConfig(name="sum3")), Sum3Task)
    with pytest.raises(ConfigError, match="sum3"):
        make_task(TaskConfig(name="sum4"))
    with pytest.raises(TypeError):
        TASKS["other"] = Sum3Task  # read-only


def test_problem_format(task):
    problem = make_problem(23, 45, 67)
    assert problem == Problem(prompt="23+45+67=", answer="068,135")
    assert make_problem(10, 10, 10).answer == "020,030"
    for p in task.sample_problems(200, np.random.default_rng(0)):
        a, b, c = (int(x) for x in p.prompt.rstrip("=").split("+"))
        assert all(10 <= x <= 99 for x in (a, b, c))
        assert re.fullmatch(r"[0-9]{2}\+[0-9]{2}\+[0-9]{2}=", p.prompt)
        assert p.answer == f"{a + b:03d},{a + b + c:03d}"
        assert len(p.prompt) <= task.max_prompt_tokens
        assert len(p.answer) == task.max_response_tokens == 7
        assert set(p.prompt + p.answer) <= set(task.alphabet)


def test_reward(task):
    problem = make_problem(23, 45, 67)
    assert task.reward(problem, "068,135") == 1.0
    assert task.reward(problem, "068,136") == 0.0
    assert task.reward(problem, "999,135") == 1.0  # the scratchpad is not rewarded
    malformed = ["", "068,13", "068135x", "abc,def", "068,135 ", "068,1350", "68,0135"]
    malformed += ["068;135", "068,135,", " 068,135", "068,١٣٥", "068,135" * 1000]
    for response in malformed:
        assert task.reward(problem, response) == 0.0, response


def test_validation_deterministic_and_held_out(task):
    val = task.validation_problems()
    assert len(val) == 256 == len({p.prompt for p in val})
    assert val == make_task(TaskConfig()).validation_problems()
    assert val != make_task(TaskConfig(seed=99)).validation_problems()
    assert len(make_task(TaskConfig(val_size=10)).validation_problems()) == 10
    val_prompts = {p.prompt for p in val}
    train = task.sample_problems(2000, np.random.default_rng(1))
    assert len(train) == 2000
    assert not val_prompts & {p.prompt for p in train}
    again = task.sample_problems(2000, np.random.default_rng(1))
    assert train == again


def test_training_never_draws_validation():
    # a validation set half the problem space forces many redraws
    task = make_task(TaskConfig(val_size=90**3 // 2))
    val_prompts = {p.prompt for p in task.validation_problems()}
    train = task.sample_problems(2000, np.random.default_rng(0))
    assert not val_prompts & {p.prompt for p in train}
    with pytest.raises(ConfigError, match="val_size"):
        make_task(TaskConfig(val_size=90**3))


def test_demonstration_noise(task):
    rng = np.random.default_rng(0)
    problems = task.sample_problems(300, rng)
    for p in problems:
        assert task.demonstration(p, rng, 0.0) == p.answer
        assert task.reward(p, task.demonstration(p, rng, 0.0)) == 1.0
    noisy = [task.demonstration(p, rng, 1.0) for p in problems]
    assert all(FORMAT.fullmatch(d) for d in noisy)
    digits = np.array([int(ch) for d in noisy for ch in d if ch != ","])
    assert np.mean(digits == [int(ch) for p in problems for ch in p.answer if ch != ","]) < 0.2
    counts = np.bincount(digits, minlength=10)
    assert counts.min() > 0.06 * len(digits)  # roughly uniform (expected 0.1 each)
    again = np.random.default_rng(5), np.random.default_rng(5)
    assert task.demonstration(problems[0], again[0], 0.5) == task.demonstration(
        problems[0], again[1], 0.5
    )


def test_trap_task_demonstrations_follow_the_wrong_strategy_at_trap_rate():
    from entropy_rl.tasks.sum3_trap import Sum3TrapTask, is_trap, wrong_answer

    task = make_task(TaskConfig(name="sum3_trap", trap_rate=0.9))
    assert isinstance(task, Sum3TrapTask)
    problem = make_problem(27, 45, 10)  # 7 + 5 carries
    assert is_trap(problem) and not is_trap(make_problem(21, 45, 10))
    assert problem.answer == "072,082" and wrong_answer(problem) == "062,072"
    assert task.reward(problem, wrong_answer(problem)) == 0.0  # sum3's verifier, unchanged
    rng = np.random.default_rng(0)
    problems = task.sample_problems(4000, rng)
    traps = [p for p in problems if is_trap(p)]
    assert 0.4 < len(traps) / len(problems) < 0.5  # 45 of 100 units-digit pairs carry
    wrong = np.mean([task.demonstration(p, rng, 0.0) == wrong_answer(p) for p in traps])
    assert abs(wrong - 0.9) < 0.03
    assert all(task.demonstration(p, rng, 0.0) == p.answer for p in problems if not is_trap(p))
    never = make_task(TaskConfig(name="sum3_trap", trap_rate=0.0))
    assert all(never.demonstration(p, rng, 0.0) == p.answer for p in traps)
    with pytest.raises(ConfigError, match=r"task\.trap_rate"):
        TaskConfig(trap_rate=1.5)


def test_trap_noise_replaces_the_pretrain_noise_of_the_trap_demonstrations():
    from entropy_rl.tasks.sum3_trap import is_trap, wrong_answer

    task = make_task(TaskConfig(name="sum3_trap", trap_rate=1.0, trap_noise=0.0))
    rng = np.random.default_rng(0)
    problems = task.sample_problems(200, rng)
    expected = [wrong_answer(p) if is_trap(p) else p.answer for p in problems]
    assert [task.demonstration(p, rng, 0.2) for p in problems] == expected  # noise unused
    noisy = make_task(TaskConfig(name="sum3_trap", trap_rate=1.0))
    assert [noisy.demonstration(p, rng, 0.2) for p in problems] != expected  # pretrain's
    with pytest.raises(ConfigError, match=r"task\.trap_noise"):
        TaskConfig(trap_noise=-0.1)


def test_trap_noise_keys_the_trap_base_model_and_not_its_parent():
    from entropy_rl.config import Config
    from entropy_rl.tasks.base_models import base_model_dir
    from entropy_rl.training.pretrain import parent_config

    plain = Config(task=TaskConfig(name="sum3_trap"))
    quiet = Config(task=TaskConfig(name="sum3_trap", trap_noise=0.02))
    assert base_model_dir(quiet) != base_model_dir(plain)
    assert base_model_dir(parent_config(quiet, "sum3")) == base_model_dir(
        parent_config(plain, "sum3")
    )
