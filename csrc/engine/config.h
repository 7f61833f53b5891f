// Hyper-parameters of a ternary model (from config.json, validated in Python).
#pragma once

#include <string>

namespace bitnet {

// The feed-forward activation of a family: down(act(gate) * up).
enum class FfnActivation { Relu2, Silu };

struct ModelConfig {
    int hidden_size = 0;
    int intermediate_size = 0;
    int num_layers = 0;
    int num_heads = 0;
    int num_kv_heads = 0;
    int head_dim = 0;
    int vocab_size = 0;
    float rms_norm_eps = 1e-5f;
    float rope_theta = 500000.0f;
    int max_position_embeddings = 4096;
    bool tie_word_embeddings = true;
    // true: y = acc / (weight_scale * s_x) ("bitlinear"); false: y = acc / s_x * scale.
    bool scale_divides = true;
    FfnActivation activation = FfnActivation::Relu2;
    // Per-layer tensor names (after "model.layers.N.") of the RMSNorms before o_proj and
    // down_proj; empty when the family has no such sub-norm.
    std::string attn_sub_norm = "self_attn.attn_sub_norm.weight";
    std::string ffn_sub_norm = "mlp.ffn_sub_norm.weight";
    // Head kind stored in a converted checkpoint ("" when the linears are in HF format).
    std::string prepacked_head;
    // Ternary layout: false = I2_R16 (2 bits per weight), true = I1_R16 (~1.6 bits).
    bool base3_layout = false;
    // The tensors are read-only file mappings whose pages may be dropped after repacking.
    bool release_source_pages = false;

    int q_dim() const { return num_heads * head_dim; }
    int kv_dim() const { return num_kv_heads * head_dim; }
};

}  // namespace bitnet
