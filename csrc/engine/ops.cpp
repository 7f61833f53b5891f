#include "ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace bitnet {

void rms_norm(const float* x, const float* weight, int n, float eps, float* y) {
    double sum_sq = 0.0;
    for (int i = 0; i < n; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
    const float variance = static_cast<float>(sum_sq / n);
    const float inv = 1.0f / std::sqrt(variance + eps);
    for (int i = 0; i < n; ++i) y[i] = weight[i] * (x[i] * inv);
}

void rope_tables(float theta, int head_dim, int max_pos, float* cos_out, float* sin_out) {
    const int half = head_dim / 2;
    std::vector<float> inv_freq(half);
    for (int i = 0; i < half; ++i) {
        const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
        inv_freq[i] = 1.0f / std::pow(theta, exponent);
    }
    for (int pos = 0; pos < max_pos; ++pos) {
        for (int i = 0; i < half; ++i) {
            const float angle = static_cast<float>(pos) * inv_freq[i];
            cos_out[static_cast<size_t>(pos) * half + i] = std::cos(angle);
            sin_out[static_cast<size_t>(pos) * half + i] = std::sin(angle);
        }
    }
}

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

void relu2_gate(const float* gate, const float* up, int n, float* out) {
    for (int i = 0; i < n; ++i) {
        const float r = std::max(gate[i], 0.0f);
        out[i] = (r * r) * up[i];
    }
}

void softmax_inplace(float* scores, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; ++i) mx = std::max(mx, scores[i]);
    float total = 0.0f;
    for (int i = 0; i < n; ++i) {
        scores[i] = std::exp(scores[i] - mx);
        total += scores[i];
    }
    const float inv = 1.0f / total;
    for (int i = 0; i < n; ++i) scores[i] *= inv;
}

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

void axpy_f32(float a, const float* x, float* y, int n) {
    for (int i = 0; i < n; ++i) y[i] += a * x[i];
}

}  // namespace bitnet
