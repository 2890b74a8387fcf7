"""Rollouts: the batch of sampled responses (`batch`), the engines that sample them (`engine`:
our KV-cache `sampler` on the training model; `vllm`), and the teacher-forced pass that
scores them again (`scoring`).
The engines' registry is `entropy_rl.training.engines`."""

from entropy_rl.training.rollout.batch import Rollout, left_pad
from entropy_rl.training.rollout.engine import (
    RolloutEngine,
    TransformersEngine,
    policy_sampler,
)
from entropy_rl.training.rollout.sampler import sample
from entropy_rl.training.rollout.scoring import (
    HeadInputs,
    float32_output_embeddings,
    head_parameters,
    hidden_at,
    logits_post_processing,
    logits_rows,
    output_head,
    response_logits,
    response_scores,
)

__all__ = [
    "HeadInputs",
    "Rollout",
    "RolloutEngine",
    "TransformersEngine",
    "float32_output_embeddings",
    "head_parameters",
    "hidden_at",
    "left_pad",
    "logits_post_processing",
    "logits_rows",
    "output_head",
    "policy_sampler",
    "response_logits",
    "response_scores",
    "sample",
]
