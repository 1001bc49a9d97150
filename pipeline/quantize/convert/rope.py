"""Rotary position settings as llama.cpp reads them: the base frequency and the scaling types the bundled
llama.cpp implements (linear, YaRN, Llama 3's frequency factors). Anything else is refused naming the field.

transformers 5 keeps them in `rope_parameters` ({rope_type, rope_theta, factor, ...}); older folders in
`rope_scaling` beside a top-level `rope_theta`. Both are read.
"""

from __future__ import annotations

import math
from typing import Any

import gguf
import numpy as np

from pipeline.quantize.convert.errors import ConversionError

# YaRN settings llama.cpp computes the way transformers does (the rest, e.g. DeepSeek's mscale, it does not).
YARN_KEYS = {"rope_type", "type", "rope_theta", "factor", "original_max_position_embeddings", "beta_fast",
             "beta_slow", "attention_factor", "truncate"}
LONGROPE_KEYS = {"rope_type", "type", "rope_theta", "factor", "original_max_position_embeddings", "short_factor",
                 "long_factor", "attention_factor"}
YARN_BETAS = {"beta_fast": 32, "beta_slow": 1}  # transformers' and llama.cpp's defaults
LLAMA3_KEYS = {"rope_type", "type", "rope_theta", "factor", "original_max_position_embeddings", "low_freq_factor",
               "high_freq_factor"}


def rope_field(config: dict[str, Any]) -> str:
    """The config key that holds the scaling settings: the one that names a scaling type, if either does."""
    for key in ("rope_parameters", "rope_scaling"):
        settings = config.get(key) or {}
        if (settings.get("rope_type") or settings.get("type")) not in (None, "default"):
            return key
    return "rope_parameters" if config.get("rope_parameters") else "rope_scaling"


def rope_settings(config: dict[str, Any]) -> dict[str, Any]:
    return dict(config.get(rope_field(config)) or {})


def rope_kind(config: dict[str, Any]) -> str | None:
    """'linear', 'yarn', 'llama3', another transformers name, or None for plain rotary positions."""
    settings = rope_settings(config)
    kind = settings.get("rope_type") or settings.get("type")
    return None if kind in (None, "default") else kind


def rope_theta(config: dict[str, Any]) -> float:
    return float(rope_settings(config).get("rope_theta") or config.get("rope_theta", 10000.0))


def original_context(config: dict[str, Any]) -> int:
    """The pre-training context that YaRN and Llama 3 scaling start from (transformers' default: the model's)."""
    return int(rope_settings(config).get("original_max_position_embeddings")
               or config.get("original_max_position_embeddings") or config["max_position_embeddings"])


def scaling_factor(config: dict[str, Any]) -> float:
    """The scaling factor; for YaRN without one, transformers takes max / original context."""
    factor = rope_settings(config).get("factor")
    return float(factor) if factor is not None else config["max_position_embeddings"] / original_context(config)


def check_rope(config: dict[str, Any], where: str, allowed: tuple[str, ...], arch: str,
               partial_rotary: bool = False) -> None:
    """Refuse a scaling type this architecture's llama.cpp graph does not compute as transformers does."""
    kind, field, settings = rope_kind(config), rope_field(config), rope_settings(config)
    if not partial_rotary and settings.get("partial_rotary_factor", 1.0) != 1.0:
        raise ConversionError(f"{where}: {field}.partial_rotary_factor={settings['partial_rotary_factor']!r} is not "
                              f"supported: llama.cpp's {arch} graph rotates the whole head")
    if kind is None:
        return
    if kind not in allowed:
        supported = ", ".join(allowed) if allowed else "none"
        raise ConversionError(f"{where}: {field}: rope scaling {kind!r} is not supported for {arch} "
                              f"(llama.cpp computes: {supported})")
    known = {"yarn": YARN_KEYS, "llama3": LLAMA3_KEYS, "longrope": LONGROPE_KEYS}.get(
        kind, {"rope_type", "type", "rope_theta", "factor"})
    if extra := sorted(set(settings) - known - {"partial_rotary_factor"}):
        raise ConversionError(f"{where}: {field}.{extra[0]}={settings[extra[0]]!r} is not supported: llama.cpp's "
                              f"{kind} scaling has no such setting")
    for key, default in YARN_BETAS.items():
        if kind == "yarn" and settings.get(key) not in (None, default):
            raise ConversionError(f"{where}: {field}.{key}={settings[key]!r} is not supported: the bundled llama.cpp "
                                  f"does not read YaRN's betas from a file and always uses {default}")
    if kind == "yarn" and settings.get("truncate") is False:
        raise ConversionError(f"{where}: {field}.truncate=False is not supported: llama.cpp rounds YaRN's "
                              "correction range to whole dimensions")
    if scaling_factor(config) < 1:
        raise ConversionError(f"{where}: {field}.factor={settings.get('factor')!r} is not supported: "
                              f"{kind} scaling here needs a factor >= 1")


def yarn_mscale(factor: float) -> float:
    """YaRN's attention temperature, 0.1 ln(s) + 1: transformers' default and what llama.cpp applies itself."""
    return 1.0 if factor <= 1 else 0.1 * math.log(factor) + 1.0


def add_rope(w: gguf.GGUFWriter, config: dict[str, Any]) -> None:
    """rope.freq_base and, for linear and YaRN, the scaling keys (Llama 3's goes into a tensor instead)."""
    w.add_rope_freq_base(rope_theta(config))
    settings, kind = rope_settings(config), rope_kind(config)
    if kind == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(scaling_factor(config))
    elif kind == "yarn":
        factor = scaling_factor(config)
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(factor)
        w.add_rope_scaling_orig_ctx_len(original_context(config))
        if settings.get("attention_factor") is not None:
            # llama.cpp multiplies its own 0.1 ln(s) + 1 by rope.scaling.attn_factor; transformers uses the given
            # value instead of that default.
            w.add_rope_scaling_attn_factors(float(settings["attention_factor"]) / yarn_mscale(factor))


def llama3_frequency_factors(config: dict[str, Any], head_dim: int) -> np.ndarray:
    """Llama 3.1's per-frequency divisors (llama.cpp's rope_freqs tensor): high frequencies (wavelength under
    original_context / high_freq_factor) keep theirs, low ones (over original_context / low_freq_factor) are
    divided by `factor`, and those between are blended smoothly, as transformers' `_compute_llama3_parameters`."""
    settings = rope_settings(config)
    factor = scaling_factor(config)
    low, high = float(settings["low_freq_factor"]), float(settings["high_freq_factor"])
    old_context = float(original_context(config))
    freqs = 1.0 / (rope_theta(config) ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    wavelen = 2 * math.pi / freqs
    smooth = np.clip((old_context / wavelen - low) / (high - low), 0.0, 1.0)
    divisors = 1.0 / ((1 - smooth) / factor + smooth)
    divisors[wavelen < old_context / high] = 1.0
    divisors[wavelen > old_context / low] = factor
    return divisors.astype(np.float32)
