#include "config.h"

#include <cmath>
#include <stdexcept>

namespace bitnet {
namespace {

void require(bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument("ModelConfig." + what);
}

}  // namespace

// The struct can be filled field by field from Python, so nothing about it is assumed.
void check_config(const ModelConfig& c) {
    require(c.hidden_size > 0, "hidden_size must be positive");
    require(c.intermediate_size > 0, "intermediate_size must be positive");
    require(c.num_hidden_layers > 0, "num_hidden_layers must be positive");
    require(c.num_attention_heads > 0, "num_attention_heads must be positive");
    require(c.num_key_value_heads > 0 && c.num_attention_heads % c.num_key_value_heads == 0,
            "num_key_value_heads must divide num_attention_heads");
    require(c.head_dim > 0 && c.head_dim % 2 == 0, "head_dim must be a positive even number");
    require(c.vocab_size > 0, "vocab_size must be positive");
    require(c.max_position_embeddings > 0, "max_position_embeddings must be positive");
    require(std::isfinite(c.rms_norm_eps) && c.rms_norm_eps > 0,
            "rms_norm_eps must be a positive number");
    require(std::isfinite(c.linear_norm_eps) && c.linear_norm_eps > 0,
            "linear_norm_eps must be a positive number");
    require(static_cast<int>(c.rope_inv_freq.size()) == c.head_dim / 2,
            "rope_inv_freq must hold head_dim / 2 values");
    for (float f : c.rope_inv_freq) {
        require(std::isfinite(f) && f > 0, "rope_inv_freq values must be positive numbers");
    }
}

}  // namespace bitnet
