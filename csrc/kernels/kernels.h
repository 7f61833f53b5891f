// Ternary matrix kernels: one implementation per ISA behind one function table.
//
// Weight layout "I2_R16" (shared by every kernel, built once at load by TernaryMatrix):
// rows are grouped in blocks of 16, columns in groups of 16. One block x group is 64 bytes:
// lane r (bytes 4r..4r+3) holds row r of the block; in byte j of the lane, the 2-bit field p
// holds the code of column 16*g + 4*p + j. Codes are w+1 in {0,1,2}. With this layout one
// 64-byte load, a shift by 2p and a mask give 16 lanes of 4 consecutive columns: exactly the
// operand shape of vpdpbusd (and of maddubs / sdot pairs on AVX2 / NEON).
//
// Activations are int8, one row per token, padded with zeros to the padded column count, plus
// the per-token sum of the int8 values: sum(code * x) = sum(w * x) + sum(x), so the kernels
// subtract it once per output.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bitnet {

constexpr int kRowBlock = 16;
constexpr int kColGroup = 16;
constexpr int kBlockBytes = kRowBlock * kColGroup / 4;  // 64

// Weight layout "I1_R16" (~1.6 bits per weight, the dense option): same 16-row blocks and
// 64-byte groups, but each byte holds 5 base-3 digits (3^5 = 243 <= 256): in byte j of lane r,
// digit d is the code of column 20*g + 4*d + j. Digit d of a whole group is again a vpdpbusd
// operand (16 lanes x 4 consecutive columns), so only the unpacking differs from I2_R16.
constexpr int kColGroup5 = 20;

struct PackedTernary {
    const uint8_t* codes;  // n_row_blocks * n_col_groups * 64 bytes
    int n_row_blocks;
    int n_col_groups;
};

// Quantized activations for n tokens: x[t * stride + k], k < n_col_groups * 16.
struct QuantizedActs {
    const int8_t* x;
    const int32_t* sums;
    size_t stride;
    int n_tokens;
};

// The two int8 activation terms of several tokens for q6_gemm, stored + 128 (x ^ 0x80, the
// unsigned operand of vpdpbusd): token t's terms at hi + t * stride and lo + t * stride.
struct BiasedHeadActs {
    const uint8_t* hi;
    const uint8_t* lo;
    size_t stride;
    int n_tokens;
};

struct KernelTable {
    const char* isa;
    // out[t * ld_out + 16*b + r] = sum_k w[16*b + r][k] * x[t][k] (exact int32) for row
    // blocks b in [block_begin, block_end) and every token.
    void (*ternary_gemm)(const PackedTernary& w, int block_begin, int block_end,
                         const QuantizedActs& acts, int32_t* out, size_t ld_out);
    // Per-token absmax int8 quantization, bit-exact with transformers' activation_quant:
    // s = (1 / max(max|x|, 1e-5)) * 127 (torch evaluates `127 / t` as reciprocal(t) * 127),
    // q = clamp(round_half_even(x * s), -128, 127).
    // Writes n values (the caller zero-fills the padding once), returns s and sum(q).
    float (*quantize_row)(const float* x, int n, int8_t* q, int32_t* sum);
    // As ternary_gemm, for the I1_R16 layout (n_col_groups counts 20-column groups).
    void (*ternary5_gemm)(const PackedTernary& w, int block_begin, int block_end,
                          const QuantizedActs& acts, int32_t* out, size_t ld_out);
    // The head kernels' activations are in [-127, 127]: the first term comes from
    // quantize_row, which never yields -128 (|x * s| <= 127 up to rounding), and the engine
    // clamps the second (residual) term to that range.
    // Output head, int8 weights ("Q8_R16": 16 rows x 4 columns per 64 bytes, lane r = 4
    // consecutive columns of row r, stored as w + 128), one token given as two int8 terms
    // (x ~ (256 * hi + lo) / (256 * s), so the head keeps ~15 bits of activation precision for
    // the price of one extra multiply per weight load, which is free in a memory-bound GEMV).
    // Only the combination is defined: 256 * out_hi[16b + r] + out_lo[16b + r] =
    // sum_k w * (256 * hi[k] + lo[k]); kernels that work on the int16 activation split it as
    // they can (the true value may exceed int32).
    void (*q8_gemv)(const uint8_t* codes, int n_col_quads, int block_begin, int block_end,
                    const int8_t* hi, int32_t hi_sum, const int8_t* lo, int32_t lo_sum,
                    int32_t* out_hi, int32_t* out_lo);
    // Output head, 4-bit weights ("Q4_R16": 16 rows x 8 columns per 64 bytes; in byte j of
    // lane r the low nibble is column 8q + j and the high nibble 8q + 4 + j, stored as w + 8).
    void (*q4_gemv)(const uint8_t* codes, int n_col_octets, int block_begin, int block_end,
                    const int8_t* x, int32_t x_sum, int32_t* out);
    // Output head, 6-bit weights with a 7-bit scale per row and 16 columns ("Q6_R16", below;
    // n_col_groups is a multiple of 4):
    // out_hi[16b + r] = sum_g s[r][g] * sum_{k in g} w * hi[k], out_lo likewise with lo.
    void (*q6_gemv)(const uint8_t* data, int n_col_groups, int block_begin, int block_end,
                    const int8_t* hi, const int8_t* lo, int32_t* out_hi, int32_t* out_lo);
    // As q6_gemv for several tokens at once (a batched decode step): each weight group is
    // unpacked once for all of them, which is what bounds the head once the step has a few
    // rows. Token t's outputs: out_hi[t * ld_out + 16 * (b - block_begin) + r], likewise
    // out_lo, the values q6_gemv gives. nullptr in tables without one (the head then calls
    // q6_gemv per token).
    void (*q6_gemm)(const uint8_t* data, int n_col_groups, int block_begin, int block_end,
                    const BiasedHeadActs& acts, int32_t* out_hi, int32_t* out_lo, size_t ld_out);
};

