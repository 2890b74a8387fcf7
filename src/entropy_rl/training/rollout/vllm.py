"""The vLLM rollout engine (`rollout.engine=vllm`; `pip install 'entropy-rl[vllm]'`).

NOT RUN in this project: vLLM cannot be installed or run on its CPU-only machines, so this
module is written against vLLM's documented offline API (`vllm.LLM`, `SamplingParams`,
`TokensPrompt`) and the weight-loading entry point Hugging Face TRL uses for colocated
training, and is imported only when the engine is chosen. The tests check only that
choosing it without vLLM installed gives a one-line error.

Design:
1. One engine per rank, on that rank's GPU beside the training model (colocated); under
   torchrun it joins the job with vLLM's `external_launcher` executor, tensor parallel 1.
2. Sampling seeds: each prompt's `SamplingParams.seed` is drawn from the run's rollout
   generator, so runs are reproducible and resumable like the transformers engine's.
3. After every step the trainer's full weights (gathered from the FSDP shards when
   sharded) are loaded into the engine's model with its `load_weights`.
4. vLLM's token ids of a finished response include its stop token, as ours do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from entropy_rl.errors import ConfigError

if TYPE_CHECKING:
    from entropy_rl.config import Config
from entropy_rl.training.rollout.batch import Rollout, left_pad

SEED_HIGH = 2**31 - 1
"""vLLM's per-request seeds are drawn uniformly from [0, SEED_HIGH)."""


def _import_vllm():
    try:
        import vllm
    except ImportError:
        raise ConfigError(
            "rollout.engine=vllm needs vLLM, which is not installed: pip install 'entropy-rl[vllm]' "
            "(GPU machines only)"
        ) from None
    return vllm


class VLLMEngine:
    """A colocated vLLM engine serving the policy loaded from `model_dir`."""

    def __init__(self, model_dir: Path, config: Config, dist) -> None:
        vllm = _import_vllm()
        if dist.device.type != "cuda":
            raise ConfigError("rollout.engine=vllm needs a CUDA GPU")
        options = {
            "model": str(model_dir),
            "tokenizer": str(model_dir),
            "dtype": "bfloat16" if config.model.autocast else config.model.dtype,
            "gpu_memory_utilization": config.rollout.gpu_memory_utilization,
            "seed": config.train.seed + dist.rank,
            "tensor_parallel_size": 1,
        }
        if dist.active:
            options["distributed_executor_backend"] = "external_launcher"
        self.vllm = vllm
        self.llm = vllm.LLM(**options)
        self.device = dist.device

    def generate(
        self,
        prompts: list[list[int]],
        max_new_tokens: int,
        stop_ids: Sequence[int],
        pad_id: int,
        generator: torch.Generator | None,
        temperature: float = 1.0,
        greedy: bool = False,
    ) -> Rollout:
        seeds = torch.randint(
            SEED_HIGH,
            (len(prompts),),
            generator=generator,
            device=getattr(generator, "device", "cpu"),
        ).tolist()
        params = [
            self.vllm.SamplingParams(
                n=1,
                temperature=0.0 if greedy else temperature,
                max_tokens=max_new_tokens,
                stop_token_ids=list(stop_ids),
                seed=int(seed),
            )
            for seed in seeds
        ]
        requests = [self.vllm.inputs.TokensPrompt(prompt_token_ids=p) for p in prompts]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        responses = [list(out.outputs[0].token_ids) or [pad_id] for out in outputs]
        return _rollout(
            prompts,
            responses,
            [len(out.outputs[0].token_ids) for out in outputs],
            pad_id,
            self.device,
        )

    def sync_weights(self, module: torch.nn.Module, dist) -> None:
        """Load the trainer's weights into the engine (every rank calls it)."""
        if dist.active:
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                get_model_state_dict,
            )

            weights = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True))
        else:
            weights = module.state_dict()
        runner = self.llm.llm_engine.model_executor.driver_worker.model_runner
        runner.model.load_weights(weights.items())


def _rollout(prompts, responses, lengths, pad_id: int, device) -> Rollout:
    """Left-padded prompts and right-padded responses as a Rollout on `device`."""
    prompt_ids, prompt_mask = left_pad(prompts, pad_id)  # (B, P)
    width = max(len(r) for r in responses)
    response_ids = torch.full((len(responses), width), pad_id, dtype=torch.long)  # (B, T)
    for row, tokens in enumerate(responses):
        response_ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    response_mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()  # (B, T)
    return Rollout(*(t.to(device) for t in (prompt_ids, prompt_mask, response_ids, response_mask)))


def vllm_engine(config: Config, policy, model_dir: Path, dist) -> VLLMEngine:
    """The `vllm` engine of the registry: a vLLM engine loaded from `model_dir`."""
    return VLLMEngine(model_dir, config, dist)
