// Scalar reference kernels: the definition every optimized kernel is tested against.
#include <algorithm>
#include <cmath>

#include "kernels.h"

namespace bitnet {
namespace {

void ternary_gemm_ref(const PackedTernary& w, int block_begin, int block_end,
                      const QuantizedActs& acts, int32_t* out, size_t ld_out) {
    for (int b = block_begin; b < block_end; ++b) {
        const uint8_t* block = w.codes + static_cast<size_t>(b) * w.n_col_groups * kBlockBytes;
        for (int t = 0; t < acts.n_tokens; ++t) {
            const int8_t* x = acts.x + t * acts.stride;
            for (int r = 0; r < kRowBlock; ++r) {
                int32_t acc = 0;
                for (int g = 0; g < w.n_col_groups; ++g) {
                    const uint8_t* lane = block + g * kBlockBytes + 4 * r;
                    for (int j = 0; j < 4; ++j) {
                        for (int p = 0; p < 4; ++p) {
                            const int code = (lane[j] >> (2 * p)) & 3;
                            acc += code * x[g * kColGroup + 4 * p + j];
                        }
                    }
                }
                out[t * ld_out + b * kRowBlock + r] = acc - acts.sums[t];
            }
        }
    }
}

void ternary5_gemm_ref(const PackedTernary& w, int block_begin, int block_end,
                       const QuantizedActs& acts, int32_t* out, size_t ld_out) {
    for (int b = block_begin; b < block_end; ++b) {
        const uint8_t* block = w.codes + static_cast<size_t>(b) * w.n_col_groups * kBlockBytes;
        for (int t = 0; t < acts.n_tokens; ++t) {
            const int8_t* x = acts.x + t * acts.stride;
            for (int r = 0; r < kRowBlock; ++r) {
                int32_t acc = 0;
                for (int g = 0; g < w.n_col_groups; ++g) {
                    const uint8_t* lane = block + g * kBlockBytes + 4 * r;
                    for (int j = 0; j < 4; ++j) {
                        int v = lane[j];
                        for (int d = 0; d < 5; ++d, v /= 3) {
                            acc += (v % 3) * x[g * kColGroup5 + 4 * d + j];
                        }
                    }
                }
                out[t * ld_out + b * kRowBlock + r] = acc - acts.sums[t];
            }
        }
    }
}

float quantize_row_ref(const float* x, int n, int8_t* q, int32_t* sum) {
    float amax = 0.0f;
    for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
    // torch evaluates `127 / t` as reciprocal(t) * 127: two roundings, kept for exactness.
    const float s = (1.0f / std::max(amax, 1e-5f)) * 127.0f;
    int32_t total = 0;
    for (int i = 0; i < n; ++i) {
        // nearbyint rounds half to even in the default FP environment, like torch.round.
        const float v = std::nearbyint(x[i] * s);
        const int iv = static_cast<int>(std::min(127.0f, std::max(-128.0f, v)));
        q[i] = static_cast<int8_t>(iv);
        total += iv;
    }
    *sum = total;
    return s;
}

void q8_gemv_ref(const uint8_t* codes, int n_col_quads, int block_begin, int block_end,
                 const int8_t* hi, int32_t hi_sum, const int8_t* lo, int32_t lo_sum,
                 int32_t* out_hi, int32_t* out_lo) {
    for (int b = block_begin; b < block_end; ++b) {
        const uint8_t* block = codes + static_cast<size_t>(b) * n_col_quads * kBlockBytes;
        for (int r = 0; r < kRowBlock; ++r) {
            int32_t acc_hi = 0, acc_lo = 0;
            for (int q = 0; q < n_col_quads; ++q) {
                for (int j = 0; j < 4; ++j) {
                    const int code = block[q * kBlockBytes + 4 * r + j];
                    acc_hi += code * hi[4 * q + j];
                    acc_lo += code * lo[4 * q + j];
                }
            }
            out_hi[b * kRowBlock + r] = acc_hi - 128 * hi_sum;
            out_lo[b * kRowBlock + r] = acc_lo - 128 * lo_sum;
        }
    }
}

void q4_gemv_ref(const uint8_t* codes, int n_col_octets, int block_begin, int block_end,
                 const int8_t* x, int32_t x_sum, int32_t* out) {
    for (int b = block_begin; b < block_end; ++b) {
        const uint8_t* block = codes + static_cast<size_t>(b) * n_col_octets * kBlockBytes;
        for (int r = 0; r < kRowBlock; ++r) {
            int32_t acc = 0;
            for (int q = 0; q < n_col_octets; ++q) {
                for (int j = 0; j < 4; ++j) {
                    const uint8_t byte = block[q * kBlockBytes + 4 * r + j];
                    acc += (byte & 15) * x[8 * q + j] + (byte >> 4) * x[8 * q + 4 + j];
                }
            }
            out[b * kRowBlock + r] = acc - 8 * x_sum;
        }
    }
}

// The definition, straight from the weights: it ignores the stored corrections, so the tests
// also check them.
void q6_gemv_ref(const uint8_t* data, int n_col_groups, int block_begin, int block_end,
                 const int8_t* hi, const int8_t* lo, int32_t* out_hi, int32_t* out_lo) {
    for (int b = block_begin; b < block_end; ++b) {
        const uint8_t* block = data + static_cast<size_t>(b) * q6_block_bytes(n_col_groups);
        for (int r = 0; r < kRowBlock; ++r) {
            int64_t acc_hi = 0, acc_lo = 0;
            for (int g = 0; g < n_col_groups; ++g) {
                const uint8_t* codes = block + q6_codes_offset(g) + 4 * r;
                int64_t part_hi = 0, part_lo = 0;
                for (int c = 0; c < kColGroup; ++c) {
                    const int j = c % 4, quad = c / 4;
                    const uint8_t nibbles = codes[(quad / 2) * kBlockBytes + j];
                    const int low = quad % 2 == 0 ? nibbles & 15 : nibbles >> 4;
                    const int top = (codes[2 * kBlockBytes + j] >> (2 * quad)) & 3;
                    const int w = (low | top << 4) - 32;
                    part_hi += w * hi[g * kColGroup + c];
                    part_lo += w * lo[g * kColGroup + c];
                }
                const int s = block[q6_scales_offset(g) + r];
                acc_hi += s * part_hi;
                acc_lo += s * part_lo;
            }
            out_hi[b * kRowBlock + r] = static_cast<int32_t>(acc_hi);
            out_lo[b * kRowBlock + r] = static_cast<int32_t>(acc_lo);
        }
    }
}

const KernelTable kRef = {"ref",       ternary_gemm_ref, quantize_row_ref, ternary5_gemm_ref,
                          q8_gemv_ref, q4_gemv_ref,      q6_gemv_ref,      nullptr};

}  // namespace

const KernelTable& kernels_ref() { return kRef; }

void ternary5_gemm_reference(const PackedTernary& w, int block_begin, int block_end,
                             const QuantizedActs& acts, int32_t* out, size_t ld_out) {
    ternary5_gemm_ref(w, block_begin, block_end, acts, out, ld_out);
}

}  // namespace bitnet
