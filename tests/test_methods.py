"""The paper's methods as run settings (`entropy_rl.config.methods`): each method's config
is labelled as that method, and the experiment files name them with the same settings."""

from pathlib import Path

import pytest
import yaml

from entropy_rl.config import load_config
from entropy_rl.config.methods import DEMO_METHODS, METHODS, method_label, method_overrides

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_config_is_labelled_as_that_method(method):
    config = load_config(None, method_overrides(method))
    assert method_label(config.loss) == method
    target = load_config(None, [*method_overrides(method), "loss.entropy_target=0.4"])
    assert method_label(target.loss) in (method, f"{method}_target")


def test_the_experiment_files_name_the_methods_with_their_settings():
    spec = yaml.safe_load((ROOT / "experiments" / "paper_small.yaml").read_text())
    assert spec["methods"] == METHODS
    assert set(DEMO_METHODS) <= set(METHODS)
