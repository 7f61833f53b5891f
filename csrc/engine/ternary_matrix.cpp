#include "ternary_matrix.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace bitnet {
namespace {

// Writes one row's codes (padded to G * 16 with code 1) into its lane of every group.
void pack_row(const uint8_t* row_codes, int row, int G, uint8_t* codes) {
    const int b = row / kRowBlock, r = row % kRowBlock;
    uint8_t* lane = codes + static_cast<size_t>(b) * G * kBlockBytes + 4 * r;
    for (int g = 0; g < G; ++g) {
        const uint8_t* c = row_codes + g * kColGroup;
        for (int j = 0; j < 4; ++j) {
            lane[g * kBlockBytes + j] =
                static_cast<uint8_t>(c[j] | (c[4 + j] << 2) | (c[8 + j] << 4) | (c[12 + j] << 6));
        }
    }
}

// I1_R16: byte j of the row's lane holds columns 20g + 4d + j as base-3 digits d = 0..4.
void pack_row5(const uint8_t* row_codes, int row, int G, uint8_t* codes) {
    const int b = row / kRowBlock, r = row % kRowBlock;
    uint8_t* lane = codes + static_cast<size_t>(b) * G * kBlockBytes + 4 * r;
    for (int g = 0; g < G; ++g) {
        const uint8_t* c = row_codes + g * kColGroup5;
        for (int j = 0; j < 4; ++j) {
            lane[g * kBlockBytes + j] = static_cast<uint8_t>(c[j] + 3 * c[4 + j] + 9 * c[8 + j] +
                                                             27 * c[12 + j] + 81 * c[16 + j]);
        }
    }
}

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

int TernaryMatrix::rows_of(const std::vector<LinearSource>& parts) {
    int rows = 0;
    for (const auto& p : parts) {
        if (p.weight.shape.size() != 2) throw CheckpointContentError(p.name + ": not a matrix");
        const bool packed = p.weight.dtype == DType::U8;
        rows += static_cast<int>(packed ? p.weight.shape[0] * 4 : p.weight.shape[0]);
    }
    return rows;
}

size_t TernaryMatrix::packed_bytes(int rows, int cols, bool base3) {
    const size_t blocks = (rows + kRowBlock - 1) / kRowBlock;
    const int per_group = cols_per_group(base3);
    const size_t groups = (cols + per_group - 1) / per_group;
    return blocks * groups * kBlockBytes;
}

TernaryMatrix TernaryMatrix::build(const std::vector<LinearSource>& parts, int cols, bool divide,
                                   ThreadPool& pool, uint8_t* storage, bool base3) {
    TernaryMatrix m;
    m.cols_ = cols;
    m.divide_ = divide;
    m.base3_ = base3;
    m.rows_ = rows_of(parts);
    m.n_row_blocks_ = (m.rows_ + kRowBlock - 1) / kRowBlock;
    m.n_col_groups_ = (cols + cols_per_group(base3) - 1) / cols_per_group(base3);
    if (storage == nullptr) {
        m.owned_ = AlignedBuffer(packed_bytes(m.rows_, cols, base3));
        storage = m.owned_.as<uint8_t>();
    }
    m.codes_ = storage;
    // Every padding weight is 0 (code 1): 0x55 in I2_R16, 121 = 11111 in base 3 in I1_R16.
    std::memset(m.codes_, base3 ? 121 : 0x55, packed_bytes(m.rows_, cols, base3));
    m.scales_.assign(m.rows_, 1.0f);

    const int G = m.n_col_groups_;
    int row0 = 0;
    for (const auto& p : parts) {
        const TensorView& w = p.weight;
        if (w.shape.size() != 2 || w.shape[1] != cols) {
            throw CheckpointContentError(p.name + ": unexpected weight shape");
        }
        const bool packed = w.dtype == DType::U8;
        const int rows = static_cast<int>(packed ? w.shape[0] * 4 : w.shape[0]);
        const float s = packed ? 0.0f : absmean_scale(w);
        std::atomic<bool> bad_code{false};
        pool.parallel_for(rows, [&](int begin, int end) {
            std::vector<uint8_t> row_codes(static_cast<size_t>(G) * cols_per_group(base3), 1);
            for (int r = begin; r < end; ++r) {
                if (packed) {
                    // HF packed planes: byte [i, c] holds rows i, R+i, 2R+i, 3R+i at bits
                    // 0, 2, 4, 6 (R = out_features / 4).
                    const int R = rows / 4, plane = r / R;
                    const auto* src =
                        static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r % R) * cols;
                    uint8_t seen = 0;
                    for (int k = 0; k < cols; ++k) {
                        const uint8_t code = (src[k] >> (2 * plane)) & 3;
                        seen |= static_cast<uint8_t>(code == 3);
                        row_codes[k] = code;
                    }
                    if (seen) bad_code.store(true, std::memory_order_relaxed);
                } else {
                    for (int k = 0; k < cols; ++k) {
                        const float v =
                            std::nearbyint(w.at(static_cast<int64_t>(r) * cols + k) * s);
                        row_codes[k] = static_cast<uint8_t>(v > 0.0f ? 2 : (v < 0.0f ? 0 : 1));
                    }
                }
                (base3 ? pack_row5 : pack_row)(row_codes.data(), row0 + r, G, m.codes_);
            }
        });
        if (bad_code.load()) {
            throw CheckpointContentError(p.name + ": packed weight holds the invalid code 3");
        }
        std::fill(m.scales_.begin() + row0, m.scales_.begin() + row0 + rows,
                  packed ? p.weight_scale : 1.0f / s);
        row0 += rows;
    }
    return m;
}

