"""This project's RL step against TRL's `GRPOTrainer` at a real vocabulary (151,936 tokens):
seconds per step, response tokens per second and peak memory, for the same work in each arm.

The policy is an untrained Qwen2ForCausalLM (transformers) with tied embeddings, random
weights from a fixed seed, and a locally built tokenizer (a `tokenizers` WordLevel model
wrapped in PreTrainedTokenizerFast) of exactly 151,936 entries: 4 special tokens (unk, bos,
eos, pad; bos is prepended to every prompt in both arms), the digits, "+" and "=", and made-up
words. Both are saved with `save_pretrained` to a temporary directory that every arm loads;
nothing is downloaded. Random weights spread their probability over the whole vocabulary, so
eos is almost never sampled and every response runs to the length limit: both arms sample
exactly N tokens (ours: task.max_response_tokens = N - 1, since our sampler allows one more
token for eos; TRL: max_completion_length = N). The mean response length each arm measured is
printed beside the table.

Prompts are "a+b=" sums in a JSONL file (prompt, answer) read by both arms (ours: the
`dataset` task). The reward, `length_reward` below, is a deterministic number in [0, 1] from
the response's length in characters: it varies within a group, so advantages are non-zero and
every update has a gradient. Ours calls it through task.reward=gpu_vs_trl:length_reward; TRL
through a reward function that calls it on its completions.

One RL step, in each arm (P prompts x G responses, AdamW, no KL term, no evaluation):
  ours-*: one `entropy_rl.training.trainer.run_step`, the policy and optimizer set up as a run does
          (`entropy_rl.training.runner`): sample P*G responses with our KV-cache loop, score them, one
          no-grad pass (old log-probs, entropy, covariances, the loss mode's token selection),
          4 AdamW updates of P*G/4 responses, then the Lemma-1 probe
          (diagnostics.probe_size=16 responses re-scored after the updates). Three arms:
          loss.mode=ppo; kl_cov with kl_cov_ratio=2e-3, kl_cov_coef=1; clip_cov with its
          default ratio for a real model (2e-4).
  trl:    4 optimizer steps of `GRPOTrainer` (beta=0, num_iterations=1, loss_type=dapo,
          per_device_train_batch_size=P*G/4, steps_per_generation=4, num_generations=G, no
          gradient checkpointing, optim=adamw_torch as ours, top_k=0 and top_p=1 as ours):
          the first generates and scores all P*G completions with `model.generate` and runs
          a no-grad pass for old log-probs; each of the 4 then updates on its P*G/4. Timed
          from the trainer's step-end callbacks, grouped by 4.
Both use learning rate 1e-6 (constant), gradient clip 1.0, no weight decay, temperature 1.

Modes (--mode):
  small: hidden 64, 2 layers, 4 heads (2 KV heads), MLP 256; 4 prompts x 8 responses of
         exactly 64 tokens, updates of 8; float32. Runs on a CPU in minutes.
  full:  Qwen2.5-0.5B's shape: hidden 896, 24 layers, 14 heads (2 KV heads), MLP 4864, rope
         theta 1e6; 32 prompts x 8 responses of exactly 256 tokens, updates of 64; float32
         parameters under bf16 autocast (ours: model.autocast=true; TRL: bf16=True with
         cast_lm_head_to_fp32=True, since ours always projects the head in float32). Needs
         CUDA unless --device cpu forces it onto the CPU.

Each arm runs in a fresh child process, arms alternating, --repeats times; a child discards
--warmup RL steps and times --steps. Peak memory: on CUDA `torch.cuda.max_memory_allocated`
of the child; on CPU the child's peak RSS (ru_maxrss: Python, torch, the libraries, the model,
the optimizer, activations). "growth" is the peak minus the level right before the first step
(CUDA: memory allocated then; CPU: resident memory then), so the fixed cost of the process and
the loaded model is left out of it. Prints a markdown table, the measured response lengths,
and where each arm's step time goes.

    PYTHONPATH=src .venv/bin/python benchmarks/gpu_vs_trl.py
    PYTHONPATH=src .venv/bin/python benchmarks/gpu_vs_trl.py --mode full --json gpu.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _common import our_breakdown, peak_rss_mib, time_our_steps, train_timed

VOCAB = 151_936
UPDATES_PER_STEP = 4
PROBE_SIZE = 16
SEED = 0
PROMPT_ROWS = 512
ARMS = ("ours-ppo", "ours-kl_cov", "ours-clip_cov", "trl")
LOSS_OVERRIDES = {
    "ours-ppo": ["loss.mode=ppo"],
    "ours-kl_cov": ["loss.mode=kl_cov", "loss.kl_cov_ratio=2e-3", "loss.kl_cov_coef=1.0"],
    "ours-clip_cov": ["loss.mode=clip_cov"],  # clip_cov_ratio: the real-model default
}
SPECIAL_TOKENS = {"unk": "<|unk|>", "bos": "<|bos|>", "eos": "<|eos|>", "pad": "<|pad|>"}


@dataclass(frozen=True)
class Work:
    """The policy's shape and one RL step's batch, in one mode."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    mlp: int
    prompts: int
    group: int
    response_tokens: int
    bf16: bool

    @property
    def responses(self) -> int:
        return self.prompts * self.group

    @property
    def per_update(self) -> int:
        return self.responses // UPDATES_PER_STEP


