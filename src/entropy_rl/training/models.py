"""The small default policy and its character tokenizer, built locally (nothing downloaded).

The model is a Qwen2 decoder from `transformers`, so everything downstream (generation,
saving, loading, vLLM) treats it like any other local Hugging Face checkpoint.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)
from transformers.utils import logging as hf_logging

from entropy_rl.config import ModelConfig
from entropy_rl.errors import os_errors_of

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SPECIAL_TOKENS = (PAD, BOS, EOS)
"""Special tokens, in id order: pad=0, bos=1, eos=2; the alphabet's characters follow."""


def _check_alphabet(alphabet: str) -> None:
    if not alphabet:
        raise ValueError("tokenizer alphabet is empty")
    repeated = sorted({c for c in alphabet if alphabet.count(c) > 1})
    if repeated:
        raise ValueError(f"tokenizer alphabet repeats characters: {''.join(repeated)!r}")
    if any(c.isspace() for c in alphabet):
        raise ValueError(f"tokenizer alphabet must not contain whitespace: {alphabet!r}")


def build_tokenizer(alphabet: str) -> PreTrainedTokenizerFast:
    """A character-level tokenizer: <pad>=0, <bos>=1, <eos>=2, then `alphabet` in order.

    Every character is one token; decoding joins tokens without spaces, so
    `decode(encode(s, add_special_tokens=False))` is `s` for any string over the alphabet.
    With special tokens (the default) an encoding starts with <bos>, as the model was trained,
    so `tokenizer(prompts)` and engines such as vLLM feed prompts the way pretraining did.
    There is no unknown token: encoding a character outside the alphabet raises. Padding is
    on the left (decoder-only generation).
    """
    _check_alphabet(alphabet)
    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *alphabet))}
    core = Tokenizer(models.WordLevel(vocab))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        padding_side="left",
    )


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Silence transformers' per-call progress bars (saving, loading), then restore them."""
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _qwen2_config(config: ModelConfig, vocab_size: int, max_positions: int) -> Qwen2Config:
    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        initializer_range=config.init_std,
        tie_word_embeddings=True,
        max_position_embeddings=max_positions,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        use_cache=True,
    )


def build_model(
    config: ModelConfig, vocab_size: int, max_positions: int, seed: int
) -> Qwen2ForCausalLM:
    """A freshly initialised Qwen2 causal LM; the same `seed` gives the same weights.

    All weights (tied embedding included) are drawn from N(0, init_std); biases are zero,
    norms one, and the embedding row of <pad> is zero. The global RNG is left untouched.
    """
    qwen_config = _qwen2_config(config, vocab_size, max_positions)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(qwen_config)
    return model.to(getattr(torch, config.dtype))


def save_pretrained_atomic(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    directory: str | Path,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Save model (safetensors), tokenizer and `extra_files` (name -> text) to `directory`.

    Everything is written to a temporary folder beside `directory` and renamed into place,
    so readers see the old directory or the complete new one, never a partial one.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f".{directory.name}.{secrets.token_hex(4)}.tmp")
    try:
        with _no_progress_bars(), os_errors_of(tmp):
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        for name, text in (extra_files or {}).items():
            with os_errors_of(tmp / name):
                (tmp / name).write_text(text)
        _replace_dir(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def _replace_dir(src: Path, dst: Path) -> None:
    """Move folder `src` to `dst`, replacing an existing `dst` (moved aside, then deleted)."""
    old = dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.old")
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def load_pretrained(
    directory: str | Path, dtype: str = "auto"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer from a local folder (never from the Hub).

    `dtype`: "auto" keeps the saved dtype, else a torch dtype name ("float32"). A tokenizer
    without a pad token pads with eos. Raises ValueError naming the path if it is missing or
    is not a saved model and tokenizer (`check_saved_model`).
    """
    directory = Path(directory)
    check_saved_model(directory)
    try:
        with _no_progress_bars():
            model = AutoModelForCausalLM.from_pretrained(
                directory, local_files_only=True, dtype=dtype
            )
            tokenizer = _tokenizer_class(directory).from_pretrained(
                directory, local_files_only=True
            )
    except (OSError, ValueError, KeyError, TypeError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{directory} is not a saved model and tokenizer: {first_line}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


TOKENIZER_FILES = (
    "tokenizer_config.json",
    "tokenizer.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
)
"""A saved tokenizer writes one of these at least. Without any, transformers makes an empty
tokenizer of the model's family (one token) rather than failing, and a run dies later."""


def check_saved_model(directory: Path) -> None:
    """ValueError, in one line naming `directory`, unless it holds a saved model
    (config.json) and its tokenizer (one of `TOKENIZER_FILES`)."""
    if not directory.is_dir():
        raise ValueError(f"no model directory at {directory}")
    if not (directory / "config.json").is_file():
        raise ValueError(f"{directory} is not a saved model (no config.json)")
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        raise ValueError(
            f"{directory} holds a model but no tokenizer (none of {', '.join(TOKENIZER_FILES)}):"
            f" save it there with tokenizer.save_pretrained({str(directory)!r})"
        )


GENERIC_TOKENIZER_CLASSES = ("PreTrainedTokenizerFast", "TokenizersBackend")
"""Saved tokenizer classes that mean "a plain `tokenizers` tokenizer" (ours)."""


def _tokenizer_class(directory: Path) -> type:
    """PreTrainedTokenizerFast for a tokenizer saved as one (ours: AutoTokenizer would pick the
    model family's class, which adds its own special tokens); AutoTokenizer otherwise."""
    try:
        saved = json.loads((directory / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return AutoTokenizer
    generic = saved.get("tokenizer_class") in GENERIC_TOKENIZER_CLASSES
    return PreTrainedTokenizerFast if generic else AutoTokenizer


def count_parameters(model: torch.nn.Module) -> int:
    """Number of distinct parameters (a tied embedding counts once)."""
    return sum(p.numel() for p in model.parameters())
