"""benchmarks/gpu_vs_trl.py's cheap parts: the real-vocabulary tokenizer, the reward, and the
refusal of --mode full without CUDA (the benchmark itself runs for minutes: not here)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_vs_trl


def test_tokenizer_has_the_real_vocabulary_and_prepends_bos():
    tokenizer = gpu_vs_trl.build_tokenizer()
    assert len(tokenizer) == gpu_vs_trl.VOCAB == 151_936
    ids = tokenizer("12+7=")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.unk_token_id not in ids and len(ids) == 6  # bos 1 2 + 7 =
    assert len({tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}) == 3


def test_length_reward_is_deterministic_and_varies():
    rewards = {gpu_vs_trl.length_reward("1+1=", "w" * n, "2") for n in range(20)}
    assert len(rewards) == 10 and min(rewards) == 0.0 and max(rewards) == 1.0


@pytest.mark.skipif(torch.cuda.is_available(), reason="refuses only without CUDA")
def test_full_mode_refuses_without_cuda_unless_cpu_is_forced():
    with pytest.raises(SystemExit, match="--mode full needs a CUDA GPU"):
        gpu_vs_trl.resolve_device("full", "auto")
    assert gpu_vs_trl.resolve_device("full", "cpu") == "cpu"
