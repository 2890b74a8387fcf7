"""Peak memory and time of `token_entropy` with and without chunking, at a real vocabulary.

Each measurement runs in a fresh child process: it builds bf16 logits (T, V), records its
peak resident memory (ru_maxrss) after that, computes the entropy, and reports the peak
extra memory the computation needed and its wall time (best of --repeats). Prints a table.

    .venv/bin/python benchmarks/entropy_memory.py                  # V = 151,936 (Qwen2.5), T = 4,096
    .venv/bin/python benchmarks/entropy_memory.py --tokens 1024 --chunks 256 1024
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from _common import peak_rss_mib


def child(tokens: int, vocab: int, chunk: int | None, repeats: int) -> dict:
    import torch

    from entropy_rl.core import token_entropy

    generator = torch.Generator().manual_seed(0)
    logits = torch.empty(tokens, vocab, dtype=torch.bfloat16)  # (T, V)
    for row in range(0, tokens, 64):  # filled in blocks: no full-size float32 temporary
        block = logits[row : row + 64]
        block.copy_(torch.randn(block.shape, generator=generator) * 4)
    times = []
    before = peak_rss_mib()
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.no_grad():
            entropy = token_entropy(logits, chunk_size=chunk)  # (T,)
        times.append(time.perf_counter() - start)
    return {
        "extra_mib": peak_rss_mib() - before,
        "seconds": min(times),
        "checksum": float(entropy.double().sum()),
    }


def measure(tokens: int, vocab: int, chunk: int | None, repeats: int) -> dict:
    args = [sys.executable, __file__, "--child", str(tokens), str(vocab), str(chunk), str(repeats)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=4096, help="positions T (default 4096)")
    parser.add_argument("--vocab", type=int, default=151_936, help="vocabulary V (default 151936)")
    parser.add_argument(
        "--chunks", type=int, nargs="+", default=[256, 512, 1024], help="chunk sizes to try"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions (best is kept)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tokens, vocab, chunk, repeats = args.child
        chunk_size = None if chunk == "None" else int(chunk)
        print(json.dumps(child(int(tokens), int(vocab), chunk_size, int(repeats))))
        return
    rows = [(None, measure(args.tokens, args.vocab, None, args.repeats))]
    rows += [(c, measure(args.tokens, args.vocab, c, args.repeats)) for c in args.chunks]
    base = rows[0][1]
    print(
        f"token_entropy on bf16 logits ({args.tokens} x {args.vocab}), CPU, best of {args.repeats}"
    )
    print(
        f"{'chunk_size':>10} {'peak extra MiB':>15} {'x lower':>8} {'seconds':>9} {'vs unchunked':>13}"
    )
    for chunk, r in rows:
        if abs(r["checksum"] - base["checksum"]) > 1e-3 * abs(base["checksum"]):
            raise SystemExit(f"chunk {chunk}: result differs from unchunked")
        print(
            f"{chunk or 'none':>10} {r['extra_mib']:>15.0f} {base['extra_mib'] / max(r['extra_mib'], 1):>8.1f}"
            f" {r['seconds']:>9.3f} {r['seconds'] / base['seconds'] - 1:>+12.1%}"
        )


if __name__ == "__main__":
    main()
