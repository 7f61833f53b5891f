// NEON kernel bodies, included by neon.cpp (widening multiplies, any AArch64 CPU) and by
// neon_dotprod.cpp (compiled with +dotprod, used only when the CPU reports it), each inside
// its own anonymous namespace with its own BITNET_NEON_DOT. Codes 0..2 (and the int8 head's
// weights, once their top bit is flipped) are used as signed bytes.

#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels.h"

#ifndef BITNET_NEON_DOT
#error "define BITNET_NEON_DOT before including neon_impl.h"
#endif

namespace bitnet {
namespace {

static inline int32x4_t dup_quad(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, sizeof v);
    return vdupq_n_s32(v);
}

// The dot-product step, supplied by the including file: DOT(acc, a, b) adds, in each int32
// lane, the sum of the 4 byte products of that lane.
// One 64-byte group = 4 vectors of 4 rows each; plane p of a vector = (v >> 2p) & 3 holds
// columns 4p..4p+3 of its 4 rows.
void ternary_gemm_neon(const PackedTernary& w, int block_begin, int block_end,
                       const QuantizedActs& acts, int32_t* out, size_t ld_out) {
    const int G = w.n_col_groups;
    const uint8x16_t mask = vdupq_n_u8(3);
    for (int b = block_begin; b < block_end; ++b) {
        const uint8_t* blk = w.codes + static_cast<size_t>(b) * G * kBlockBytes;
        for (int t = 0; t < acts.n_tokens; ++t) {
            const int8_t* x = acts.x + t * acts.stride;
            int32x4_t acc[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
            for (int g = 0; g < G; ++g) {
                const uint8_t* grp = blk + g * kBlockBytes;
                const int8x16_t x0 = vreinterpretq_s8_s32(dup_quad(x + g * kColGroup));
                const int8x16_t x1 = vreinterpretq_s8_s32(dup_quad(x + g * kColGroup + 4));
                const int8x16_t x2 = vreinterpretq_s8_s32(dup_quad(x + g * kColGroup + 8));
                const int8x16_t x3 = vreinterpretq_s8_s32(dup_quad(x + g * kColGroup + 12));
                for (int v = 0; v < 4; ++v) {
                    const uint8x16_t c = vld1q_u8(grp + 16 * v);
                    int32x4_t a = acc[v];
                    a = BITNET_NEON_DOT(a, vreinterpretq_s8_u8(vandq_u8(c, mask)), x0);
                    a = BITNET_NEON_DOT(a, vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(c, 2), mask)),
                                        x1);
                    a = BITNET_NEON_DOT(a, vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(c, 4), mask)),
                                        x2);
                    a = BITNET_NEON_DOT(a, vreinterpretq_s8_u8(vshrq_n_u8(c, 6)), x3);
                    acc[v] = a;
                }
            }
            const int32x4_t sum = vdupq_n_s32(acts.sums[t]);
            int32_t* o = out + t * ld_out + b * kRowBlock;
            for (int v = 0; v < 4; ++v) vst1q_s32(o + 4 * v, vsubq_s32(acc[v], sum));
        }
    }
}

void q8_gemv_neon(const uint8_t* codes, int n_col_quads, int block_begin, int block_end,
                  const int8_t* hi, int32_t /*hi_sum*/, const int8_t* lo, int32_t /*lo_sum*/,
                  int32_t* out_hi, int32_t* out_lo) {
    // Codes are w + 128; flipping the top bit gives w as a signed byte (no bias to remove).
    const uint8x16_t flip = vdupq_n_u8(0x80);
    for (int b = block_begin; b < block_end; ++b) {
        const uint8_t* blk = codes + static_cast<size_t>(b) * n_col_quads * kBlockBytes;
        int32x4_t ah[4], al[4];
        for (int v = 0; v < 4; ++v) ah[v] = al[v] = vdupq_n_s32(0);
        for (int q = 0; q < n_col_quads; ++q) {
            const int8x16_t xh = vreinterpretq_s8_s32(dup_quad(hi + 4 * q));
            const int8x16_t xl = vreinterpretq_s8_s32(dup_quad(lo + 4 * q));
            for (int v = 0; v < 4; ++v) {
                const int8x16_t wv =
                    vreinterpretq_s8_u8(veorq_u8(vld1q_u8(blk + q * kBlockBytes + 16 * v), flip));
                ah[v] = BITNET_NEON_DOT(ah[v], wv, xh);
                al[v] = BITNET_NEON_DOT(al[v], wv, xl);
            }
        }
        for (int v = 0; v < 4; ++v) {
            vst1q_s32(out_hi + b * kRowBlock + 4 * v, ah[v]);
            vst1q_s32(out_lo + b * kRowBlock + 4 * v, al[v]);
        }
    }
}

