#include "output_head.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "ops.h"

namespace bitnet {

HeadKind parse_head_kind(const std::string& name) {
    if (name == "f32") return HeadKind::F32;
    if (name == "int8") return HeadKind::Q8;
    if (name == "q6") return HeadKind::Q6;
    if (name == "q4") return HeadKind::Q4;
    throw std::invalid_argument("lm_head must be 'int8', 'q6', 'q4' or 'f32', got '" + name + "'");
}

const char* head_kind_name(HeadKind kind) {
    switch (kind) {
        case HeadKind::F32:
            return "f32";
        case HeadKind::Q8:
            return "int8";
        case HeadKind::Q6:
            return "q6";
        case HeadKind::Q4:
            return "q4";
    }
    return "?";
}

namespace {

// Columns per 64-byte step of 16 rows in the Q8 and Q4 layouts.
int cols_per_step(HeadKind kind) { return kind == HeadKind::Q8 ? 4 : 8; }

int padded_width(HeadKind kind, int hidden) {
    if (kind == HeadKind::F32) return hidden;
    if (kind == HeadKind::Q6) {
        constexpr int kAlignCols = kColGroup * kQ6GroupsPerSuper;
        return (hidden + kAlignCols - 1) / kAlignCols * kAlignCols;
    }
    const int step = cols_per_step(kind);
    return (hidden + step - 1) / step * step;
}

size_t head_block_bytes(HeadKind kind, int padded_cols) {
    if (kind == HeadKind::Q6) return q6_block_bytes(padded_cols / kColGroup);
    return static_cast<size_t>(padded_cols / cols_per_step(kind)) * kBlockBytes;
}

// One row (`amax` = its largest magnitude) of a Q6_R16 block (layout in kernels.h); returns
// the row's float scale (the value of one unit of sub-scale x weight). Sub-scales round up, so
// no weight is clipped.
float pack_q6_row(const float* row, float amax, int hidden, int n_groups, uint8_t* block, int r) {
    const int64_t padded = static_cast<int64_t>(n_groups) * kColGroup;
    const int s_max = static_cast<int>(
        std::min<int64_t>(127, std::numeric_limits<int32_t>::max() / (31 * 127 * padded)));
    const float unit = amax / (31.0f * static_cast<float>(s_max));
    int64_t correction = 0;
    for (int g = 0; g < n_groups; ++g) {
        const int k0 = g * kColGroup, k1 = std::min(hidden, k0 + kColGroup);
        float gmax = 0.0f;
        for (int k = k0; k < k1; ++k) gmax = std::max(gmax, std::fabs(row[k]));
        const int up = amax > 0.0f ? static_cast<int>(std::ceil(gmax / amax * s_max)) : 1;
        const int s = std::min(s_max, std::max(1, up));
        block[q6_scales_offset(g) + r] = static_cast<uint8_t>(s);
        const float inv = unit > 0.0f ? 1.0f / (unit * static_cast<float>(s)) : 0.0f;
        uint8_t* lane = block + q6_codes_offset(g) + 4 * r;
        int w_sum = 0;
        for (int c = 0; c < kColGroup; ++c) {
            const int k = k0 + c;
            const int w =
                k < hidden
                    ? std::min(31, std::max(-31, static_cast<int>(std::nearbyint(row[k] * inv))))
                    : 0;
            w_sum += w;
            const int u = w + 32, quad = c / 4, j = c % 4, shift = quad % 2 == 0 ? 0 : 4;
            uint8_t& nibbles = lane[(quad / 2) * kBlockBytes + j];
            nibbles = static_cast<uint8_t>((nibbles & ~(15 << shift)) | ((u & 15) << shift));
            uint8_t& top = lane[2 * kBlockBytes + j];
            top = static_cast<uint8_t>((top & ~(3 << 2 * quad)) | ((u >> 4) << 2 * quad));
        }
        correction += 128 * static_cast<int64_t>(s) * w_sum;
    }
    // Stored modulo 2^32, as the kernels' int32 sums wrap.
    const auto wrapped = static_cast<int32_t>(static_cast<uint32_t>(correction));
    std::memcpy(block + q6_corrections_offset(n_groups) + 4 * r, &wrapped, sizeof wrapped);
    return unit;
}

}  // namespace

OutputHead::OutputHead(const TensorView& table, int vocab, int hidden, HeadKind kind,
                       ThreadPool& pool, bool release_src)
    : kind_(kind), vocab_(vocab), hidden_(hidden) {
    if (table.numel() != static_cast<int64_t>(vocab) * hidden) {
        throw CheckpointContentError("output head: table size does not match vocab x hidden");
    }
    n_blocks_ = (vocab + kRowBlock - 1) / kRowBlock;
    if (kind == HeadKind::F32) {
        padded_cols_ = hidden;
        data_ = AlignedBuffer(static_cast<size_t>(vocab) * hidden * sizeof(float));
        float* out = data_.as<float>();
        pool.parallel_for(vocab, [&](int begin, int end) {
            for (int64_t i = int64_t(begin) * hidden; i < int64_t(end) * hidden; ++i) {
                out[i] = table.at(i);
            }
        });
        return;
    }
    const bool q8 = kind == HeadKind::Q8, q6 = kind == HeadKind::Q6;
    padded_cols_ = padded_width(kind, hidden);
    const size_t block_bytes = head_block_bytes(kind, padded_cols_);
    data_ = AlignedBuffer(n_blocks_ * block_bytes);
    // Zero weights in padding: code 128 (int8) or 8 (4-bit, both nibbles); Q6 padding rows get
    // sub-scale 0 (their codes do not matter) and packed rows write every column.
    std::memset(data_.data(), q8 ? 128 : (q6 ? 0 : 0x88), data_.size());
    scales_.assign(static_cast<size_t>(n_blocks_) * kRowBlock, 0.0f);
    uint8_t* codes = data_.as<uint8_t>();
    const float qmax = q8 ? 127.0f : 7.0f;
    const int step_cols = q6 ? 0 : cols_per_step(kind);
    const size_t row_bytes = static_cast<size_t>(hidden) * dtype_size(table.dtype);
    pool.parallel_for(vocab, [&](int begin, int end) {
        std::vector<float> row(hidden);
        constexpr int kReleaseRows = 1024;
        for (int v = begin; v < end; ++v) {
            if (release_src && v > begin && (v - begin) % kReleaseRows == 0) {
                release_file_pages(static_cast<const uint8_t*>(table.data) +
                                       static_cast<size_t>(v - kReleaseRows) * row_bytes,
                                   kReleaseRows * row_bytes);
            }
            float amax = 0.0f;
            for (int k = 0; k < hidden; ++k) {
                row[k] = table.at(static_cast<int64_t>(v) * hidden + k);
                amax = std::max(amax, std::fabs(row[k]));
            }
            uint8_t* block = codes + (v / kRowBlock) * block_bytes;
            if (q6) {
                scales_[v] = pack_q6_row(row.data(), amax, hidden, padded_cols_ / kColGroup, block,
                                         v % kRowBlock);
                continue;
            }
            const float scale = amax / qmax;
            const float inv = amax > 0.0f ? qmax / amax : 0.0f;
            scales_[v] = scale;
            uint8_t* lane = block + 4 * (v % kRowBlock);
            for (int k = 0; k < hidden; ++k) {
                const int q = static_cast<int>(std::nearbyint(row[k] * inv));
                const int step = k / step_cols;
                if (q8) {
                    lane[step * kBlockBytes + k % 4] = static_cast<uint8_t>(q + 128);
                } else {
                    const int within = k % 8, j = within % 4;
                    uint8_t& byte = lane[step * kBlockBytes + j];
                    const int shift = within < 4 ? 0 : 4;
                    byte = static_cast<uint8_t>((byte & ~(15 << shift)) | ((q + 8) << shift));
                }
            }
        }
    });
}

OutputHead OutputHead::from_prepacked(HeadKind kind, int vocab, int hidden, const TensorView& data,
                                      const TensorView& scales, ThreadPool& pool,
                                      bool release_src) {
    OutputHead head;
    head.kind_ = kind;
    head.vocab_ = vocab;
    head.hidden_ = hidden;
    head.n_blocks_ = (vocab + kRowBlock - 1) / kRowBlock;
    head.padded_cols_ = padded_width(kind, hidden);
    const size_t bytes = kind == HeadKind::F32
                             ? static_cast<size_t>(vocab) * hidden * sizeof(float)
                             : head.n_blocks_ * head_block_bytes(kind, head.padded_cols_);
    if (data.dtype != DType::U8 || static_cast<size_t>(data.numel()) != bytes) {
        throw CheckpointContentError("bitnet.head.codes: size does not match the head layout");
    }
    if (kind != HeadKind::F32 &&
        (scales.dtype != DType::F32 || scales.numel() != head.n_blocks_ * kRowBlock)) {
        throw CheckpointContentError("bitnet.head.scales: size does not match the vocabulary");
    }
    head.data_ = AlignedBuffer(bytes);
    copy_parallel(head.data_.as<uint8_t>(), static_cast<const uint8_t*>(data.data), bytes, pool,
                  release_src);
    if (kind != HeadKind::F32) {
        const auto* s = static_cast<const float*>(scales.data);
        head.scales_.assign(s, s + scales.numel());
    }
    return head;
}

void OutputHead::logits(const float* h, float* out, const KernelTable& k, ThreadPool& pool,
                        int8_t* xq, int32_t* acc) const {
    const int64_t work = int64_t(vocab_) * hidden_;
    if (kind_ == HeadKind::F32) {
        const float* table = data_.as<float>();
        pool.parallel_for(vocab_, work, [&](int begin, int end) {
            for (int v = begin; v < end; ++v) {
                out[v] = dot_f32(h, table + static_cast<size_t>(v) * hidden_, hidden_);
            }
        });
        return;
    }
    const QuantizedToken x = quantize(h, k, xq);
    pool.parallel_for_dynamic(n_blocks_, pool.grain_for(n_blocks_), work,
                              [&](int b0, int b1) { rows(x, k, b0, b1, acc, out); });
}

void OutputHead::logits_batch(const float* h, int n, float* const* out, const KernelTable& k,
                              ThreadPool& pool, int8_t* xq, int32_t* acc) const {
    if (kind_ == HeadKind::F32 || n == 1) {
        for (int t = 0; t < n; ++t)
            logits(h + static_cast<size_t>(t) * hidden_, out[t], k, pool, xq, acc);
        return;
    }
    if (kind_ == HeadKind::Q6 && k.q6_gemm != nullptr) {
        q6_logits_batch(h, n, out, k, pool, xq);
        return;
    }
    // Chunks of rows small enough to stay in L2 while every token of the group uses them (and
    // no larger than the one-token split, so a small head still spreads over the threads).
    const size_t block_bytes = data_.size() / n_blocks_;
    const int in_cache = std::max(2, static_cast<int>((512 << 10) / block_bytes) / 2 * 2);
    const int grain = std::min(in_cache, pool.grain_for(n_blocks_));
    const size_t stride = 2 * static_cast<size_t>(padded_cols_);
    QuantizedToken x[kHeadBatch];
    for (int t0 = 0; t0 < n; t0 += kHeadBatch) {
        const int m = std::min(kHeadBatch, n - t0);
        for (int t = 0; t < m; ++t) {
            x[t] = quantize(h + static_cast<size_t>(t0 + t) * hidden_, k, xq + t * stride);
        }
        // The rows of a chunk are disjoint from every other chunk's, so one acc serves all
        // tokens: each token's rows are converted before the next token's kernel runs.
        pool.parallel_for_dynamic(n_blocks_, grain, int64_t(m) * vocab_ * hidden_,
                                  [&](int b0, int b1) {
                                      for (int t = 0; t < m; ++t)
                                          rows(x[t], k, b0, b1, acc, out[t0 + t]);
                                  });
    }
}

// Every token of a group shares each unpacked weight group (q6_gemm): the head streams from
// memory once per group of tokens, and its unpacking is paid once, not per token.
void OutputHead::q6_logits_batch(const float* h, int n, float* const* out, const KernelTable& k,
                                 ThreadPool& pool, int8_t* xq) const {
    const size_t stride = 2 * static_cast<size_t>(padded_cols_);
    QuantizedToken x[kHeadBatch];
    for (int t0 = 0; t0 < n; t0 += kHeadBatch) {
        const int m = std::min(kHeadBatch, n - t0);
        for (int t = 0; t < m; ++t) {
            int8_t* row = xq + t * stride;
            x[t] = quantize(h + static_cast<size_t>(t0 + t) * hidden_, k, row);
            for (size_t i = 0; i < stride; ++i) row[i] = static_cast<int8_t>(row[i] ^ 0x80);
        }
        const auto* biased = reinterpret_cast<const uint8_t*>(xq);
        const BiasedHeadActs acts{biased, biased + padded_cols_, stride, m};
        // A few blocks per kernel call: their sums for every token fit on the stack.
        const auto run_blocks = [&](int b0, int b1) {
            constexpr size_t ld = kSubBlocks * kRowBlock;
            int32_t sums_hi[kHeadBatch * ld], sums_lo[kHeadBatch * ld];
            for (int s0 = b0; s0 < b1; s0 += kSubBlocks) {
                const int s1 = std::min(b1, s0 + kSubBlocks);
                k.q6_gemm(data_.as<uint8_t>(), padded_cols_ / kColGroup, s0, s1, acts, sums_hi,
                          sums_lo, ld);
                const int r0 = s0 * kRowBlock, r1 = std::min(vocab_, s1 * kRowBlock);
                for (int t = 0; t < m; ++t) {
                    store_logits(sums_hi + t * ld, sums_lo + t * ld, x[t].inv_s, r0, r1,
                                 out[t0 + t]);
                }
            }
        };
        pool.parallel_for_dynamic(n_blocks_, pool.grain_for(n_blocks_),
                                  int64_t(m) * vocab_ * hidden_, run_blocks);
    }
}

// Int8 activations of one token: the absmax term, and (except Q4) a second int8 term, the
// quantization residual of h on 256x the scale of the first, so the two form one int16
// activation 256 * hi + lo (|residual * s| <= 1/2; 128 clamps to 127).
OutputHead::QuantizedToken OutputHead::quantize(const float* h, const KernelTable& k,
                                                int8_t* xq) const {
    QuantizedToken x;
    x.hi = xq;
    const float s = k.quantize_row(h, hidden_, xq, &x.hi_sum);
    std::memset(xq + hidden_, 0, padded_cols_ - hidden_);
    x.inv_s = 1.0f / s;
    if (kind_ == HeadKind::Q4) return x;
    int8_t* lo = xq + padded_cols_;
    x.lo = lo;
    for (int i = 0; i < hidden_; ++i) {
        const float v = std::nearbyint((h[i] * s - static_cast<float>(xq[i])) * 256.0f);
        lo[i] = static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, v)));
        x.lo_sum += lo[i];
    }
    std::memset(lo + hidden_, 0, padded_cols_ - hidden_);
    return x;
}

