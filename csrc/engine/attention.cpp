#include "attention.h"

#include <cstring>

#include "ops.h"
#include "tensor.h"

namespace bitnet {
namespace {

// One accumulator row: 16 floats as a GCC/Clang vector value, so the accumulators stay in
// registers (a plain array indexed by the final reduction is kept on the stack).
constexpr int kLanes = 16;
typedef float Lanes16 __attribute__((vector_size(kLanes * sizeof(float))));

typedef uint16_t Bf16x16 __attribute__((vector_size(kLanes * sizeof(uint16_t))));
typedef uint32_t U32x16 __attribute__((vector_size(kLanes * sizeof(uint32_t))));

// (Vectors are passed by reference: by value they would change the ABI between clones.)
inline void load_lanes(const float* p, Lanes16& v) { std::memcpy(&v, p, sizeof v); }
// bfloat16 is the top half of a float32: widen and shift.
inline void load_lanes(const uint16_t* p, Lanes16& v) {
    Bf16x16 h;
    std::memcpy(&h, p, sizeof h);
    const U32x16 bits = __builtin_convertvector(h, U32x16) << 16;
    std::memcpy(&v, &bits, sizeof v);
}

inline float to_float(float x) { return x; }
inline float to_float(uint16_t h) { return bf16_to_f32(h); }

inline float sum_lanes(const Lanes16& v) {
    float half[8];
    for (int l = 0; l < 8; ++l) half[l] = v[l] + v[l + 8];
    return ((half[0] + half[4]) + (half[2] + half[6])) +
           ((half[1] + half[5]) + (half[3] + half[7]));
}

// scores[i * ld + j] = scaling * q_i . k_j for NQ query heads; NQ independent accumulators
// hide the add latency that a single dot product is bound by.
template <int NQ, typename T>
BITNET_FLOAT_CLONES void group_scores(const float* q, int d, const T* keys, size_t kv_stride,
                                      int n_keys, float scaling, float* scores, size_t ld) {
    for (int j = 0; j < n_keys; ++j) {
        const T* k = keys + j * kv_stride;
        Lanes16 acc[NQ] = {};
        int c = 0;
        for (; c + kLanes <= d; c += kLanes) {
            Lanes16 kc, qc;
            load_lanes(k + c, kc);
            for (int i = 0; i < NQ; ++i) {
                load_lanes(q + i * d + c, qc);
                acc[i] += qc * kc;
            }
        }
        for (int i = 0; i < NQ; ++i) {
            float total = sum_lanes(acc[i]);
            for (int r = c; r < d; ++r) total += q[i * d + r] * to_float(k[r]);
            scores[i * ld + j] = total * scaling;
        }
    }
}

// out_i[c] = sum_j p_i[j] * v_j[c] in j order, NQ heads per value row read.
template <int NQ, typename T>
BITNET_FLOAT_CLONES void group_values(const float* p, size_t ld, int n_keys, const T* values,
                                      size_t kv_stride, int d, float* out) {
    constexpr int kChunk = 2 * kLanes;
    int c0 = 0;
    for (; c0 + kChunk <= d; c0 += kChunk) {
        float acc[NQ][kChunk] = {};
        for (int j = 0; j < n_keys; ++j) {
            const T* row = values + j * kv_stride + c0;
            float v[kChunk];
            for (int l = 0; l < kChunk; ++l) v[l] = to_float(row[l]);
            for (int i = 0; i < NQ; ++i) {
                const float w = p[i * ld + j];
                for (int l = 0; l < kChunk; ++l) acc[i][l] += w * v[l];
            }
        }
        for (int i = 0; i < NQ; ++i) {
            for (int l = 0; l < kChunk; ++l) out[i * d + c0 + l] = acc[i][l];
        }
    }
    for (; c0 < d; ++c0) {
        for (int i = 0; i < NQ; ++i) {
            float acc = 0.0f;
            for (int j = 0; j < n_keys; ++j) {
                acc += p[i * ld + j] * to_float(values[j * kv_stride + c0]);
            }
            out[i * d + c0] = acc;
        }
    }
}

template <int NQ, typename T>
void attend_block(const float* q, int d, const T* keys, const T* values, size_t kv_stride,
                  int n_keys, float scaling, float* scores, size_t ld, float* out) {
    group_scores<NQ, T>(q, d, keys, kv_stride, n_keys, scaling, scores, ld);
    for (int i = 0; i < NQ; ++i) softmax_inplace(scores + i * ld, n_keys);
    group_values<NQ, T>(scores, ld, n_keys, values, kv_stride, d, out);
}

template <typename T>
void attend_groups(const float* q, int n_q, int d, const T* keys, const T* values, size_t kv_stride,
                   int n_keys, float scaling, float* scores, size_t ld, float* out) {
    int i = 0;
    for (; i + 4 <= n_q; i += 4) {
        attend_block<4, T>(q + i * d, d, keys, values, kv_stride, n_keys, scaling, scores + i * ld,
                           ld, out + i * d);
    }
    for (; i + 2 <= n_q; i += 2) {
        attend_block<2, T>(q + i * d, d, keys, values, kv_stride, n_keys, scaling, scores + i * ld,
                           ld, out + i * d);
    }
    for (; i < n_q; ++i) {
        attend_block<1, T>(q + i * d, d, keys, values, kv_stride, n_keys, scaling, scores + i * ld,
                           ld, out + i * d);
    }
}

}  // namespace

void gqa_attend(const float* q, int n_q, int d, const float* keys, const float* values,
                size_t kv_stride, int n_keys, float scaling, float* scores, size_t ld, float* out) {
    attend_groups(q, n_q, d, keys, values, kv_stride, n_keys, scaling, scores, ld, out);
}

void gqa_attend(const float* q, int n_q, int d, const uint16_t* keys, const uint16_t* values,
                size_t kv_stride, int n_keys, float scaling, float* scores, size_t ld, float* out) {
    attend_groups(q, n_q, d, keys, values, kv_stride, n_keys, scaling, scores, ld, out);
}

}  // namespace bitnet
