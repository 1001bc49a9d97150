"""HF folder -> GGUF (F32/F16/BF16) on the PyPI `gguf` package: the registry and shared writer in `base`,
tokenizers in `vocab`, rope settings in `rope`, one module per model family (as llama.cpp keeps one class
per model). A new family is one new module imported here.

| HF architecture | GGUF | module |
|---|---|---|
| LlamaForCausalLM, MistralForCausalLM (LLaMA 1/2, Llama 3.x) | llama | llama |
| SmolLM3ForCausalLM | smollm3 | llama |
| Qwen2ForCausalLM, Qwen3ForCausalLM | qwen2, qwen3 | qwen |
| Olmo2ForCausalLM | olmo2 | olmo |
| GPTJForCausalLM | phi2 | gptj |
| MptForCausalLM | mpt | mpt |
| FalconForCausalLM | falcon | falcon |
| BertModel (sentence encoders) | bert | bert |
"""

from pipeline.quantize.convert import bert, falcon, gptj, llama, mpt, olmo, qwen  # noqa: F401 - registration
from pipeline.quantize.convert.base import ARCHITECTURES, OUTTYPES, Converter, convert, read_config, register
from pipeline.quantize.convert.vocab import ConversionError, pre_tokenizer

__all__ = ["ARCHITECTURES", "OUTTYPES", "ConversionError", "Converter", "convert", "pre_tokenizer", "read_config",
           "register"]
