"""HF folder -> GGUF (F32/F16/BF16) on the PyPI `gguf` package: the registry and shared writer in `base`,
tokenizers in `vocab` (byte-level BPE, WordPiece) and `spm` (SentencePiece), rope settings in `rope`, one module per model family (as llama.cpp keeps one class
per model). A new family is one new module imported here.

| HF architecture | GGUF | module |
|---|---|---|
| LlamaForCausalLM, MistralForCausalLM (LLaMA 1/2, Llama 3.x) | llama | llama |
| SmolLM3ForCausalLM | smollm3 | llama |
| Qwen2ForCausalLM, Qwen3ForCausalLM | qwen2, qwen3 | qwen |
| Olmo2ForCausalLM | olmo2 | olmo |
| Gemma2ForCausalLM, Gemma3ForCausalLM | gemma2, gemma3 | gemma |
| Phi3ForCausalLM (Phi-3, 3.5, Phi-4-mini) | phi3 | phi |
| GPTJForCausalLM | phi2 | gptj |
| MptForCausalLM | mpt | mpt |
| FalconForCausalLM | falcon | falcon |
| BertModel (sentence encoders) | bert | bert |
"""

from pipeline.quantize.convert import bert, falcon, gemma, gptj, llama, mpt, olmo, phi, qwen  # noqa: F401 - registration
from pipeline.quantize.convert.base import ARCHITECTURES, OUTTYPES, Converter, convert, read_config, register
from pipeline.quantize.convert.errors import ConversionError
from pipeline.quantize.convert.vocab import pre_tokenizer

__all__ = ["ARCHITECTURES", "OUTTYPES", "ConversionError", "Converter", "convert", "pre_tokenizer", "read_config",
           "register"]
