import pytest
import torch

from entropy_rl.config import ModelConfig
from entropy_rl.training.models import (
    build_model,
    build_tokenizer,
    count_parameters,
    load_pretrained,
    save_pretrained_atomic,
)

ALPHABET = "0123456789+=,"
TINY = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)


def test_tokenizer_ids_and_round_trip():
    tok = build_tokenizer(ALPHABET)
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert (tok.pad_token, tok.bos_token, tok.eos_token) == ("<pad>", "<bos>", "<eos>")
    assert len(tok) == 3 + len(ALPHABET)
    assert [tok.convert_tokens_to_ids(c) for c in ALPHABET] == list(range(3, 16))
    ids = tok.encode("23+45=", add_special_tokens=False)
    assert ids == [5, 6, 13, 7, 8, 14]
    assert tok.decode(ids) == "23+45="
    assert tok.encode("23+45=") == [1, *ids]  # special tokens: a leading <bos>
    with_specials = [1, *tok.encode("068,135", add_special_tokens=False), 2, 0, 0]
    assert tok.decode(with_specials, skip_special_tokens=True) == "068,135"
    assert tok.decode(with_specials) == "<bos>068,135<eos><pad><pad>"


@pytest.mark.parametrize("alphabet", ["0123+0", "01 2", "ab\tc", ""])
def test_bad_alphabet(alphabet):
    with pytest.raises(ValueError):
        build_tokenizer(alphabet)


def test_default_model_size_and_init():
    config = ModelConfig()
    model = build_model(config, vocab_size=16, max_positions=32, seed=0)
    assert 500_000 <= count_parameters(model) <= 5_000_000
    assert model.lm_head.weight is model.model.embed_tokens.weight
    embedding = model.model.embed_tokens.weight[1:]  # row 0 (<pad>) is zero
    assert embedding.std().item() == pytest.approx(config.init_std, rel=0.1)
    assert torch.all(model.model.embed_tokens.weight[0] == 0)
    linear = model.model.layers[0].mlp.down_proj.weight
    assert linear.std().item() == pytest.approx(config.init_std, rel=0.05)
    assert next(model.parameters()).dtype == torch.float32


def test_model_seeded_and_global_rng_untouched():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = build_model(TINY, vocab_size=16, max_positions=32, seed=7)
    assert torch.equal(torch.rand(3), expected)
    b = build_model(TINY, vocab_size=16, max_positions=32, seed=7)
    c = build_model(TINY, vocab_size=16, max_positions=32, seed=8)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.model.embed_tokens.weight, c.model.embed_tokens.weight)


def test_save_load_round_trip(tmp_path):
    tok = build_tokenizer(ALPHABET)
    model = build_model(TINY, vocab_size=len(tok), max_positions=32, seed=0).eval()
    target = tmp_path / "base"
    save_pretrained_atomic(model, tok, target, extra_files={"note.txt": "old"})
    save_pretrained_atomic(model, tok, target)  # replaces the existing directory
    assert not (target / "note.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["base"]  # no temporary folders left
    loaded, loaded_tok = load_pretrained(target)
    ids = torch.tensor([tok.encode("23+45+67=068,135")])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    assert loaded_tok.encode("23+45+67=") == tok.encode("23+45+67=")
    assert loaded_tok.eos_token_id == 2 and loaded_tok.pad_token_id == 0


def test_load_missing_or_not_a_model(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError, match="nowhere"):
        load_pretrained(missing)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "readme.txt").write_text("not a model")
    with pytest.raises(ValueError, match="junk") as info:
        load_pretrained(junk)
    assert "\n" not in str(info.value)
