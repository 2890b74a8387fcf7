"""The package's layers: which module may import which, what stays free of torch, and the
names (files, metric keys, the base-model cache key) that have one home."""

import ast
import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import entropy_rl
from entropy_rl.config import load_config
from entropy_rl.core import LOSS_MODES
from entropy_rl.core.control import CONTROL_KEYS
from entropy_rl.core.losses import LOSS_KEY, PPO_METRICS
from entropy_rl.errors import ConfigError
from entropy_rl.runs import metric_keys
from entropy_rl.tasks.base_models import (
    PRETRAIN_MODEL_FIELDS,
    PRETRAIN_UNKEYED_FIELDS,
    RECIPE_VERSION,
    base_model_dir,
    config_fingerprint,
)

PACKAGE = Path(entropy_rl.__file__).parent
ROOT = PACKAGE.parents[1]

FOLDERS = (
    # 0: the foundation, standard library only: errors, the registry pattern, and the loss's
    # settings, shared by the math and the run config
    ("errors", "registry", "loss_config"),
    # 1: the math, torch only
    ("core",),
    # 2: a run's settings (standard library and yaml)
    ("config",),
    # 3: run directories: the files a run writes, their names and keys
    ("runs",),
    # 4: tasks, their verifiers, and the key of their cached base models
    ("tasks",),
    # 5: the law and reading runs (any framework's logs, the report, watch): no training
    ("analysis",),
    # 6: training: models, rollouts, the policy, the RL step, pretraining, a run
    ("training",),
    # 7: the commands, the Python API and the adapters for other trainers
    ("commands", "integrations", "__main__"),
)
"""The package's folders (and its few top-level modules) from the bottom: a module imports
only from its own folder and the ones below it."""