// Head layout "Q6_R16": weights w in [-31, 31] stored as u = w + 32 (6 bits), in 16-row blocks
// of `q6_block_bytes(n_col_groups)` bytes (n_col_groups a multiple of 4). A block is a run of
// 832-byte super-groups (4 groups of 16 columns, read in order: one sequential stream), then
// 16 int32 corrections. A super-group holds:
//   64 bytes of sub-scales: byte 16i + r is the scale s in [1, 127] of row r in its group i;
//   4 x 192 bytes of codes, per group: bytes [0, 64) columns 0..7 as in Q4_R16 (byte j of lane
//     r: low nibble = low 4 bits of column j, high nibble = column 4 + j), bytes [64, 128)
//     columns 8..15 the same way, bytes [128, 192) the top 2 bits as in I2_R16 (bits 2p, 2p+1
//     of byte j of lane r belong to column 4p + j).
// Corrections c[r] = 128 * sum_g s[r][g] * sum_{k in g} w let the x86 kernels feed x + 128 as
// vpdpbusd's unsigned operand and w as the signed one. The kernels' int32 arithmetic wraps,
// and the true result fits: the head caps s so that 31 * 127 * s_max * padded_cols < 2^31.
constexpr int kQ6GroupCodeBytes = 3 * kBlockBytes;                                  // 192
constexpr int kQ6GroupsPerSuper = 4;                                                // 64 columns
constexpr int kQ6SuperBytes = kBlockBytes + kQ6GroupsPerSuper * kQ6GroupCodeBytes;  // 832
inline size_t q6_block_bytes(int n_col_groups) {
    return static_cast<size_t>(n_col_groups / kQ6GroupsPerSuper) * kQ6SuperBytes +
           kRowBlock * sizeof(int32_t);
}
inline size_t q6_scales_offset(int g) {
    return static_cast<size_t>(g / kQ6GroupsPerSuper) * kQ6SuperBytes +
           (g % kQ6GroupsPerSuper) * kRowBlock;
}
inline size_t q6_codes_offset(int g) {
    return static_cast<size_t>(g / kQ6GroupsPerSuper) * kQ6SuperBytes + kBlockBytes +
           (g % kQ6GroupsPerSuper) * kQ6GroupCodeBytes;
}
inline size_t q6_corrections_offset(int n_col_groups) {
    return static_cast<size_t>(n_col_groups / kQ6GroupsPerSuper) * kQ6SuperBytes;
}

const KernelTable& kernels_ref();
const KernelTable* kernels_avx2();    // nullptr when not compiled in
const KernelTable* kernels_avx512();  // nullptr when not compiled in
const KernelTable* kernels_neon();    // nullptr when not compiled in
// The I1_R16 kernel of the AVX-512 VBMI file (byte permutes decode the base-3 digits).
using Ternary5Gemm = void (*)(const PackedTernary&, int, int, const QuantizedActs&, int32_t*,
                              size_t);
Ternary5Gemm ternary5_gemm_avx512_vbmi();  // nullptr when not compiled in
// The scalar I1_R16 kernel, used by ISAs without a faster one (NEON).
void ternary5_gemm_reference(const PackedTernary& w, int block_begin, int block_end,
                             const QuantizedActs& acts, int32_t* out, size_t ld_out);
bool cpu_has_avx512_vbmi();

// The kernel table for this CPU (or the one forced by BITNET_ISA=ref|avx2|avx512|neon).
// Throws std::runtime_error when the forced ISA cannot run here.
const KernelTable& select_kernels(const char* forced_isa);

}  // namespace bitnet
