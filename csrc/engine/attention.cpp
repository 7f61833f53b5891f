#include "attention.h"

#include <cstring>

#include "ops.h"
#include "tensor.h"

namespace bitnet {
namespace {

// Sixteen lanes as two 8-float GCC/Clang vectors: a 32-byte vector is a register in the
// AVX2 and AVX-512 clones, where a 64-byte one has no register under AVX2 and lives on the
// stack (benchmarks/README.md, "Measured design choices"). Each lane sees the same
// operations as in one 16-float vector.
constexpr int kLanes = 16;
typedef float F32x8 __attribute__((vector_size(8 * sizeof(float))));
typedef uint16_t Bf16x8 __attribute__((vector_size(8 * sizeof(uint16_t))));
typedef uint32_t U32x8 __attribute__((vector_size(8 * sizeof(uint32_t))));

struct Lanes16 {
    F32x8 lo, hi;
};

// (Vectors are passed by reference: by value they would change the ABI between clones.)
inline void load8(const float* p, F32x8& v) { std::memcpy(&v, p, sizeof v); }
// bfloat16 is the top half of a float32: widen and shift.
inline void load8(const uint16_t* p, F32x8& v) {
    Bf16x8 h;
    std::memcpy(&h, p, sizeof h);
    const U32x8 bits = __builtin_convertvector(h, U32x8) << 16;
    std::memcpy(&v, &bits, sizeof v);
}
template <typename T>
inline void load_lanes(const T* p, Lanes16& v) {
    load8(p, v.lo);
    load8(p + 8, v.hi);
}
inline void store_lanes(const Lanes16& v, float* p) {
    std::memcpy(p, &v.lo, sizeof v.lo);
    std::memcpy(p + 8, &v.hi, sizeof v.hi);
}
inline void mul_add(Lanes16& acc, const Lanes16& a, const Lanes16& b) {
    acc.lo += a.lo * b.lo;
    acc.hi += a.hi * b.hi;
}
inline void mul_add(Lanes16& acc, float w, const Lanes16& b) {
    acc.lo += w * b.lo;
    acc.hi += w * b.hi;
}

// Cache rows are read in order with little work on each, and the hardware prefetchers do not
// run far enough ahead: each loop asks for the row kRowsAhead on.
constexpr int kRowsAhead = 4;
template <typename T>
inline void prefetch_row(const T* row, int d) {
    const char* bytes = reinterpret_cast<const char*>(row);
    for (int b = 0; b < d * static_cast<int>(sizeof(T)); b += 64) __builtin_prefetch(bytes + b);
}

inline float to_float(float x) { return x; }
inline float to_float(uint16_t h) { return bf16_to_f32(h); }

inline float sum_lanes(const Lanes16& v) {
    const F32x8 half = v.lo + v.hi;
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
        if (j + kRowsAhead < n_keys) prefetch_row(k + kRowsAhead * kv_stride, d);
        Lanes16 acc[NQ];  // (zeroed per element: `= {}` zeroes the array on the stack)
        for (int i = 0; i < NQ; ++i) acc[i] = Lanes16{F32x8{}, F32x8{}};
        int c = 0;
        for (; c + kLanes <= d; c += kLanes) {
            Lanes16 kc, qc;
            load_lanes(k + c, kc);
            for (int i = 0; i < NQ; ++i) {
                load_lanes(q + i * d + c, qc);
                mul_add(acc[i], qc, kc);
            }
        }
        for (int i = 0; i < NQ; ++i) {
            float total = sum_lanes(acc[i]);
            for (int r = c; r < d; ++r) total += q[i * d + r] * to_float(k[r]);
            scores[i * ld + j] = total * scaling;
        }
    }
}

// out_i[c] = sum_j p_i[j] * v_j[c] in j order. Each value row is read whole, in order, and
// the NQ running sums wait in `out` (L1): going one 16-column chunk at a time over all rows
// would keep the sums in registers but read one line of every row per pass, a stride the
// prefetchers follow badly.
template <int NQ, typename T>
BITNET_FLOAT_CLONES void group_values(const float* p, size_t ld, int n_keys, const T* values,
                                      size_t kv_stride, int d, float* out) {
    const int d16 = d / kLanes * kLanes;
    for (int i = 0; i < NQ; ++i) std::memset(out + i * d, 0, d16 * sizeof(float));
    for (int j = 0; j < n_keys; ++j) {
        const T* row = values + j * kv_stride;
        if (j + kRowsAhead < n_keys) prefetch_row(row + kRowsAhead * kv_stride, d);
        float w[NQ];
        for (int i = 0; i < NQ; ++i) w[i] = p[i * ld + j];
        for (int c0 = 0; c0 < d16; c0 += kLanes) {
            Lanes16 v;
            load_lanes(row + c0, v);
            for (int i = 0; i < NQ; ++i) {
                Lanes16 a;
                load_lanes(out + i * d + c0, a);
                mul_add(a, w[i], v);
                store_lanes(a, out + i * d + c0);
            }
        }
    }
    for (int c0 = d16; c0 < d; ++c0) {
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
