"""Make the embedded base model for every (torch threads, pretrain seed, model size) cell and
tabulate what each one learnt: the check that the base-model recipe holds beyond one machine.

    python scripts/base_model_grid.py --out runs/base_model_grid            # the full grid
    python scripts/base_model_grid.py --out runs/g --threads 1 --seeds 0 --sizes h128x4

Each cell runs `entropy-rl pretrain` in its own process with OMP_NUM_THREADS set, and its own
cache directory per thread count (the same config gives a different model at another thread
count). On this project's machine 1, 2 and 4 threads give bit-identical models, while
`--kernels avx2` (ATEN_CPU_CAPABILITY) changes the float summation order as another machine
would. Finished cells are reused, so the same command resumes. `--jobs` cells run at once;
the wall times then include that sharing of the CPU. Writes OUT/grid.json and OUT/grid.md.
Extra arguments are config overrides applied to every cell (e.g. pretrain.max_steps=3000).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

DEFAULT_SIZES = "h48x4,h80x4,h128x4,h160x4"
"""The sizes of experiments/paper_small.yaml."""
SIZE_PATTERN = re.compile(r"h(\d+)x(\d+)")
"""A size is named hWxL: hidden width W and L layers, with 4 heads and an MLP of 4W."""
BASE_WIDTH, BASE_LR = 128, 1.5e-3
"""The pretraining learning rate scales as 1/width: BASE_LR at BASE_WIDTH (the default size,
`pretrain.lr`); experiments/paper_small.yaml lists the same values. docs/base_models.md says
how the rate was chosen."""


def size_overrides(size: str) -> list[str]:
    """The config overrides of size `size` (hWxL); h128x4 is the embedded default."""
    match = SIZE_PATTERN.fullmatch(size)
    if match is None:
        raise ValueError(f"size {size!r} is not of the form hWxL (e.g. h64x4)")
    width, layers = (int(g) for g in match.groups())
    return [
        f"model.hidden_size={width}",
        f"model.num_layers={layers}",
        "model.num_heads=4",
        f"model.intermediate_size={4 * width}",
        f"pretrain.lr={BASE_LR * BASE_WIDTH / width:.3g}",
    ]


def _cell(
    out: Path, kernels: str, threads: int, seed: int, size: str, overrides: list[str]
) -> dict:
    tag = f"threads{threads}" + ("" if kernels == "default" else f"-{kernels}")
    cache = out / tag
    args = [
        *size_overrides(size),
        f"pretrain.seed={seed}",
        f"pretrain.cache_dir={cache}",
        *overrides,
    ]
    log = out / "logs" / f"{tag}-s{seed}-{size}.log".replace("threads", "t")
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if kernels != "default":
        env["ATEN_CPU_CAPABILITY"] = kernels
    with log.open("w") as f:
        code = subprocess.call(
            [sys.executable, "-m", "entropy_rl", "pretrain", *args], stdout=f, stderr=f, env=env
        )
    found = _matching(sorted(cache.glob("sum3-*/pretrain.json")), seed, size)
    row = {"kernels": kernels, "threads": threads, "seed": seed, "size": size, "exit": code}
    if found is None:
        return row | {"error": f"no base model; see {log}"}
    record = json.loads((found / "pretrain.json").read_text())
    val = record["validation"]
    return row | {
        "params": record["num_parameters"],
        "steps": record["steps"],
        "cooldown": record["cooldown_start"],
        "weights": _weights_digest(found),
        "greedy": val["val/acc_greedy"],
        "sampled": val["val/acc"],
        "entropy": val["entropy/mean"],
        "wall_s": record["wall_time_s"],
        "learnt": code == 0,
    }


def _weights_digest(directory: Path) -> str:
    """The first 12 hex digits of the sha256 of a base model's weights file: equal digests
    across thread counts mean bit-identical models."""
    return hashlib.sha256((directory / "model.safetensors").read_bytes()).hexdigest()[:12]


def _matching(paths: list[Path], seed: int, size: str) -> Path | None:
    """The base-model directory among `paths` (their pretrain.json) of `seed` and `size`."""
    # the model fields only: an extra pretrain.lr=... override replaces the size's own rate
    wanted = dict(arg.split("=") for arg in size_overrides(size) if arg.startswith("model."))
    for path in paths:
        record = json.loads(path.read_text())
        config = record["config"]
        found = {key: config[key.split(".")[0]][key.split(".")[1]] for key in wanted}
        same = all(float(found[key]) == float(value) for key, value in wanted.items())
        if config["pretrain"]["seed"] == seed and same:
            return path.parent
    return None


def _table(rows: list[dict]) -> str:
    head = (
        "| kernels | threads | seed | size | params | steps (cool-down from) | greedy | sampled | "
        "entropy | wall s | weights | learnt |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['kernels']} | {r['threads']} | {r['seed']} | {r['size']} | {r['error']} ||||||||"
            )
            continue
        lines.append(
            f"| {r['kernels']} | {r['threads']} | {r['seed']} | {r['size']} | {r['params'] / 1e6:.2f}M | "
            f"{r['steps']} ({r['cooldown']}) | {r['greedy']:.3f} | {r['sampled']:.3f} | "
            f"{r['entropy']:.3f} | {r['wall_s']:.0f} | {r['weights']} | {'yes' if r['learnt'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="grid directory")
    parser.add_argument("--threads", default="1,2,4", help="torch thread counts (default 1,2,4)")
    parser.add_argument("--seeds", default="0,1,2", help="pretrain seeds (default 0,1,2)")
    parser.add_argument(
        "--sizes", default=DEFAULT_SIZES, help=f"model sizes, hWxL (default: {DEFAULT_SIZES})"
    )
    parser.add_argument(
        "--kernels",
        default="default",
        help="torch CPU kernels, comma-separated: default (what the CPU supports) or a value of "
        "ATEN_CPU_CAPABILITY (avx2, avx512, ...), to try another machine's float summation order",
    )
    parser.add_argument("--jobs", type=int, default=2, help="cells at once (default 2)")
    parser.add_argument(
        "--table",
        help="name of the written tables, OUT/NAME.json and OUT/NAME.md (default: grid, or "
        "grid-KERNELS with --kernels)",
    )
    parser.add_argument("overrides", nargs="*", help="config overrides for every cell")
    args = parser.parse_args()
    sizes = args.sizes.split(",")
    unknown = [s for s in sizes if SIZE_PATTERN.fullmatch(s) is None]
    if unknown or args.jobs < 1:
        parser.error(
            f"size {unknown[0]!r} is not of the form hWxL (e.g. h64x4)"
            if unknown
            else "--jobs must be >= 1"
        )
    cells = [
        (k, int(t), int(s), size)
        for k in args.kernels.split(",")
        for t in args.threads.split(",")
        for s in args.seeds.split(",")
        for size in sizes
    ]
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(_cell, args.out, *cell, args.overrides) for cell in cells]
        rows = []
        for future in futures:
            rows.append(future.result())
            print(_table(rows[-1:]).splitlines()[-1], flush=True)
    name = args.table or (
        "grid" if args.kernels == "default" else f"grid-{args.kernels.replace(',', '-')}"
    )
    (args.out / f"{name}.json").write_text(json.dumps(rows, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(_table(rows))
    learnt = sum(bool(r.get("learnt")) for r in rows)
    print(f"{learnt} of {len(rows)} cells learnt; table in {args.out / (name + '.md')}")
    return 0 if learnt == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
