#include "ops.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

namespace bitnet {
namespace {

// PyTorch's CPU sum of a contiguous float row (ATen SumKernel: cascade sum over 8-lane
// vectors, 4-way ILP, lanes folded last). Activation quantization rounds x * 127 / max|x|,
// and bf16 weights make exact .5 ties common at the first layer: the RMSNorm variance must
// round exactly as in the reference, or a tie resolves the other way. Adds stay in this order
// (the build has no -ffast-math and no FP contraction).
constexpr int kLanes = 8;
using Lanes = std::array<float, kLanes>;

template <typename T>
void add_to(T& acc, const T& v) {
    if constexpr (std::is_same_v<T, float>) {
        acc += v;
    } else {
        for (int l = 0; l < kLanes; ++l) acc[l] += v[l];
    }
}

int ceil_log2(int64_t x) {
    int r = 0;
    while ((int64_t(1) << r) < x) ++r;
    return r;
}

// Sums `size` elements; elem(i) returns element i (a float or a Lanes vector).
template <typename T, typename Elem>
T cascade_row_sum(int64_t size, Elem elem) {
    constexpr int kIlp = 4, kLevels = 4;
    const int64_t rows = size / kIlp;
    T acc[kLevels][kIlp] = {};
    const int level_power = std::max(4, ceil_log2(rows) / kLevels);
    const int64_t level_step = int64_t(1) << level_power, level_mask = level_step - 1;
    int64_t i = 0;
    while (i + level_step <= rows) {
        for (int64_t j = 0; j < level_step; ++j, ++i) {
            for (int k = 0; k < kIlp; ++k) add_to(acc[0][k], elem(i * kIlp + k));
        }
        for (int j = 1; j < kLevels; ++j) {
            for (int k = 0; k < kIlp; ++k) {
                add_to(acc[j][k], acc[j - 1][k]);
                acc[j - 1][k] = T{};
            }
            if ((i & (level_mask << (j * level_power))) != 0) break;
        }
    }
    for (; i < rows; ++i) {
        for (int k = 0; k < kIlp; ++k) add_to(acc[0][k], elem(i * kIlp + k));
    }
    for (int j = 1; j < kLevels; ++j) {
        for (int k = 0; k < kIlp; ++k) add_to(acc[0][k], acc[j][k]);
    }
    for (int64_t r = rows * kIlp; r < size; ++r) add_to(acc[0][0], elem(r));
    for (int k = 1; k < kIlp; ++k) add_to(acc[0][0], acc[0][k]);
    return acc[0][0];
}

float reference_order_sum(const float* v, int n) {
    if (n < kLanes) return cascade_row_sum<float>(n, [&](int64_t i) { return v[i]; });
    const int n_vec = n / kLanes;
    const Lanes lanes = cascade_row_sum<Lanes>(n_vec, [&](int64_t i) {
        Lanes out;
        std::copy(v + i * kLanes, v + (i + 1) * kLanes, out.begin());
        return out;
    });
    float total = 0.0f;
    for (int k = n_vec * kLanes; k < n; ++k) total += v[k];
    for (int l = 0; l < kLanes; ++l) total += lanes[l];
    return total;
}

}  // namespace

BITNET_FLOAT_CLONES
void rms_norm(const float* x, const float* weight, int n, float eps, float* y) {
    // Squares go through y, which is overwritten below.
    for (int i = 0; i < n; ++i) y[i] = x[i] * x[i];
    const float variance = reference_order_sum(y, n) / static_cast<float>(n);
    const float inv = 1.0f / std::sqrt(variance + eps);
    for (int i = 0; i < n; ++i) y[i] = weight[i] * (x[i] * inv);
}

void rope_tables(const float* inv_freq, int half, int first_pos, int end_pos, float* cos_out,
                 float* sin_out) {
    for (int pos = first_pos; pos < end_pos; ++pos) {
        for (int i = 0; i < half; ++i) {
            const float angle = static_cast<float>(pos) * inv_freq[i];
            cos_out[static_cast<size_t>(pos) * half + i] = std::cos(angle);
            sin_out[static_cast<size_t>(pos) * half + i] = std::sin(angle);
        }
    }
}

BITNET_FLOAT_CLONES
void apply_rope(float* x, int n_heads, int head_dim, const float* cos, const float* sin) {
    const int half = head_dim / 2;
    for (int h = 0; h < n_heads; ++h) {
        float* v = x + h * head_dim;
        for (int i = 0; i < half; ++i) {
            const float a = v[i], b = v[i + half];
            v[i] = a * cos[i] + (-b) * sin[i];
            v[i + half] = b * cos[i] + a * sin[i];
        }
    }
}

BITNET_FLOAT_CLONES
void relu2_gate(const float* gate, const float* up, int n, float* out) {
    for (int i = 0; i < n; ++i) {
        const float r = std::max(gate[i], 0.0f);
        out[i] = (r * r) * up[i];
    }
}

void silu_gate(const float* gate, const float* up, int n, float* out) {
    for (int i = 0; i < n; ++i) {
        const float g = gate[i];
        out[i] = (g / (1.0f + std::exp(-g))) * up[i];
    }
}

void ffn_activation(FfnActivation act, const float* gate, const float* up, int n, float* out) {
    if (act == FfnActivation::Silu) {
        silu_gate(gate, up, n, out);
    } else {
        relu2_gate(gate, up, n, out);
    }
}

const float* optional_rms_norm(const float* x, const std::vector<float>& weight, int n, float eps,
                               float* scratch) {
    if (weight.empty()) return x;
    rms_norm(x, weight.data(), n, eps, scratch);
    return scratch;
}

// e^x for x <= 0 (softmax inputs after subtracting the max), within ~1 ulp of expf, in plain
// arithmetic so the loop vectorizes (glibc's expf is one scalar call per element, and the
// attention of a 512-token prompt makes ~80 M of them). Cody-Waite reduction + degree-6
// polynomial; inputs below -87.3 give ~1e-38 instead of 0, far below float noise in a sum.
inline float exp_nonpositive(float x) {
    x = std::max(x, -87.3f);
    const float n = std::nearbyint(x * 1.44269504088896341f);
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

BITNET_FLOAT_CLONES
void softmax_inplace(float* scores, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; ++i) mx = std::max(mx, scores[i]);
    for (int i = 0; i < n; ++i) scores[i] = exp_nonpositive(scores[i] - mx);
    float total = 0.0f;
    for (int i = 0; i < n; ++i) total += scores[i];
    const float inv = 1.0f / total;
    for (int i = 0; i < n; ++i) scores[i] *= inv;
}

BITNET_FLOAT_CLONES
float dot_f32(const float* a, const float* b, int n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
    }
    float total = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; ++i) total += a[i] * b[i];
    return total;
}

BITNET_FLOAT_CLONES
void add_inplace(float* y, const float* x, int n) {
    for (int i = 0; i < n; ++i) y[i] += x[i];
}

BITNET_FLOAT_CLONES
void rescale(const int32_t* acc, const float* scale, float s_x, bool divide, int r0, int r1,
             float* y) {
    if (divide) {
        for (int r = r0; r < r1; ++r) y[r] = static_cast<float>(acc[r]) / (scale[r] * s_x);
    } else {
        for (int r = r0; r < r1; ++r) y[r] = static_cast<float>(acc[r]) / s_x * scale[r];
    }
}

}  // namespace bitnet
