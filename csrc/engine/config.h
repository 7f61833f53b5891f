// The architecture of a ternary model as the engine runs it. Python builds it once from its
// ModelConfig (bitnet_backend/backends/native_config.py) and the bindings expose it as
// _engine.ModelConfig with these field names, which are config.json's.
#pragma once

#include <string>
#include <vector>

namespace bitnet {

// The feed-forward activation of a family: down(act(gate) * up).
enum class FfnActivation { Relu2, Silu };

// How a BitLinear applies its weight_scale: y = acc / (weight_scale * s_x) (linear_class
// "bitlinear") or y = acc / s_x * weight_scale ("autobitlinear" and float master weights).
enum class WeightScale { Divide, Multiply };

struct ModelConfig {
    int hidden_size = 0;
    int intermediate_size = 0;
    int num_hidden_layers = 0;
    int num_attention_heads = 0;
    int num_key_value_heads = 0;
    int head_dim = 0;
    int vocab_size = 0;
    float rms_norm_eps = 1e-5f;
    int max_position_embeddings = 4096;
    bool tie_word_embeddings = true;
    FfnActivation activation = FfnActivation::Relu2;
    WeightScale weight_scale = WeightScale::Divide;
    // Per-layer tensor names (after "model.layers.N.") of the RMSNorms before o_proj and
    // down_proj; empty when the family has no such sub-norm.
    std::string attn_sub_norm;
    std::string ffn_sub_norm;
    // Tensor name (after "<linear>.") of the RMSNorm weight every BitLinear applies to its
    // input before quantizing it (quantization_config use_rms_norm); empty when none.
    std::string linear_norm;
    float linear_norm_eps = 1e-6f;
    // RoPE inverse frequencies, head_dim / 2 of them, with any rope scaling already applied
    // (computed once at load, in float32 as transformers computes them).
    std::vector<float> rope_inv_freq;

    // Load choices (keyword arguments of the bound Model, not part of the architecture).
    // Head kind stored in a converted checkpoint ("" when the linears are in HF format).
    std::string prepacked_head;
    // Ternary layout: false = I2_R16 (2 bits per weight), true = I1_R16 (~1.6 bits).
    bool base3_layout = false;
    // The tensors are read-only file mappings whose pages may be dropped after repacking.
    bool release_source_pages = false;

    int q_dim() const { return num_attention_heads * head_dim; }
    int kv_dim() const { return num_key_value_heads * head_dim; }
    bool scale_divides() const { return weight_scale == WeightScale::Divide; }
};

// Throws std::invalid_argument naming the first field that cannot describe a model.
void check_config(const ModelConfig& c);

}  // namespace bitnet
