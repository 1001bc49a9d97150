"""Real vocabularies through the converter: llama.cpp tokenizes mixed text exactly as each family's reference
tokenizer does, for every byte-level pre-tokenizer the converter names (llama-bpe, dbrx, qwen2, gpt-4o, smollm),
SentencePiece from tokenizer.model and from tokenizer.json; and the
runtime renders a chat in the model's own format with the template written into the file."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import gguf
import llama_cpp
import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    Olmo2Config,
    Phi3Config,
    PreTrainedTokenizerBase,
    Qwen2Config,
    Qwen3Config,
    SmolLM3Config,
)

from pipeline.quantize.convert import ConversionError, convert
from runtime.model import GPT4All
from tests.quantize.real_vocab import FAMILIES, build_tokenizer

# Prose with an em dash (Llama 3.0 mis-tokenized without its pre-tokenizer), contractions, code with tabs and
# runs of spaces and newlines, digit runs, accents (NFC), CJK, Korean, emoji with a skin-tone modifier.
MIXED = ("The quick brown fox — naïve café, déjà vu! It's done; they'll see. 2026: 1234567 + 89 = 1234656.\n\n"
         "    def area(r):\n\treturn 3.14159 * r ** 2  # circle\n\n\n"
         "日本語のテキストと中文文本。한국어 문장. Ünïcödé ØÆÅ ß. 🤖🚀👍🏽 \u00a0   end   \r\n  trailing   ")
TINY = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
            max_position_embeddings=128)

# pre-tokenizer -> (HF config of a family that uses it, its real vocabulary)
CASES: dict[str, tuple[str, Callable[[int], object]]] = {
    "llama-3.2": ("llama-bpe", lambda n: LlamaConfig(vocab_size=n, **TINY, tie_word_embeddings=True)),
    "smollm3": ("llama-bpe", lambda n: SmolLM3Config(vocab_size=n, **TINY, pad_token_id=0, bos_token_id=1,
                                                     eos_token_id=2)),
    "olmo2": ("dbrx", lambda n: Olmo2Config(vocab_size=n, **TINY, pad_token_id=0, bos_token_id=None, eos_token_id=2)),
    "qwen2.5": ("qwen2", lambda n: Qwen2Config(vocab_size=n + 267, **TINY)),  # padded like Qwen's 151,936
    "qwen3": ("qwen2", lambda n: Qwen3Config(vocab_size=n, **TINY, head_dim=16)),
    "smollm2": ("smollm", lambda n: LlamaConfig(vocab_size=n, **TINY)),  # the bundled model's own tokenizer
    "phi4-mini": ("gpt-4o", lambda n: Phi3Config(vocab_size=n + 45, **TINY, tie_word_embeddings=True)),  # o200k
}


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory: pytest.TempPathFactory,
               bundled_hf: Path) -> dict[str, tuple[Path, PreTrainedTokenizerBase]]:
    """Each family's tokenizer rebuilt from quicktok, checked against quicktok's own ids before it is used; and
    the bundled SmolLM2's as it ships."""
    import quicktok

    built = {"smollm": (bundled_hf, AutoTokenizer.from_pretrained(bundled_hf))}
    for name, family in FAMILIES.items():
        folder = tmp_path_factory.mktemp(name)
        tokenizer = build_tokenizer(name, folder)
        assert tokenizer(MIXED, add_special_tokens=False)["input_ids"] == \
            quicktok.get_encoding(family.encoding).encode_ordinary(MIXED)
        built[name] = folder, tokenizer
    return built


def converted(case: str, tokenizers: dict, tmp_path: Path) -> tuple[Path, PreTrainedTokenizerBase]:
    pre, make_config = CASES[case]
    folder, tokenizer = tokenizers[pre]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(make_config(len(tokenizer)))
    model.save_pretrained(tmp_path / "hf")
    tokenizer.save_pretrained(tmp_path / "hf")
    return convert(tmp_path / "hf", tmp_path / f"{case}.gguf", "f16"), tokenizer


@pytest.mark.parametrize("case", list(CASES))
def test_llama_cpp_tokenizes_like_the_reference_tokenizer(case: str, tokenizers: dict, tmp_path: Path) -> None:
    path, tokenizer = converted(case, tokenizers, tmp_path)
    fields = gguf.GGUFReader(path).fields
    assert fields["tokenizer.ggml.pre"].contents() == CASES[case][0]
    vocab = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    reference = tokenizer(MIXED)["input_ids"]  # with BOS exactly where the reference adds one
    assert vocab.tokenize(MIXED.encode(), add_bos=True, special=False) == reference
    assert vocab.detokenize(reference, special=False).decode() == MIXED
    eos = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    assert vocab.tokenize(tokenizer.eos_token.encode(), add_bos=False, special=True) == [eos]
    assert vocab.token_eos() == eos


