#include "ternary_matrix.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

namespace bitnet {
namespace {

// Where row `row`, column `k` lives in the I2_R16 layout: byte offset and bit shift.
inline size_t code_byte(int row, int k, int n_col_groups) {
    const int b = row / kRowBlock, r = row % kRowBlock;
    const int g = k / kColGroup, j = k % 4;
    return (static_cast<size_t>(b) * n_col_groups + g) * kBlockBytes + 4 * r + j;
}
inline int code_shift(int k) { return 2 * ((k % kColGroup) / 4); }

// transformers' WeightQuant: s = 1 / max(mean|W|, 1e-5) over the whole tensor (float32);
// w_q = clamp(round(W * s), -1, 1); the dequantized value is w_q / s.
float absmean_scale(const TensorView& w) {
    const int64_t n = w.numel();
    double total = 0.0;
    for (int64_t i = 0; i < n; ++i) total += std::fabs(w.at(i));
    const float mean = static_cast<float>(total / static_cast<double>(n));
    return 1.0f / std::max(mean, 1e-5f);
}

}  // namespace

TernaryMatrix TernaryMatrix::build(const std::vector<LinearSource>& parts, int cols, bool divide,
                                   ThreadPool& pool) {
    TernaryMatrix m;
    m.cols_ = cols;
    m.divide_ = divide;
    for (const auto& p : parts) {
        const bool packed = p.weight.dtype == DType::U8;
        m.rows_ += static_cast<int>(packed ? p.weight.shape[0] * 4 : p.weight.shape[0]);
    }
    m.n_row_blocks_ = (m.rows_ + kRowBlock - 1) / kRowBlock;
    m.n_col_groups_ = (cols + kColGroup - 1) / kColGroup;
    m.codes_ = AlignedBuffer(static_cast<size_t>(m.n_row_blocks_) * m.n_col_groups_ * kBlockBytes);
    // 0x55 = code 1 (weight 0) in all four fields: padding rows and columns contribute nothing.
    std::memset(m.codes_.data(), 0x55, m.codes_.size());
    m.scales_.assign(m.rows_, 1.0f);

    uint8_t* codes = m.codes_.as<uint8_t>();
    const int G = m.n_col_groups_;
    int row0 = 0;
    for (const auto& p : parts) {
        const TensorView& w = p.weight;
        if (w.shape.size() != 2 || w.shape[1] != cols) {
            throw CheckpointContentError(p.name + ": unexpected weight shape");
        }
        if (w.dtype == DType::U8) {
            // HF packed planes: byte [r, c] holds rows r, R+r, 2R+r, 3R+r at bits 0, 2, 4, 6.
            const int R = static_cast<int>(w.shape[0]);
            const auto* src = static_cast<const uint8_t*>(w.data);
            std::atomic<bool> bad_code{false};
            pool.parallel_for(R, [&](int begin, int end) {
                for (int r = begin; r < end; ++r) {
                    for (int plane = 0; plane < 4; ++plane) {
                        const int row = row0 + plane * R + r;
                        for (int k = 0; k < cols; ++k) {
                            const int code =
                                (src[static_cast<size_t>(r) * cols + k] >> (2 * plane)) & 3;
                            if (code == 3) bad_code.store(true, std::memory_order_relaxed);
                            uint8_t& byte = codes[code_byte(row, k, G)];
                            const int shift = code_shift(k);
                            byte = static_cast<uint8_t>((byte & ~(3 << shift)) | (code << shift));
                        }
                    }
                }
            });
            if (bad_code.load()) {
                throw CheckpointContentError(p.name + ": packed weight holds the invalid code 3");
            }
            std::fill(m.scales_.begin() + row0, m.scales_.begin() + row0 + 4 * R, p.weight_scale);
            row0 += 4 * R;
        } else {
            const int rows = static_cast<int>(w.shape[0]);
            const float s = absmean_scale(w);
            pool.parallel_for(rows, [&](int begin, int end) {
                for (int r = begin; r < end; ++r) {
                    for (int k = 0; k < cols; ++k) {
                        const float v =
                            std::nearbyint(w.at(static_cast<int64_t>(r) * cols + k) * s);
                        const int q = v > 0.0f ? 1 : (v < 0.0f ? -1 : 0);
                        uint8_t& byte = codes[code_byte(row0 + r, k, G)];
                        const int shift = code_shift(k);
                        byte = static_cast<uint8_t>((byte & ~(3 << shift)) | ((q + 1) << shift));
                    }
                }
            });
            std::fill(m.scales_.begin() + row0, m.scales_.begin() + row0 + rows, 1.0f / s);
            row0 += rows;
        }
    }
    return m;
}

TernaryMatrix TernaryMatrix::from_ternary(const int8_t* w, int rows, int cols, ThreadPool& pool) {
    TernaryMatrix m;
    m.rows_ = rows;
    m.cols_ = cols;
    m.divide_ = false;
    m.n_row_blocks_ = (rows + kRowBlock - 1) / kRowBlock;
    m.n_col_groups_ = (cols + kColGroup - 1) / kColGroup;
    m.codes_ = AlignedBuffer(static_cast<size_t>(m.n_row_blocks_) * m.n_col_groups_ * kBlockBytes);
    std::memset(m.codes_.data(), 0x55, m.codes_.size());
    m.scales_.assign(rows, 1.0f);
    uint8_t* codes = m.codes_.as<uint8_t>();
    const int G = m.n_col_groups_;
    pool.parallel_for(rows, [&](int begin, int end) {
        for (int r = begin; r < end; ++r) {
            for (int k = 0; k < cols; ++k) {
                const int q = std::max(-1, std::min(1, int(w[static_cast<size_t>(r) * cols + k])));
                uint8_t& byte = codes[code_byte(r, k, G)];
                const int shift = code_shift(k);
                byte = static_cast<uint8_t>((byte & ~(3 << shift)) | ((q + 1) << shift));
            }
        }
    });
    return m;
}

}  // namespace bitnet