MODES = {
    "small": Work(64, 2, 4, 2, 256, prompts=4, group=8, response_tokens=64, bf16=False),
    "full": Work(896, 24, 14, 2, 4864, prompts=32, group=8, response_tokens=256, bf16=True),
}


@dataclass(frozen=True)
class Spec:
    """What a child process needs (sent to it as JSON)."""

    work: Work
    model_dir: str
    data_file: str
    device: str
    threads: int
    warmup: int
    steps: int
    extra: tuple[str, ...] = ()
    """More config overrides (section.field=value) for our arms (--set)."""

    @classmethod
    def from_json(cls, text: str) -> Spec:
        data = json.loads(text)
        return cls(**{**data, "work": Work(**data["work"]), "extra": tuple(data["extra"])})


def length_reward(prompt: str, response: str, answer: str) -> float:
    """The benchmark's reward (both arms): a deterministic number in [0, 1] from the length of
    the response's text, so that rewards vary within a group; the answer is ignored."""
    return (len(response) % 10) / 9


def rss_mib() -> float:
    """This process's resident memory now, in MiB (Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


# ---- the policy and the prompts ---------------------------------------------------------


def build_tokenizer():
    """A PreTrainedTokenizerFast of exactly VOCAB entries that prepends bos to a text."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    for token in [*SPECIAL_TOKENS.values(), *"0123456789+="]:
        vocab[token] = len(vocab)
    for word in range(VOCAB - len(vocab)):
        vocab[f"w{word}"] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk"]))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.Punctuation(),
        ]
    )
    bos = SPECIAL_TOKENS["bos"]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, vocab[bos])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, **{f"{name}_token": tok for name, tok in SPECIAL_TOKENS.items()}
    )
    assert len(tokenizer) == VOCAB, len(tokenizer)
    return tokenizer


def make_policy(work: Work, directory: Path, data_file: Path) -> int:
    """Save the random policy and its tokenizer to `directory`, the prompts to `data_file`;
    the policy's parameter count (tied embeddings counted once)."""
    import numpy as np
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tokenizer()
    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=work.hidden,
        num_hidden_layers=work.layers,
        num_attention_heads=work.heads,
        num_key_value_heads=work.kv_heads,
        intermediate_size=work.mlp,
        max_position_embeddings=4096,
        rope_theta=1e6,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(SEED)
    model = Qwen2ForCausalLM(config).float()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    rng = np.random.default_rng(SEED)
    with data_file.open("w") as out:
        for a, b in rng.integers(0, 100, size=(PROMPT_ROWS, 2)).tolist():
            out.write(json.dumps({"prompt": f"{a}+{b}=", "answer": str(a + b)}) + "\n")
    return sum(p.numel() for p in model.parameters())  # parameters() yields a tied one once


# ---- arms: this project ---------------------------------------------------------------


def ours_overrides(arm: str, spec: Spec) -> list[str]:
    work = spec.work
    return [
        f"model.path={spec.model_dir}",
        "model.dtype=float32",
        f"model.autocast={work.bf16}",
        "model.gradient_checkpointing=false",
        "task.name=dataset",
        f"task.train_file={spec.data_file}",
        "task.val_size=16",
        f"task.max_response_tokens={work.response_tokens - 1}",  # + 1 for eos: N sampled
        "task.reward=gpu_vs_trl:length_reward",
        "train.steps=100000",
        "eval.every=100000",
        f"train.prompts_per_step={work.prompts}",
        f"train.group_size={work.group}",
        f"train.mini_batches={UPDATES_PER_STEP}",
        "train.micro_batches=1",
        "train.ppo_epochs=1",
        "train.temperature=1.0",
        "train.lr=1e-6",
        "train.weight_decay=0.0",
        "train.grad_clip=1.0",
        f"train.seed={SEED}",
        f"diagnostics.probe_size={PROBE_SIZE}",
        "rollout.engine=transformers",
        *LOSS_OVERRIDES[arm],
        *spec.extra,
    ]