@pytest.mark.parametrize("case", ["llama-3.2", "qwen3", "olmo2"])
def test_the_runtime_chats_in_the_models_own_format(case: str, tokenizers: dict, tmp_path: Path) -> None:
    """The file's chat template, rendered by the runtime, gives the tokens transformers' apply_chat_template
    gives (Llama 3's template writes its own BOS: it must not be doubled)."""
    path, tokenizer = converted(case, tokenizers, tmp_path)
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a river — one."}]
    expected = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=False)
    model = GPT4All(str(path), n_threads=2, n_ctx=128)
    assert model.chat_tokens(messages) == list(expected)


def test_an_unrecognised_byte_level_pre_tokenizer_is_refused(tokenizers: dict, tmp_path: Path) -> None:
    """A split regex llama.cpp is not known to reproduce is refused naming tokenizer.json, not written as
    'default' (which tokenizes Llama 3 text differently from its 5th token on)."""
    import json

    folder, tokenizer = tokenizers["llama-bpe"]
    model = AutoModelForCausalLM.from_config(LlamaConfig(vocab_size=len(tokenizer), **TINY))
    model.save_pretrained(tmp_path / "hf")
    tokenizer.save_pretrained(tmp_path / "hf")
    data = json.loads((tmp_path / "hf" / "tokenizer.json").read_text())
    data["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\p{L}+|\p{N}{1,4}|\s+|."
    (tmp_path / "hf" / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(ConversionError, match=r"tokenizer\.json: pre_tokenizer .* is not one llama\.cpp"):
        convert(tmp_path / "hf", tmp_path / "out.gguf", "f16")
    assert not (tmp_path / "out.gguf").exists()


@pytest.fixture(scope="module")
def sentencepiece_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real SentencePiece BPE model in the LLaMA-2 / Mistral / Phi-3 style (byte fallback, a dummy prefix, a
    user-defined marker), trained here on Alpaca outputs, with the HF tokenizer transformers builds from it."""
    import gzip
    import json as jsonlib

    import sentencepiece

    folder = tmp_path_factory.mktemp("spm")
    rows = jsonlib.load(gzip.open(Path(__file__).resolve().parents[2] / "data/instruct/alpaca_5000_subset.json.gz"))
    (folder / "text.txt").write_text("\n".join(r["output"] for r in rows[:3000]))
    sentencepiece.SentencePieceTrainer.train(
        input=str(folder / "text.txt"), model_prefix=str(folder / "tokenizer"), vocab_size=3000, model_type="bpe",
        byte_fallback=True, character_coverage=0.9995, user_defined_symbols=["<|user|>"], unk_id=0, bos_id=1,
        eos_id=2, pad_id=-1, normalization_rule_name="identity", remove_extra_whitespaces=False, split_digits=True,
        minloglevel=2)  # LLaMA's settings: text as written, digits one by one
    (folder / "text.txt").unlink()
    (folder / "tokenizer.vocab").unlink()
    (folder / "tokenizer_config.json").write_text(jsonlib.dumps({  # as LLaMA-2's tokenizer_config.json
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "add_bos_token": True, "add_eos_token": False}))
    AutoTokenizer.from_pretrained(folder).save_pretrained(folder)  # transformers' tokenizer.json beside the proto
    return folder


@pytest.mark.parametrize("source", ["tokenizer.model", "tokenizer.json"])
def test_sentencepiece_vocabulary_tokenizes_like_transformers(source: str, sentencepiece_dir: Path,
                                                              tmp_path: Path) -> None:
    """From the proto (its scores and piece types) or, without it, from tokenizer.json (merge ranks as scores):
    the same ids as transformers, byte fallback for what the 3,000 pieces lack (CJK, emoji), BOS added."""
    folder = tmp_path / "hf"
    shutil.copytree(sentencepiece_dir, folder)
    if source == "tokenizer.json":
        (folder / "tokenizer.model").unlink()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(LlamaConfig(vocab_size=len(tokenizer), **TINY)).save_pretrained(folder)
    path = convert(folder, tmp_path / "spm.gguf", "f16")
    assert gguf.GGUFReader(path).fields["tokenizer.ggml.model"].contents() == "llama"
    vocab = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    reference = tokenizer(MIXED)["input_ids"]
    assert vocab.tokenize(MIXED.encode(), add_bos=True, special=False) == reference
    assert tokenizer.convert_tokens_to_ids("<0x0A>") in reference  # "\n" came through byte fallback
    # A user-defined piece is one token. (Text right after one differs: llama.cpp starts a new fragment with its
    # own space prefix, as sentencepiece's legacy mode does; transformers does not.)
    marker = tokenizer.convert_tokens_to_ids("<|user|>")
    assert vocab.tokenize(b"<|user|>", add_bos=False, special=False)[-1] == marker == tokenizer("<|user|>")["input_ids"][-1]