TernaryMatrix TernaryMatrix::from_prepacked(int rows, int cols, bool divide, const float* scales,
                                            uint8_t* storage, bool base3) {
    TernaryMatrix m;
    m.rows_ = rows;
    m.cols_ = cols;
    m.divide_ = divide;
    m.base3_ = base3;
    m.n_row_blocks_ = (rows + kRowBlock - 1) / kRowBlock;
    m.n_col_groups_ = (cols + cols_per_group(base3) - 1) / cols_per_group(base3);
    m.codes_ = storage;
    m.scales_.assign(scales, scales + rows);
    return m;
}

TernaryMatrix TernaryMatrix::from_ternary(const int8_t* w, int rows, int cols, ThreadPool& pool,
                                          bool base3) {
    TernaryMatrix m;
    m.rows_ = rows;
    m.cols_ = cols;
    m.divide_ = false;
    m.base3_ = base3;
    m.n_row_blocks_ = (rows + kRowBlock - 1) / kRowBlock;
    m.n_col_groups_ = (cols + cols_per_group(base3) - 1) / cols_per_group(base3);
    m.owned_ = AlignedBuffer(packed_bytes(rows, cols, base3));
    m.codes_ = m.owned_.as<uint8_t>();
    std::memset(m.codes_, base3 ? 121 : 0x55, packed_bytes(rows, cols, base3));
    m.scales_.assign(rows, 1.0f);
    const int G = m.n_col_groups_;
    pool.parallel_for(rows, [&](int begin, int end) {
        std::vector<uint8_t> row_codes(static_cast<size_t>(G) * cols_per_group(base3), 1);
        for (int r = begin; r < end; ++r) {
            for (int k = 0; k < cols; ++k) {
                const int q = std::max(-1, std::min(1, int(w[static_cast<size_t>(r) * cols + k])));
                row_codes[k] = static_cast<uint8_t>(q + 1);
            }
            (base3 ? pack_row5 : pack_row)(row_codes.data(), r, G, m.codes_);
        }
    });
    return m;
}

void TernaryMatrix::set_input_norms(std::vector<std::vector<float>> weights,
                                    std::vector<int> part_ends, float eps) {
    if (weights.size() != part_ends.size() || (!part_ends.empty() && part_ends.back() != rows_)) {
        throw std::invalid_argument("input norms must cover the matrix's parts");
    }
    for (const auto& w : weights) {
        if (static_cast<int>(w.size()) != cols_) {
            throw std::invalid_argument("an input norm must have one weight per column");
        }
    }
    input_norms_ = std::move(weights);
    part_ends_ = std::move(part_ends);
    input_norm_eps_ = eps;
}

}  // namespace bitnet