def _memory_now(cuda: bool) -> float:
    import torch

    return torch.cuda.memory_allocated() / 2**20 if cuda else rss_mib()


def _memory_peak(cuda: bool) -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss_mib()


def run_ours(arm: str, spec: Spec) -> dict:
    import torch
    from rich.console import Console

    from entropy_rl.config import config_to_dict, load_config
    from entropy_rl.runs.metric_keys import RESPONSE_LEN_MEAN
    from entropy_rl.runs.resume_point import ResumePoint
    from entropy_rl.tasks import make_reward, make_task
    from entropy_rl.training import runner, trainer
    from entropy_rl.training.distributed import init_distributed

    torch.set_num_threads(spec.threads)
    config = load_config(None, ours_overrides(arm, spec))
    parts: dict[str, float] = {}
    time_our_steps(parts, "update (4 optimizer steps)")

    dist = init_distributed(config.distributed)
    cuda = dist.device.type == "cuda"
    task = make_task(config.task)
    reward = make_reward(config.task, task)
    start = ResumePoint(None, None, ())
    policy, worker, optimizer, state = runner._restore(
        start, config, Console(stderr=True), dist, task, reward
    )
    state.step = 1  # not an evaluation step (nor the last)
    before = _memory_now(cuda)
    times, lengths = [], []
    for index in range(spec.warmup + spec.steps):
        if index == spec.warmup:
            parts.clear()
        begin = time.perf_counter()
        record = trainer.run_step(policy, worker, optimizer, config, state, [], dist)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - begin)
        state.step += 1
        if index >= spec.warmup:
            lengths.append(record[RESPONSE_LEN_MEAN])
    return {
        "step_s": times[spec.warmup :],
        "parts": our_breakdown(parts, spec.steps, "old log-probs + stats + selection"),
        "peak_mib": _memory_peak(cuda),
        "growth_mib": _memory_peak(cuda) - before,
        "rss_peak_mib": peak_rss_mib(),
        "response_len_mean": statistics.mean(lengths),
        "device": str(dist.device),
        "autocast": policy.autocast,
        "loss": config_to_dict(config.loss),
    }


# ---- arm: TRL ---------------------------------------------------------------------------


def run_trl(spec: Spec) -> dict:
    import torch
    from datasets import Dataset
    from transformers import PreTrainedTokenizerFast, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(spec.threads)
    work = spec.work
    cpu = spec.device == "cpu"
    cuda = not cpu
    with open(spec.data_file) as rows:
        dataset = Dataset.from_list([json.loads(line) for line in rows])
    tokenizer = PreTrainedTokenizerFast.from_pretrained(spec.model_dir, local_files_only=True)

    def reward(prompts, completions, answer, **kwargs):
        return [
            length_reward(prompt, text, right)
            for prompt, text, right in zip(prompts, completions, answer, strict=True)
        ]

    total_updates = UPDATES_PER_STEP * (spec.warmup + spec.steps)
    args = GRPOConfig(
        output_dir=str(Path(spec.model_dir).parent / "trl_output"),  # removed with the policy
        use_cpu=cpu,
        bf16=work.bf16 and cuda,
        cast_lm_head_to_fp32=work.bf16 and cuda,
        model_init_kwargs={"dtype": "float32"},
        activation_checkpointing=False,  # TRL's default is on (gradient_checkpointing=True)
        report_to="none",
        per_device_train_batch_size=work.per_update,
        gradient_accumulation_steps=1,
        steps_per_generation=UPDATES_PER_STEP,  # generation batch: per_update x 4 = P x G
        num_generations=work.group,
        num_iterations=1,
        max_completion_length=work.response_tokens,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        beta=0.0,
        epsilon=0.2,
        loss_type="dapo",
        scale_rewards="group",
        learning_rate=1e-6,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=1.0,
        optim="adamw_torch",
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        max_steps=total_updates,
        seed=SEED,
        dataloader_num_workers=0,
    )
    lengths: list[float] = []

    class Lengths(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            timed_step = state.global_step > UPDATES_PER_STEP * spec.warmup
            if logs and "completions/mean_length" in logs and timed_step:
                lengths.append(logs["completions/mean_length"])

    trainer = GRPOTrainer(
        model=spec.model_dir,
        reward_funcs=reward,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[Lengths()],
    )
    times, before, done = train_timed(
        trainer,
        UPDATES_PER_STEP,
        spec.warmup,
        spec.steps,
        lambda: _memory_now(cuda),
        torch.cuda.synchronize if cuda else None,
    )
    return {
        "step_s": times,
        "parts": done,
        "peak_mib": _memory_peak(cuda),
        "growth_mib": _memory_peak(cuda) - before,
        "rss_peak_mib": peak_rss_mib(),
        "response_len_mean": statistics.mean(lengths) if lengths else float("nan"),
        "device": str(trainer.accelerator.device),
        "autocast": bool(args.bf16),
        "activation_checkpointing": bool(getattr(trainer.model, "is_activation_checkpointing", 0)),
    }


# ---- driver -----------------------------------------------------------------------------


def child_env(device: str, threads: int) -> dict[str, str]:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OMP_WAIT_POLICY": "PASSIVE",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # a forced CPU run on a CUDA machine stays on the CPU
    return env


def spawn(what: str, spec: Spec) -> dict:
    """Run `what` (an arm, or "make") in a fresh child process; its JSON result."""
    args = [sys.executable, __file__, "--child", what, json.dumps(dataclasses.asdict(spec))]
    result = subprocess.run(
        args, capture_output=True, text=True, env=child_env(spec.device, spec.threads)
    )
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-4000:])
        raise SystemExit(f"gpu_vs_trl: the {what} child failed (exit {result.returncode})")
    return json.loads(result.stdout.strip().splitlines()[-1])


