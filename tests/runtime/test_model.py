"""The GPT4All API on the real bundled SmolLM2-135M-Instruct GGUF."""

from pathlib import Path

import pytest

from runtime.model import ContextOverflowError, GPT4All, ModelLoadError
from runtime.registry import RegistryError, bundled_entry

GREEDY = {"temp": 0.0}


def test_generate_streams_the_same_text_it_returns(model: GPT4All) -> None:
    text = model.generate("The capital of France is", max_tokens=12, **GREEDY)
    assert isinstance(text, str) and text.strip()
    pieces = list(model.generate("The capital of France is", max_tokens=12, streaming=True, **GREEDY))
    assert len(pieces) > 1
    assert "".join(pieces) == text
    assert model.stats.completion_tokens == 12 and model.stats.finish_reason == "length"


def test_callback_stops_generation(model: GPT4All) -> None:
    seen: list[tuple[int, str]] = []

    def stop_after_three(token_id: int, piece: str) -> bool:
        seen.append((token_id, piece))
        return len(seen) < 3

    text = model.generate("Count: one, two, three,", max_tokens=50, callback=stop_after_three, **GREEDY)
    assert len(seen) == 3 and model.stats.completion_tokens == 3
    assert text == "".join(piece for _, piece in seen)
    assert all(isinstance(token, int) for token, _ in seen)


def test_chat_session_uses_the_gguf_template_and_keeps_history(model: GPT4All) -> None:
    assert "<|im_start|>" in (model.chat_template or "")
    with model.chat_session(system_prompt="You are terse."):
        first = model.generate("What is the capital of France?", max_tokens=24, **GREEDY)
        turn1 = model.stats
        second = model.generate("And of Italy?", max_tokens=24, **GREEDY)
        turn2 = model.stats
        history = model.current_chat_session
    assert [m["role"] for m in history] == ["system", "user", "assistant", "user", "assistant"]
    assert history[2]["content"] == first and history[4]["content"] == second
    # KV reuse: turn 1 was closed ("<|im_end|>\n") when its reply ended, so turn 2 evaluates only its own text.
    assert turn2.reused_tokens == turn1.prompt_tokens + turn1.completion_tokens + 2
    new_text = "<|im_start|>user\nAnd of Italy?<|im_end|>\n<|im_start|>assistant\n"
    assert turn2.prefill_tokens == model.count_tokens(new_text)
    assert turn2.prefill_tokens + turn2.reused_tokens == turn2.prompt_tokens
    assert model.current_chat_session is None


def test_rendered_prompt_follows_a_given_template(model: GPT4All) -> None:
    template = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}[assistant] "
    rendered = model.render([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], template)
    assert rendered == "[system] S\n[user] U\n[assistant] "
    with model.chat_session(chat_template=template):
        model.generate("Hello", max_tokens=4, **GREEDY)
        assert model.stats.prompt_tokens == model.count_tokens("[user] Hello\n[assistant] ")


def test_reset_keeps_only_the_system_message(model: GPT4All) -> None:
    with model.chat_session(system_prompt="Sys"):
        model.generate("Hi", max_tokens=4, **GREEDY)
        model.reset_chat()
        assert model.current_chat_session == [{"role": "system", "content": "Sys"}]


def test_prompt_over_the_context_is_a_clear_error_and_history_is_untouched() -> None:
    small = GPT4All(n_ctx=64, n_threads=2)
    with pytest.raises(ContextOverflowError, match="context window is 64"):
        small.generate("word " * 200)
    with small.chat_session():
        with pytest.raises(ContextOverflowError):
            small.generate("word " * 200)
        assert small.current_chat_session == [{"role": "system", "content": ""}]


def test_bad_model_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="model file not found"):
        GPT4All(str(tmp_path / "missing.gguf"))
    text = tmp_path / "notes.gguf"
    text.write_text("hello, not a model")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        GPT4All(str(text))
    real = bundled_entry()
    assert real is not None and real.path is not None
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(real.path.read_bytes()[: 20_000_000])
    with pytest.raises(ModelLoadError, match="truncated"):
        GPT4All(str(truncated))
    with pytest.raises(RegistryError, match="unknown model 'no-such-model'; known models: SmolLM2-135M-Instruct"):
        GPT4All("no-such-model")


def test_model_path_folder_and_file_name(tmp_path: Path) -> None:
    real = bundled_entry()
    assert real is not None and real.path is not None
    (tmp_path / "mine.gguf").symlink_to(real.path)
    model = GPT4All("mine.gguf", model_path=tmp_path, n_threads=2)
    assert model.name == "mine" and model.path == tmp_path / "mine.gguf"
