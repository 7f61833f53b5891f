// Float operations of the forward pass, written to follow transformers' float32 math.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "config.h"

// The float loops of the forward are compiled for several x86 ISAs at once and the best is
// bound at load time (GCC target_clones + ifunc), so the portable core still runs them with
// wide vectors. Results do not depend on the clone: every loop keeps its order of additions.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define BITNET_FLOAT_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define BITNET_FLOAT_CLONES
#endif

namespace bitnet {

// BitNetRMSNorm: y = w * (x * rsqrt(mean(x^2) + eps)), in float32.
void rms_norm(const float* x, const float* weight, int n, float eps, float* y);

// Llama RoPE (rotate_half) on `n_heads` heads of `head_dim` at position `pos`, in place.
void apply_rope(float* x, int n_heads, int head_dim, const float* cos, const float* sin);

// cos / sin of pos * inv_freq[i] for the positions in [first_pos, end_pos), into rows pos of
// [end_pos][half] tables.
void rope_tables(const float* inv_freq, int half, int first_pos, int end_pos, float* cos_out,
                 float* sin_out);

// relu(g)^2 * u.
void relu2_gate(const float* gate, const float* up, int n, float* out);

// silu(g) * u, silu(g) = g / (1 + e^-g) as torch evaluates it.
void silu_gate(const float* gate, const float* up, int n, float* out);

// The gated feed-forward product of a family: act(g) * u.
void ffn_activation(FfnActivation act, const float* gate, const float* up, int n, float* out);

// A family's optional sub-norm: rms_norm(x) into `scratch` when `weight` is non-empty, else x
// itself. Returns the normed row.
const float* optional_rms_norm(const float* x, const std::vector<float>& weight, int n, float eps,
                               float* scratch);

// scores[0..n) = softmax(scores[0..n)), in place.
void softmax_inplace(float* scores, int n);

float dot_f32(const float* a, const float* b, int n);
void add_inplace(float* y, const float* x, int n);
// BitLinear output rows [r0, r1): acc / (scale * s_x) when `divide` (torch's bitlinear order
// of operations), else acc / s_x * scale.
void rescale(const int32_t* acc, const float* scale, float s_x, bool divide, int r0, int r1,
             float* y);

}  // namespace bitnet