def child(what: str, spec: Spec) -> dict:
    if what == "make":
        import torch

        torch.set_num_threads(spec.threads)
        return {"params": make_policy(spec.work, Path(spec.model_dir), Path(spec.data_file))}
    if what == "trl":
        return run_trl(spec)
    return run_ours(what, spec)


def resolve_device(mode: str, device: str) -> str:
    """cuda or cpu; SystemExit with one line when CUDA is asked for (or --mode full needs
    it) and there is none."""
    import torch

    has_cuda = torch.cuda.is_available()
    if device == "auto":
        device = "cuda" if has_cuda else "cpu"
        if mode == "full" and not has_cuda:
            raise SystemExit(
                "gpu_vs_trl: --mode full needs a CUDA GPU and none is visible; run it on a GPU "
                "machine, or add --device cpu to force it onto the CPU (very slow)"
            )
    if device == "cuda" and not has_cuda:
        raise SystemExit("gpu_vs_trl: --device cuda, but no CUDA GPU is visible")
    return device


def summarise(runs: dict[str, list[dict]], work: Work) -> dict[str, dict]:
    out = {}
    for arm, rs in runs.items():
        step = statistics.median(t for r in rs for t in r["step_s"])
        length = statistics.mean(r["response_len_mean"] for r in rs)
        out[arm] = {
            "step_s_median": step,
            "response_tokens_per_s": work.responses * length / step,
            "peak_mib": max(r["peak_mib"] for r in rs),
            "growth_mib": max(r["growth_mib"] for r in rs),
            "response_len_mean": length,
            "parts_s": {
                key: statistics.mean(r["parts"][key] for r in rs) for key in rs[0]["parts"]
            },
        }
    return out


