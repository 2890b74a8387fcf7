"""The set-up's choice of torch build: `make setup TORCH_INDEX=... TORCH_SPEC=...` (dry runs)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _setup_commands(*variables: str) -> list[str]:
    result = subprocess.run(
        ["make", "-n", "-B", "setup", *variables], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if "pip install" in line]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_torch_build_is_chosen_by_make_variables():
    torch, package = _setup_commands()
    assert torch.endswith("pip install --quiet  'torch==2.13.0'") and "--index-url" not in torch
    assert package.endswith("-e '.[dev]'")
    cpu = "https://download.pytorch.org/whl/cpu"
    torch, _ = _setup_commands(f"TORCH_INDEX={cpu}", "TORCH_SPEC=torch==2.13.0+cpu")
    assert torch.endswith(f"--index-url {cpu} 'torch==2.13.0+cpu'")
