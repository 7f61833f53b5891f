"""The engine's ModelConfig (``_engine.ModelConfig``), built from ours in one place.

Field names are the same on both sides; the string choices of the architecture table become
the engine's enums here, by the same names ("relu2" -> ``_engine.Activation.relu2``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import ModelConfig
from ..rope import rope_inv_freq


def native_config(engine: Any, config: ModelConfig) -> Any:
    """``engine.ModelConfig`` (``engine`` is the ``_engine`` module) describing ``config``."""
    arch = config.architecture
    native = engine.ModelConfig()
    for name in (
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "vocab_size",
        "rms_norm_eps",
        "max_position_embeddings",
        "tie_word_embeddings",
        "linear_norm_eps",
    ):
        setattr(native, name, getattr(config, name))
    native.activation = engine.Activation.__members__[arch.activation]
    native.weight_scale = engine.WeightScale.divide
    if not config.weight_scale_divides:
        native.weight_scale = engine.WeightScale.multiply
    native.attn_sub_norm = arch.attn_sub_norm or ""
    native.ffn_sub_norm = arch.ffn_sub_norm or ""
    native.linear_norm = arch.linear_norm or ""
    inv_freq = rope_inv_freq(config.rope_theta, config.head_dim, config.rope_scaling)
    native.rope_inv_freq = np.asarray(inv_freq, dtype=np.float32).tolist()
    return native
