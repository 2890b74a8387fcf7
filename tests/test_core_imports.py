"""The core imports torch only (and the foundation's registry pattern and loss settings, both
standard library): no I/O, trainer, plotting or scientific stack of its own."""

import subprocess
import sys


def test_core_imports_no_other_project_or_heavy_module():
    code = (
        "import sys, entropy_rl.core\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('matplotlib', 'scipy', 'transformers', 'trl', 'rich', 'yaml')"
        " or (m.startswith('entropy_rl.') and not m.startswith('entropy_rl.core')"
        " and m not in ('entropy_rl.registry', 'entropy_rl.errors', 'entropy_rl.loss_config'))]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