// The logits of row blocks [b0, b1) for one quantized token.
void OutputHead::rows(const QuantizedToken& x, const KernelTable& k, int b0, int b1, int32_t* acc,
                      float* out) const {
    const uint8_t* codes = data_.as<uint8_t>();
    const int r1 = std::min(vocab_, b1 * kRowBlock);
    if (kind_ == HeadKind::Q4) {
        k.q4_gemv(codes, padded_cols_ / 8, b0, b1, x.hi, x.hi_sum, acc);
        for (int v = b0 * kRowBlock; v < r1; ++v) {
            out[v] = static_cast<float>(acc[v]) * x.inv_s * scales_[v];
        }
        return;
    }
    int32_t* acc_lo = acc + padded_rows();
    if (kind_ == HeadKind::Q6) {
        k.q6_gemv(codes, padded_cols_ / kColGroup, b0, b1, x.hi, x.lo, acc, acc_lo);
    } else {
        k.q8_gemv(codes, padded_cols_ / 4, b0, b1, x.hi, x.hi_sum, x.lo, x.lo_sum, acc, acc_lo);
    }
    const int r0 = b0 * kRowBlock;
    store_logits(acc + r0, acc_lo + r0, x.inv_s, r0, r1, out);
}

// Logits of rows [r0, r1) from a two-term head's sums (hi[v - r0], lo[v - r0]). Kernels may split
// the sum between the two terms differently; only 256 * hi + lo is defined, so it is formed exactly
// before the float scale.
void OutputHead::store_logits(const int32_t* hi, const int32_t* lo, float inv_s, int r0, int r1,
                              float* out) const {
    const float inv_s16 = inv_s / 256.0f;
    for (int v = r0; v < r1; ++v) {
        const int64_t total = 256 * static_cast<int64_t>(hi[v - r0]) + lo[v - r0];
        out[v] = static_cast<float>(total) * inv_s16 * scales_[v];
    }
}

}  // namespace bitnet
