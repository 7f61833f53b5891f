// Causal GQA attention for one token: the query heads that share a key/value head are done
// together, so each cached key and value row is read once per group instead of once per head.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bitnet {

// For query heads q[i * d .. + d), i < n_q, over keys/values rows j < n_keys (row j of the
// cache at keys + j * kv_stride): out[i * d .. + d) = softmax(q_i . k_j * scaling) . v.
// `scores` is scratch of n_q * ld floats (ld >= n_keys). Float32 like the reference; the
// value sum runs in key order for every output element.
void gqa_attend(const float* q, int n_q, int d, const float* keys, const float* values,
                size_t kv_stride, int n_keys, float scaling, float* scores, size_t ld, float* out);
// The same over a bfloat16 cache (rows of uint16_t).
void gqa_attend(const float* q, int n_q, int d, const uint16_t* keys, const uint16_t* values,
                size_t kv_stride, int n_keys, float scaling, float* scores, size_t ld, float* out);

}  // namespace bitnet
