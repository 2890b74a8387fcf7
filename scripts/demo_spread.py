"""Run `entropy-rl demo` for several seeds and torch thread counts, and tabulate each
summary figure as mean and range over those runs: the README's demo table.

    python scripts/demo_spread.py --out runs/demo_spread                  # 3 seeds x 1, 2 threads
    python scripts/demo_spread.py --out runs/demo_spread --seeds 0 --threads 2

Seed S sets both pretrain.seed and train.seed. Each demo runs in its own process with
OMP_NUM_THREADS set, and base models are cached per thread count under OUT/threads<T> (the
same config gives another base model at another thread count; `--cache` to share them).
Finished demos are reused,
so the same command resumes. Writes OUT/spread.json and OUT/spread.md; extra arguments are
config overrides for every demo.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

METHODS = ("grpo", "kl_cov", "clip_cov")
ROWS = (
    ("entropy start", lambda s, g: s["entropy_start"]),
    ("entropy end", lambda s, g: s["entropy_end"]),
    ("entropy end / start", lambda s, g: s["entropy_end"] / s["entropy_start"]),
    ("entropy end / GRPO's", lambda s, g: s["entropy_end"] / g["entropy_end"]),
    ("`val/acc` start", lambda s, g: s["val_acc_start"]),
    ("`val/acc` end", lambda s, g: s["val_acc_end"]),
    ("`val/acc_greedy` start", lambda s, g: s["val_acc_greedy_start"]),
    ("`val/acc_greedy` end", lambda s, g: s["val_acc_greedy_end"]),
    ("law a", lambda s, g: s["law"]["a"]),
    ("law b", lambda s, g: s["law"]["b"]),
    ("law ceiling b - a", lambda s, g: s["law"]["ceiling"]),
    ("law R²", lambda s, g: s["law"]["r2"]),
    ("share of steps with Cov(log pi, A) > 0", lambda s, g: s["cov_pos_step_frac"]),
    ("Lemma-1 correlation with the actual dH", lambda s, g: s["lemma1"]["corr"]),
    ("RL wall time (s)", lambda s, g: s["train_time_s"]),
)


def _demo(out: Path, cache: Path, threads: int, seed: int, overrides: list[str]) -> dict:
    demo_dir = out / f"t{threads}-s{seed}"
    args = [
        "demo",
        "--out",
        str(demo_dir),
        f"pretrain.seed={seed}",
        f"train.seed={seed}",
        f"pretrain.cache_dir={cache / f'threads{threads}'}",
        *overrides,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log = out / "logs" / f"t{threads}-s{seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f:
        code = subprocess.call(
            [sys.executable, "-m", "entropy_rl", *args], stdout=f, stderr=f, env=env
        )
    if code != 0:
        return {"threads": threads, "seed": seed, "error": f"exit {code}; see {log}"}
    summaries = {m: json.loads((demo_dir / m / "summary.json").read_text()) for m in METHODS}
    return {"threads": threads, "seed": seed, "summaries": summaries}


def _table(results: list[dict]) -> str:
    done = [r for r in results if "summaries" in r]
    names = ", ".join(f"t{r['threads']}-s{r['seed']}" for r in done)
    lines = [
        f"mean [min, max] over {len(done)} demos ({names})",
        "",
        "| | " + " | ".join(METHODS) + " |",
        "|---|" + "---|" * len(METHODS),
    ]
    for name, get in ROWS:
        cells = []
        for method in METHODS:
            values = np.array([get(r["summaries"][method], r["summaries"]["grpo"]) for r in done])
            cells.append(f"{values.mean():.3f} [{values.min():.3f}, {values.max():.3f}]")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    failed = [r for r in results if "error" in r]
    lines += [f"\nfailed: t{r['threads']}-s{r['seed']}: {r['error']}" for r in failed]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory of the demos")
    parser.add_argument("--threads", default="1,2", help="torch thread counts (default 1,2)")
    parser.add_argument("--seeds", default="0,1,2", help="seeds (default 0,1,2)")
    parser.add_argument("--jobs", type=int, default=1, help="demos at once (default 1)")
    parser.add_argument(
        "--cache",
        type=Path,
        help="base-model caches CACHE/threads<T> (default: OUT; scripts/base_model_grid.py's "
        "--out reuses its base models)",
    )
    parser.add_argument("overrides", nargs="*", help="config overrides for every demo")
    args = parser.parse_args()
    cells = [(int(t), int(s)) for t in args.threads.split(",") for s in args.seeds.split(",")]
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        futures = [
            pool.submit(_demo, args.out, args.cache or args.out, t, s, args.overrides)
            for t, s in cells
        ]
        results = [f.result() for f in futures]
    (args.out / "spread.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "spread.md").write_text(_table(results))
    print(_table(results))
    return 0 if all("summaries" in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
