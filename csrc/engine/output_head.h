// The output head (logits = final hidden . E^T over the whole vocabulary). It is the largest
// single read of a decode step (128256 x 2560 for 2B-4T), so it is stored quantized: int8 per
// row (default; within the oracle's loose tolerance), 6-bit with a sub-scale per 16 columns
// (25% fewer bytes), 4-bit per row (speed preset), or f32 for exact agreement with the float32
// reference.
#pragma once

#include <string>
#include <vector>

#include "../kernels/kernels.h"
#include "aligned_buffer.h"
#include "tensor.h"
#include "thread_pool.h"

namespace bitnet {

enum class HeadKind { F32, Q8, Q6, Q4 };

HeadKind parse_head_kind(const std::string& name);
const char* head_kind_name(HeadKind kind);

class OutputHead {
 public:
    OutputHead() = default;
    // `release_src`: the table is a read-only file mapping whose pages are dropped as rows are
    // quantized, so building the head does not hold the whole float table in RSS.
    OutputHead(const TensorView& table, int vocab, int hidden, HeadKind kind, ThreadPool& pool,
               bool release_src = false);

    // logits[v] for one token; `xq` needs 2 * padded_cols() bytes, `acc` 2 * padded_rows()
    // int32.
    void logits(const float* h, float* out, const KernelTable& k, ThreadPool& pool, int8_t* xq,
                int32_t* acc) const;
    // logits of n tokens (h: [n][hidden]) into out[t], each exactly as logits() gives it. Each
    // chunk of the head is read from memory once for up to kHeadBatch tokens and reused from
    // cache. `xq` needs min(n, kHeadBatch) * 2 * padded_cols() bytes, `acc` as for logits().
    void logits_batch(const float* h, int n, float* const* out, const KernelTable& k,
                      ThreadPool& pool, int8_t* xq, int32_t* acc) const;
    static constexpr int kHeadBatch = 16;
    // From a head saved by `bitnet convert` (codes and per-row scales as written by data()).
    static OutputHead from_prepacked(HeadKind kind, int vocab, int hidden, const TensorView& data,
                                     const TensorView& scales, ThreadPool& pool, bool release_src);
    const AlignedBuffer& data() const { return data_; }
    const std::vector<float>& scales() const { return scales_; }
    HeadKind kind() const { return kind_; }
    int padded_rows() const { return n_blocks_ * kRowBlock; }
    int padded_cols() const { return padded_cols_; }
    size_t bytes() const { return data_.size() + scales_.size() * sizeof(float); }

 private:
    struct QuantizedToken {
        const int8_t* hi = nullptr;
        const int8_t* lo = nullptr;
        int32_t hi_sum = 0, lo_sum = 0;
        float inv_s = 0.0f;
    };
    // Row blocks per q6_gemm call of the batched head (its sums live on the stack).
    static constexpr int kSubBlocks = 4;
    QuantizedToken quantize(const float* h, const KernelTable& k, int8_t* xq) const;
    void rows(const QuantizedToken& x, const KernelTable& k, int b0, int b1, int32_t* acc,
              float* out) const;
    void q6_logits_batch(const float* h, int n, float* const* out, const KernelTable& k,
                         ThreadPool& pool, int8_t* xq) const;
    void store_logits(const int32_t* hi, const int32_t* lo, float inv_s, int r0, int r1,
                      float* out) const;

    HeadKind kind_ = HeadKind::Q8;
    int vocab_ = 0, hidden_ = 0, n_blocks_ = 0, padded_cols_ = 0;
    AlignedBuffer data_;         // f32 rows, or Q8_R16 / Q6_R16 / Q4_R16 codes
    std::vector<float> scales_;  // per row (quantized kinds)
};

}  // namespace bitnet
