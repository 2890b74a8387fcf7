"""Rollouts: the batch of sampled responses, the engines that sample them (our KV-cache
sampler on the training model; vLLM), and the teacher-forced pass that scores them again.
The engines' registry is `entropy_rl.training.engines`."""

from entropy_rl.training.rollout.engine import (
    RolloutEngine,
    TransformersEngine,
    policy_sampler,
)
from entropy_rl.training.rollout.sampler import (
    HeadInputs,
    Rollout,
    float32_output_embeddings,
    head_parameters,
    hidden_at,
    left_pad,
    logits_post_processing,
    logits_rows,
    output_head,
    response_logits,
    response_scores,
    sample,
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