def print_report(summary: dict[str, dict], args, work: Work, device: str, params: int) -> None:
    memory = (
        "torch.cuda.max_memory_allocated"
        if device == "cuda"
        else "peak RSS of the child process (ru_maxrss)"
    )
    print(
        f"\nmode {args.mode}: {params / 1e6:.1f}M-parameter Qwen2 (hidden {work.hidden}, "
        f"{work.layers} layers), vocabulary {VOCAB:,}; RL step = {work.prompts} prompts x "
        f"{work.group} responses of {work.response_tokens} tokens, {UPDATES_PER_STEP} AdamW "
        f"updates of {work.per_update}; {device}, {args.threads} thread(s), "
        f"{'bf16 autocast' if work.bf16 and device == 'cuda' else 'float32'}; median over "
        f"{args.repeats} run(s) x {args.steps} timed steps (after {args.warmup} warm-up); "
        f"memory: {memory}, max over runs; growth: over the level right before the first "
        f"step; vs TRL: this arm's value over TRL's (above 1x: slower, more memory)\n"
    )
    trl = summary.get("trl")
    print(
        "| arm | s/step (median) | response tokens/s | peak memory MiB | growth MiB "
        "| vs TRL s/step | vs TRL memory |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for arm, s in summary.items():
        if trl is None:
            vs_step = vs_memory = "n/a"
        else:
            vs_step = f"{s['step_s_median'] / trl['step_s_median']:.2f}x"
            vs_memory = f"{s['peak_mib'] / trl['peak_mib']:.2f}x"
        print(
            f"| {arm} | {s['step_s_median']:.3f} | {s['response_tokens_per_s']:.0f} "
            f"| {s['peak_mib']:.0f} | {s['growth_mib']:.0f} | {vs_step} | {vs_memory} |"
        )
    print()
    lengths = ", ".join(f"{arm} {s['response_len_mean']:.2f}" for arm, s in summary.items())
    print(f"mean response tokens (measured; the limit is {work.response_tokens}): {lengths}")
    for arm, s in summary.items():
        parts = s["parts_s"]
        total = sum(parts.values())
        shares = ", ".join(
            f"{key} {value:.3f}s ({value / total:.0%})" for key, value in parts.items()
        )
        print(f"where the time goes, {arm}: {shares}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog="What is measured, in detail: the module docstring of this file.",
    )
    parser.add_argument(
        "--mode",
        choices=sorted(MODES),
        default="small",
        help="small (default): hidden 64, 2 layers, 4 prompts x 8 responses of 64 tokens, "
        "float32, minutes on a CPU; full: Qwen2.5-0.5B's shape, 32 prompts x 8 responses of "
        "256 tokens, bf16 autocast, for a CUDA GPU",
    )
    parser.add_argument(
        "--arms",
        nargs="+",
        choices=ARMS,
        default=list(ARMS),
        metavar="ARM",
        help=f"arms to run, in this order (default: all of {', '.join(ARMS)})",
    )
    parser.add_argument(
        "--steps", type=int, default=3, help="timed RL steps per child process (default 3)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="RL steps each child runs before timing, discarded (default 1)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="fresh child processes per arm, arms alternating between repeats (default 1)",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cuda", "cpu"),
        default="auto",
        help="auto (default): CUDA when visible, else the CPU (--mode full then refuses to "
        "run); cpu forces the CPU even on a CUDA machine (children see no GPU)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of each child (torch.set_num_threads and OMP_NUM_THREADS; "
        "OMP_WAIT_POLICY=PASSIVE), default 1; on a GPU machine more threads mostly speed up "
        "building the random --mode full policy",
    )
    parser.add_argument(
        "--json", metavar="PATH", help="also write the raw results (every run) to this JSON file"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="a config override for our arms, after the benchmark's own (repeatable), e.g. "
        "--set train.logits_mib=64",
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, spec = args.child
        print(json.dumps(child(what, Spec.from_json(spec))))
        return
    if min(args.steps, args.repeats, args.threads) < 1 or args.warmup < 0:
        parser.error("--steps, --repeats and --threads must be >= 1, --warmup >= 0")

    wall = time.perf_counter()
    work = MODES[args.mode]
    device = resolve_device(args.mode, args.device)
    runs: dict[str, list[dict]] = {arm: [] for arm in args.arms}
    with tempfile.TemporaryDirectory(prefix="gpu_vs_trl_") as tmp:
        spec = Spec(
            work,
            str(Path(tmp) / "policy"),
            str(Path(tmp) / "prompts.jsonl"),
            device,
            args.threads,
            args.warmup,
            args.steps,
            tuple(args.set),
        )
        print(f"saving the random policy ({args.mode}) to {spec.model_dir}", file=sys.stderr)
        params = spawn("make", spec)["params"]
        for repeat in range(args.repeats):
            order = args.arms if repeat % 2 == 0 else args.arms[::-1]
            for arm in order:
                print(f"{arm}, run {repeat + 1}", file=sys.stderr)
                started = time.perf_counter()
                runs[arm].append(spawn(arm, spec))
                print(f"  done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    summary = summarise(runs, work)
    print_report(summary, args, work, device, params)
    wall = time.perf_counter() - wall
    print(f"total wall time {wall:.0f} s")
    if args.json:
        raw = {
            "mode": args.mode,
            "device": device,
            "work": dataclasses.asdict(work),
            "vocab": VOCAB,
            "params": params,
            "threads": args.threads,
            "warmup": args.warmup,
            "steps": args.steps,
            "repeats": args.repeats,
            "summary": summary,
            "runs": runs,
            "wall_s": wall,
        }
        Path(args.json).write_text(json.dumps(raw, indent=2) + "\n")


if __name__ == "__main__":
    main()
