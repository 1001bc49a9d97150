"""A BERT sentence encoder (all-MiniLM-L6-v2: what gpt4all's Embed4All loads) as llama.cpp's `bert`:
bidirectional attention and the pooling of its sentence-transformers config."""

from __future__ import annotations

import json
from collections.abc import Iterator

import gguf
import numpy as np

from pipeline.quantize.convert.base import Converter, register
from pipeline.quantize.convert.errors import ConversionError


@register("BertModel")
class Bert(Converter):
    arch = gguf.MODEL_ARCH.BERT
    POOLING = {"pooling_mode_mean_tokens": gguf.PoolingType.MEAN, "pooling_mode_cls_token": gguf.PoolingType.CLS}

    def pooling(self) -> gguf.PoolingType:
        path = self.dir / "1_Pooling" / "config.json"
        if not path.is_file():
            return gguf.PoolingType.MEAN
        modes = [mode for mode, on in json.loads(path.read_text()).items() if on is True]
        if len(modes) != 1 or modes[0] not in self.POOLING:
            raise ConversionError(f"{path}: pooling {modes} has no llama.cpp equivalent (mean or cls token)")
        return self.POOLING[modes[0]]

    def set_hparams(self, w: gguf.GGUFWriter) -> None:
        self.add_shape(w, self.hparam("max_position_embeddings"))
        w.add_layer_norm_eps(self.hparam("layer_norm_eps", default=1e-12))
        w.add_causal_attention(False)
        w.add_pooling_type(self.pooling())
        w.add_token_type_count(self.hparam("type_vocab_size", default=2))

    def add_tensor(self, w: gguf.GGUFWriter, name: str, data: np.ndarray) -> None:
        if name.startswith("token_types"):  # llama.cpp adds a row of it to F32 states as it is: keep it F32
            w.add_tensor(name, data.astype(np.float32))
        else:
            super().add_tensor(w, name, data)

    def map_tensor(self, name: str, data: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
        if name.startswith("pooler.") or name.endswith("position_ids"):
            return  # llama.cpp pools itself; position ids are implicit
        yield from super().map_tensor(name.removeprefix("bert."), data)