MAX_LINES = 500
"""No file of the package is longer."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__")


def _folder(module: str) -> str:
    return module.split(".")[0]


def _layer(module: str) -> int:
    for depth, names in enumerate(FOLDERS):
        if _folder(module) in names:
            return depth
    raise AssertionError(f"{module} is in no folder of FOLDERS: add it there")


def _runtime_imports(path: Path) -> set[str]:
    """The project modules `path` imports (at module level or in a function), those under
    `if TYPE_CHECKING:` aside; `from entropy_rl.x import y` names x.y when y is a module."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
        for child in node.body
        for n in ast.walk(child)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("entropy_rl.")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("entropy_rl"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                path = ROOT / "src" / Path(*full.split("."))
                is_module = path.with_suffix(".py").is_file() or path.is_dir()
                found.add(full if is_module else node.module)
    return {m.removeprefix("entropy_rl").lstrip(".") for m in found} - {""}


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _runtime_imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_import_goes_down_the_folders():
    upward = [
        f"{module} ({_folder(module)}) imports {target} ({_folder(target)})"
        for module, targets in _graph().items()
        if module
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert not upward


def test_every_module_is_in_a_folder_of_the_table():
    modules = [m for m in _graph() if m]
    assert {_layer(m) for m in modules}  # raises for a module the table does not place


def test_no_import_cycle_between_modules():
    """Modules as nodes (a package's `__init__` is its folder's name), imports made in
    functions included: the graph has no cycle."""
    edges = _graph()
    done: set[str] = set()

    def visit(node, path):
        assert node not in path, "import cycle: " + " -> ".join([*path, node])
        if node in done:
            return
        for nxt in sorted(edges.get(node, ())):
            # a package's __init__ re-exporting its own modules is not a cycle
            if not node or not nxt.startswith(node + "."):
                visit(nxt, [*path, node])
        done.add(node)

    for node in sorted(edges):
        visit(node, [])


def test_every_file_is_short():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"over {MAX_LINES} lines: {long}"


def test_core_imports_torch_and_itself_only():
    allowed = {"torch", "math", "dataclasses", "collections", "types", "typing", "__future__"}
    allowed |= {"functools", "entropy_rl.registry", "entropy_rl.loss_config"}
    for path in (PACKAGE / "core").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                ours = name in allowed or name.startswith("entropy_rl.core")
                assert top in allowed or ours, (path.name, name)


READING_RUNS = (
    "entropy_rl.analysis.report",
    "entropy_rl.analysis.report.build",
    "entropy_rl.analysis.report.sections",
    "entropy_rl.analysis.summary",
    "entropy_rl.config",
    "entropy_rl.tasks.base_models",
    "entropy_rl.runs.layout",
    "entropy_rl.analysis.readers",
    "entropy_rl.analysis.watch",
    "entropy_rl.tasks",
)
"""Modules that read runs and logs: none may import torch, transformers or trl."""


def test_reading_runs_imports_no_torch():
    """One fresh interpreter imports the modules one by one and names the first that pulls
    in a heavy package (one process, not one each: each costs a second of start-up)."""
    code = (
        "import importlib, sys\n"
        f"for module in {READING_RUNS!r}:\n"
        "    importlib.import_module(module)\n"
        "    heavy = [m for m in ('torch', 'transformers', 'trl') if m in sys.modules]\n"
        "    assert not heavy, (module, heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_docs_catalogue_every_metric_key():
    catalogue = (ROOT / "docs" / "metrics.md").read_text()
    mode_keys = {key for mode in LOSS_MODES.values() for key in mode.metrics}
    keys = {*metric_keys.RUN_KEYS, *PPO_METRICS, LOSS_KEY, *mode_keys, *CONTROL_KEYS}
    assert LOSS_KEY == metric_keys.LOSS_POLICY
    assert {metric_keys.CONTROL_TARGET, metric_keys.CONTROL_VALUE} <= set(CONTROL_KEYS)
    missing = sorted(key for key in keys if f"| `{key}` |" not in catalogue)
    assert not missing


def _fingerprint_before_tasks_declared(config) -> str:
    """The cache key as it was computed before the tasks declared their fields: the slow,
    obvious reference whose keys every cached base model carries."""
    pretrain = dataclasses.asdict(config.pretrain)
    for name in PRETRAIN_UNKEYED_FIELDS:
        pretrain.pop(name)
    payload = {
        "recipe": RECIPE_VERSION,
        "model": {name: getattr(config.model, name) for name in PRETRAIN_MODEL_FIELDS},
        "task": {
            name: getattr(config.task, name) for name in ("name", "seed", "val_size", "trap_rate")
        },
        "pretrain": pretrain,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:10]


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["task.name=sum3_trap"],
        ["task.name=sum3_trap", "task.trap_rate=0.5"],
        ["model.hidden_size=48", "pretrain.seed=2", "task.val_size=64"],
        ["pretrain.max_steps=900", "pretrain.cache_dir=elsewhere"],
    ],
)
def test_base_model_key_is_unchanged_for_the_existing_tasks(overrides):
    config = load_config(None, overrides)
    assert config_fingerprint(config) == _fingerprint_before_tasks_declared(config)
    assert base_model_dir(config).name == f"{config.task.name}-{config_fingerprint(config)}"


def test_a_task_without_an_embedded_base_model_has_no_key(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "1+1=", "answer": "2"}\n')
    config = load_config(None, ["task.name=dataset", f"task.train_file={data}", "model.path=m"])
    with pytest.raises(ConfigError, match="no embedded base model"):
        base_model_dir(config)


LOSS_MODE_NAMES = ("ppo", "clip_cov", "kl_cov", "top_entropy")
MODE_NAME_HOMES = ("core/losses.py", "loss_config.py", "config/methods.py")
"""The only files that spell a loss mode's name: the losses, their settings and the paper's
methods as run settings."""


def test_loss_mode_names_are_spelled_in_their_homes_only():
    """No other module holds 'ppo', 'clip_cov' or 'kl_cov' as a string constant: they take
    the names from `entropy_rl.config.methods` (or a loss config's own default)."""
    found = [
        f"{path.relative_to(PACKAGE).as_posix()}:{node.lineno}: {node.value!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).as_posix() not in MODE_NAME_HOMES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in LOSS_MODE_NAMES
    ]
    assert not found