void q4_gemv_neon(const uint8_t* codes, int n_col_octets, int block_begin, int block_end,
                  const int8_t* x, int32_t x_sum, int32_t* out) {
    const uint8x16_t nibble = vdupq_n_u8(15);
    for (int b = block_begin; b < block_end; ++b) {
        const uint8_t* blk = codes + static_cast<size_t>(b) * n_col_octets * kBlockBytes;
        int32x4_t acc[4];
        for (int v = 0; v < 4; ++v) acc[v] = vdupq_n_s32(0);
        for (int q = 0; q < n_col_octets; ++q) {
            const int8x16_t x0 = vreinterpretq_s8_s32(dup_quad(x + 8 * q));
            const int8x16_t x1 = vreinterpretq_s8_s32(dup_quad(x + 8 * q + 4));
            for (int v = 0; v < 4; ++v) {
                const uint8x16_t c = vld1q_u8(blk + q * kBlockBytes + 16 * v);
                acc[v] = BITNET_NEON_DOT(acc[v], vreinterpretq_s8_u8(vandq_u8(c, nibble)), x0);
                acc[v] = BITNET_NEON_DOT(acc[v], vreinterpretq_s8_u8(vshrq_n_u8(c, 4)), x1);
            }
        }
        const int32x4_t off = vdupq_n_s32(8 * x_sum);
        for (int v = 0; v < 4; ++v) vst1q_s32(out + b * kRowBlock + 4 * v, vsubq_s32(acc[v], off));
    }
}

// Q6_R16 (see kernels.h). The signed dot product takes w and x as they are, so the stored
// correction (for the x86 kernels' unsigned operand) is not used. vsli puts the top 2 bits
// above the low nibble in one step.
void q6_gemv_neon(const uint8_t* data, int n_col_groups, int block_begin, int block_end,
                  const int8_t* hi, const int8_t* lo, int32_t* out_hi, int32_t* out_lo) {
    const uint8x16_t nibble = vdupq_n_u8(15), two = vdupq_n_u8(3), bias = vdupq_n_u8(32);
    const size_t block_bytes = q6_block_bytes(n_col_groups);
    for (int b = block_begin; b < block_end; ++b) {
        const uint8_t* blk = data + b * block_bytes;
        int32x4_t ah[4], al[4];
        for (int v = 0; v < 4; ++v) ah[v] = al[v] = vdupq_n_s32(0);
        for (int g = 0; g < n_col_groups; ++g) {
            const uint8_t* c = blk + q6_codes_offset(g);
            int8x16_t xh[4], xl[4];
            for (int p = 0; p < 4; ++p) {
                xh[p] = vreinterpretq_s8_s32(dup_quad(hi + g * kColGroup + 4 * p));
                xl[p] = vreinterpretq_s8_s32(dup_quad(lo + g * kColGroup + 4 * p));
            }
            for (int v = 0; v < 4; ++v) {
                const uint8x16_t n0 = vld1q_u8(c + 16 * v), n1 = vld1q_u8(c + 64 + 16 * v);
                const uint8x16_t t = vld1q_u8(c + 128 + 16 * v);
                const uint8x16_t u[4] = {
                    vsliq_n_u8(vandq_u8(n0, nibble), vandq_u8(t, two), 4),
                    vsliq_n_u8(vshrq_n_u8(n0, 4), vandq_u8(vshrq_n_u8(t, 2), two), 4),
                    vsliq_n_u8(vandq_u8(n1, nibble), vandq_u8(vshrq_n_u8(t, 4), two), 4),
                    vsliq_n_u8(vshrq_n_u8(n1, 4), vshrq_n_u8(t, 6), 4),
                };
                int32x4_t ph = vdupq_n_s32(0), pl = ph;
                for (int p = 0; p < 4; ++p) {
                    const int8x16_t w = vreinterpretq_s8_u8(vsubq_u8(u[p], bias));
                    ph = BITNET_NEON_DOT(ph, w, xh[p]);
                    pl = BITNET_NEON_DOT(pl, w, xl[p]);
                }
                uint8_t sv[8] = {0};
                std::memcpy(sv, blk + q6_scales_offset(g) + 4 * v, 4);
                const int32x4_t sc =
                    vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(vmovl_u8(vld1_u8(sv)))));
                ah[v] = vmlaq_s32(ah[v], ph, sc);
                al[v] = vmlaq_s32(al[v], pl, sc);
            }
        }
        for (int v = 0; v < 4; ++v) {
            vst1q_s32(out_hi + b * kRowBlock + 4 * v, ah[v]);
            vst1q_s32(out_lo + b * kRowBlock + 4 * v, al[v]);
        }
    }
}

inline float quantize_row_neon(const float* x, int n, int8_t* q, int32_t* sum) {
    float amax = 0.0f;
    for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float s = (1.0f / std::max(amax, 1e-5f)) * 127.0f;
    int32_t total = 0;
    int i = 0;
    const float32x4_t vs = vdupq_n_f32(s);
    int32x4_t vsum = vdupq_n_s32(0);
    for (; i + 4 <= n; i += 4) {
        // vrndnq: round to nearest, ties to even, like torch.round.
        float32x4_t v = vrndnq_f32(vmulq_f32(vld1q_f32(x + i), vs));
        v = vminq_f32(vmaxq_f32(v, vdupq_n_f32(-128.0f)), vdupq_n_f32(127.0f));
        const int32x4_t iv = vcvtq_s32_f32(v);
        vsum = vaddq_s32(vsum, iv);
        int32_t lanes[4];
        vst1q_s32(lanes, iv);
        for (int j = 0; j < 4; ++j) q[i + j] = static_cast<int8_t>(lanes[j]);
    }
    total = vaddvq_s32(vsum);
    for (; i < n; ++i) {
        float v = std::nearbyint(x[i] * s);
        v = std::min(127.0f, std::max(-128.0f, v));
        q[i] = static_cast<int8_t>(v);
        total += static_cast<int32_t>(v);
    }
    *sum = total;
    return s;
}

}  // namespace
}  // namespace bitnet
