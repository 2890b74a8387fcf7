"""Rollouts: the batch of sampled responses, the engines that sample them, and the
teacher-forced pass that scores them again."""

from entropy_rl.rollout.engine import RolloutEngine, TransformersEngine, make_engine
from entropy_rl.rollout.sampler import (
    Rollout,
    float32_output_embeddings,
    left_pad,
    response_logits,
    sample,
)

__all__ = [
    "Rollout",
    "RolloutEngine",
    "TransformersEngine",
    "float32_output_embeddings",
    "left_pad",
    "make_engine",
    "response_logits",
    "sample",
]
