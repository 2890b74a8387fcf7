"""Data-parallel training under `torchrun`: the process group, model wrapping, collectives.

One `Dist` describes this process's place in the job and does every collective the trainer
needs; in a single process (no torchrun) it has world_size 1 and every collective is the
identity, so the single-process code path is the distributed one with W = 1.

- DDP: every rank holds the model; gradients are averaged by `DistributedDataParallel`.
- FSDP2: `torch.distributed.fsdp.fully_shard` on each decoder layer, then on the whole
  model: parameters, gradients and optimizer state are sharded; forward passes all-gather.
Both average gradients over ranks, so a rank's loss is multiplied by W before `backward`
(`loss_scale`): the gradient is then that of the sum of the ranks' losses, which with the
global denominators of `core.aggregate_loss` is the global batch's loss.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as torch_dist

from entropy_rl.config import DistributedConfig

TIMEOUT = datetime.timedelta(minutes=30)
"""How long a collective waits for the slowest rank (long rollouts and checkpoints)."""


@dataclass(frozen=True)
class Dist:
    """This process's rank among `world_size`, its device, and the wrapping strategy."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    strategy: str = "ddp"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def loss_scale(self) -> float:
        """Multiply a rank's loss by this before backward (wrappers average over ranks)."""
        return float(self.world_size)

    # ---- collectives (identity with one process) ----

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise sum over ranks (a new tensor; float64 stays float64)."""
        if not self.active:
            return tensor.detach().clone()
        out = tensor.detach().clone().to(self.device)
        torch_dist.all_reduce(out, op=torch_dist.ReduceOp.SUM)
        return out.to(tensor.device)

    def max_int(self, value: int) -> int:
        out = torch.tensor([value], device=self.device)
        if self.active:
            torch_dist.all_reduce(out, op=torch_dist.ReduceOp.MAX)
        return int(out)

    def all_done(self, done: bool) -> bool:
        """True when `done` holds on every rank."""
        if not self.active:
            return done
        flag = torch.tensor([int(done)], device=self.device)
        torch_dist.all_reduce(flag, op=torch_dist.ReduceOp.MIN)
        return bool(flag)

    def gather_rows(self, tensor: torch.Tensor, fill: float = 0) -> torch.Tensor:
        """Every rank's (b, T_r, ...) tensor, padded with `fill` to the longest T, stacked in
        rank order: (W*b, T, ...). Every rank must pass the same b."""
        if not self.active:
            return tensor
        if tensor.dim() > 1:
            width = self.max_int(tensor.shape[1])
            pad = torch.full(
                (tensor.shape[0], width - tensor.shape[1], *tensor.shape[2:]),
                fill,
                dtype=tensor.dtype,
                device=tensor.device,
            )
            tensor = torch.cat([tensor, pad], dim=1)
        local = tensor.contiguous().to(self.device)
        parts = [torch.empty_like(local) for _ in range(self.world_size)]
        torch_dist.all_gather(parts, local)
        return torch.cat(parts).to(tensor.device)

    def own_rows(self, tensor: torch.Tensor, rows: int, width: int | None = None):
        """This rank's block of `rows` rows of a gathered tensor, cut to `width` columns."""
        block = tensor[self.rank * rows : (self.rank + 1) * rows]
        return block if width is None else block[:, :width]

    def gather_objects(self, obj: Any) -> list[Any]:
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch_dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        torch_dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            torch_dist.barrier()

    def shard(self, items: Sequence[Any]) -> list[Any]:
        """This rank's contiguous share of `items` (len(items) divisible by world_size)."""
        size = len(items) // self.world_size
        return list(items[self.rank * size : (self.rank + 1) * size])

    def shard_padded(self, items: Sequence[Any]) -> tuple[list[Any], int]:
        """An equal-size share per rank (the last item repeats to fill it) and how many of
        its items are real, so every rank runs the same number of forward passes."""
        size = math.ceil(len(items) / self.world_size)
        own = list(items[self.rank * size : (self.rank + 1) * size])
        real = len(own)
        return own + [items[-1]] * (size - real), real


def init_distributed(config: DistributedConfig) -> Dist:
    """Join the torchrun job (WORLD_SIZE > 1) or describe the single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world_size == 1:
        return Dist(device=device, strategy=config.strategy)
    backend = config.backend if config.backend != "auto" else ("nccl" if cuda else "gloo")
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend, timeout=TIMEOUT)
    return Dist(torch_dist.get_rank(), world_size, device, config.strategy)


def shutdown(dist: Dist) -> None:
    if dist.active and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def wrap_model(model: torch.nn.Module, dist: Dist) -> torch.nn.Module:
    """The module the update calls: `model` itself (one process, or FSDP2 sharded in
    place) or its DDP wrapper."""
    if not dist.active:
        return model
    if dist.strategy == "ddp":
        ids = [dist.device.index] if dist.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(
            model, device_ids=ids, broadcast_buffers=False
        )
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(dist.device.type, (dist.world_size,))
    for layer in _decoder_layers(model):
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks of a Hugging Face causal LM (its `_no_split_modules` classes)."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    return [m for m in model.modules() if type(m).__name__ in names]


def accumulate(module: torch.nn.Module, dist: Dist, sync: bool):
    """Context of one micro-batch's backward: gradients are reduced over ranks only when
    `sync` (the last micro-batch of a mini-batch)."""
    if not dist.active:
        return contextlib.nullcontext()
    if isinstance(module, torch.nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext() if sync else module.no_sync()
    module.set_requires_gradient_sync(sync)
    return contextlib.nullcontext()


def full_norm(norm: torch.Tensor) -> float:
    """A gradient norm as a float (FSDP2's is a DTensor over the ranks' shards)."""
    full = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
    return float(full)
