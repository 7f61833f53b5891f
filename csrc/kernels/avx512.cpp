// AVX-512 VNNI kernels. vpdpbusd multiplies the unsigned 2-bit codes (w+1) by the signed int8
// activations, 4 per 32-bit lane, 16 rows per zmm; the +1 offset is removed once per output
// with the activation sum. Decode streams the weights once with independent accumulators;
// prefill reuses each unpacked 64-byte weight group across a tile of tokens.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "kernels.h"

namespace bitnet {
namespace {

// How far ahead decode prefetches its weight stream (bytes).
#ifndef BITNET_PREFETCH_BYTES
#define BITNET_PREFETCH_BYTES 2048
#endif
constexpr int kPrefetchBytes = BITNET_PREFETCH_BYTES;
// The output-head kernels prefetch further: one head row block is a 30-40 KB stream and the
// head is the largest read of a token (measured with _engine.kernel_head_bench).
constexpr int kHeadPrefetchBytes = 4096;

inline int32_t load_i32(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// The four code planes of one 64-byte group: plane p holds columns 4p..4p+3 of every row.
struct Planes {
    __m512i p0, p1, p2, p3;
};

inline Planes unpack(const uint8_t* group) {
    const __m512i mask = _mm512_set1_epi8(3);
    const __m512i w = _mm512_load_si512(group);
    return {_mm512_and_si512(w, mask), _mm512_and_si512(_mm512_srli_epi16(w, 2), mask),
            _mm512_and_si512(_mm512_srli_epi16(w, 4), mask),
            _mm512_and_si512(_mm512_srli_epi16(w, 6), mask)};
}

inline void store_rows(__m512i acc, int32_t sum, int32_t* out) {
    _mm512_storeu_si512(out, _mm512_sub_epi32(acc, _mm512_set1_epi32(sum)));
}

// One token: each row block is one sequential 64-byte-group stream, read with prefetch ahead;
// unrolling two groups gives eight independent accumulators to hide the vpdpbusd latency.
void gemv(const PackedTernary& w, int block_begin, int block_end, const int8_t* x, int32_t sum,
          int32_t* out) {
    const int G = w.n_col_groups;
    const size_t block_bytes = static_cast<size_t>(G) * kBlockBytes;
    for (int b = block_begin; b < block_end; ++b) {
        const uint8_t* w0 = w.codes + b * block_bytes;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        __m512i c0 = a0, c1 = a0, c2 = a0, c3 = a0;
        int g = 0;
        for (; g + 2 <= G; g += 2) {
            const uint8_t* grp = w0 + g * kBlockBytes;
            _mm_prefetch(reinterpret_cast<const char*>(grp + kPrefetchBytes), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(grp + kPrefetchBytes + 64), _MM_HINT_T0);
            const int8_t* xg = x + g * kColGroup;
            const Planes u = unpack(grp);
            const Planes v = unpack(grp + kBlockBytes);
            a0 = _mm512_dpbusd_epi32(a0, u.p0, _mm512_set1_epi32(load_i32(xg)));
            a1 = _mm512_dpbusd_epi32(a1, u.p1, _mm512_set1_epi32(load_i32(xg + 4)));
            a2 = _mm512_dpbusd_epi32(a2, u.p2, _mm512_set1_epi32(load_i32(xg + 8)));
            a3 = _mm512_dpbusd_epi32(a3, u.p3, _mm512_set1_epi32(load_i32(xg + 12)));
            c0 = _mm512_dpbusd_epi32(c0, v.p0, _mm512_set1_epi32(load_i32(xg + 16)));
            c1 = _mm512_dpbusd_epi32(c1, v.p1, _mm512_set1_epi32(load_i32(xg + 20)));
            c2 = _mm512_dpbusd_epi32(c2, v.p2, _mm512_set1_epi32(load_i32(xg + 24)));
            c3 = _mm512_dpbusd_epi32(c3, v.p3, _mm512_set1_epi32(load_i32(xg + 28)));
        }
        for (; g < G; ++g) {
            const int8_t* xg = x + g * kColGroup;
            const Planes u = unpack(w0 + g * kBlockBytes);
            a0 = _mm512_dpbusd_epi32(a0, u.p0, _mm512_set1_epi32(load_i32(xg)));
            a1 = _mm512_dpbusd_epi32(a1, u.p1, _mm512_set1_epi32(load_i32(xg + 4)));
            a2 = _mm512_dpbusd_epi32(a2, u.p2, _mm512_set1_epi32(load_i32(xg + 8)));
            a3 = _mm512_dpbusd_epi32(a3, u.p3, _mm512_set1_epi32(load_i32(xg + 12)));
        }
        a0 = _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3));
        c0 = _mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3));
        store_rows(_mm512_add_epi32(a0, c0), sum, out + b * kRowBlock);
    }
}

// NB row blocks x NT tokens register tile: each unpacked weight plane feeds NT tokens, each
// broadcast activation quad feeds NB row blocks. Planes are extracted one at a time just
// before use rather than all four first: fewer live registers. Wider tiles (2 x 10, 3 x 8)
// spill.
template <int NB, int NT>
void gemm_tile(const PackedTernary& w, int b, const QuantizedActs& acts, int t0, int32_t* out,
               size_t ld_out) {
    const int G = w.n_col_groups;
    const size_t block_bytes = static_cast<size_t>(G) * kBlockBytes;
    const __m512i mask = _mm512_set1_epi8(3);
    __m512i acc[NB][NT];
    for (int i = 0; i < NB; ++i) {
        for (int t = 0; t < NT; ++t) acc[i][t] = _mm512_setzero_si512();
    }
    const int8_t* x0 = acts.x + t0 * acts.stride;
    for (int g = 0; g < G; ++g) {
        __m512i packed[NB];
        for (int i = 0; i < NB; ++i) {
            packed[i] = _mm512_load_si512(w.codes + (b + i) * block_bytes + g * kBlockBytes);
        }
        for (int p = 0; p < 4; ++p) {
            __m512i plane[NB];
            for (int i = 0; i < NB; ++i) {
                plane[i] = _mm512_and_si512(_mm512_srli_epi16(packed[i], 2 * p), mask);
            }
            for (int t = 0; t < NT; ++t) {
                const int8_t* xg = x0 + t * acts.stride + g * kColGroup + 4 * p;
                const __m512i q = _mm512_set1_epi32(load_i32(xg));
                for (int i = 0; i < NB; ++i)
                    acc[i][t] = _mm512_dpbusd_epi32(acc[i][t], plane[i], q);
            }
        }
    }
    for (int i = 0; i < NB; ++i) {
        for (int t = 0; t < NT; ++t) {
            store_rows(acc[i][t], acts.sums[t0 + t], out + (t0 + t) * ld_out + (b + i) * kRowBlock);
        }
    }
}

using TileFn = void (*)(const PackedTernary&, int, const QuantizedActs&, int, int32_t*, size_t);

template <int NB, int... NT>
constexpr std::array<TileFn, sizeof...(NT)> tiles(std::integer_sequence<int, NT...>) {
    return {gemm_tile<NB, NT + 1>...};
}

// Tiles of 8 tokens, then one tile of the 1..7 left (each unpacked plane feeds them all).
template <int NB>
void gemm_blocks(const PackedTernary& w, int b, const QuantizedActs& acts, int32_t* out,
                 size_t ld_out) {
    static constexpr auto kTiles = tiles<NB>(std::make_integer_sequence<int, 8>{});
    int t = 0;
    for (; t + 8 <= acts.n_tokens; t += 8) gemm_tile<NB, 8>(w, b, acts, t, out, ld_out);
    if (t < acts.n_tokens) kTiles[acts.n_tokens - t - 1](w, b, acts, t, out, ld_out);
}

// A few tokens (a batched decode step, 2..kMaxStreamTokens rows): the weights stream once,
// as in gemv (one row block at a time, prefetch ahead), and each unpacked plane feeds every
// token. Planes go to SPLIT separate accumulators per token so that, with few tokens, the
// dependent vpdpbusd chains do not bound the stream (SPLIT * NT <= 16 registers). More tokens
// take the register tiles below, which also reuse each broadcast activation across two blocks.
constexpr int kMaxStreamTokens = 8;

template <int NT>
void gemm_stream(const PackedTernary& w, int block_begin, int block_end, const QuantizedActs& acts,
                 int32_t* out, size_t ld_out) {
    constexpr int SPLIT = NT <= 4 ? 4 : 2;
    const int G = w.n_col_groups;
    const size_t block_bytes = static_cast<size_t>(G) * kBlockBytes;
    const __m512i mask = _mm512_set1_epi8(3);
    for (int b = block_begin; b < block_end; ++b) {
        const uint8_t* w0 = w.codes + b * block_bytes;
        __m512i acc[SPLIT][NT];
        for (int s = 0; s < SPLIT; ++s) {
            for (int t = 0; t < NT; ++t) acc[s][t] = _mm512_setzero_si512();
        }
        for (int g = 0; g < G; ++g) {
            const uint8_t* grp = w0 + g * kBlockBytes;
            _mm_prefetch(reinterpret_cast<const char*>(grp + kPrefetchBytes), _MM_HINT_T0);
            const __m512i packed = _mm512_load_si512(grp);
            for (int p = 0; p < 4; ++p) {
                const __m512i plane = _mm512_and_si512(_mm512_srli_epi16(packed, 2 * p), mask);
                for (int t = 0; t < NT; ++t) {
                    const int8_t* xg = acts.x + t * acts.stride + g * kColGroup + 4 * p;
                    acc[p % SPLIT][t] = _mm512_dpbusd_epi32(acc[p % SPLIT][t], plane,
                                                            _mm512_set1_epi32(load_i32(xg)));
                }
            }
        }
        for (int t = 0; t < NT; ++t) {
            __m512i total = acc[0][t];
            for (int s = 1; s < SPLIT; ++s) total = _mm512_add_epi32(total, acc[s][t]);
            store_rows(total, acts.sums[t], out + t * ld_out + b * kRowBlock);
        }
    }
}

using GemmFn = void (*)(const PackedTernary&, int, int, const QuantizedActs&, int32_t*, size_t);

template <int... NT>
constexpr std::array<GemmFn, sizeof...(NT)> stream_kernels(std::integer_sequence<int, NT...>) {
    return {gemm_stream<NT + 1>...};
}

void ternary_gemm_avx512(const PackedTernary& w, int block_begin, int block_end,
                         const QuantizedActs& acts, int32_t* out, size_t ld_out) {
    if (acts.n_tokens == 1) {
        gemv(w, block_begin, block_end, acts.x, acts.sums[0], out);
        return;
    }
    if (acts.n_tokens <= kMaxStreamTokens) {
        static constexpr auto kStream =
            stream_kernels(std::make_integer_sequence<int, kMaxStreamTokens>{});
        kStream[acts.n_tokens - 1](w, block_begin, block_end, acts, out, ld_out);
        return;
    }
    int b = block_begin;
    for (; b + 2 <= block_end; b += 2) gemm_blocks<2>(w, b, acts, out, ld_out);
    for (; b < block_end; ++b) gemm_blocks<1>(w, b, acts, out, ld_out);
}

float quantize_row_avx512(const float* x, int n, int8_t* q, int32_t* sum) {
    __m512 vmax = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
    float amax = _mm512_reduce_max_ps(vmax);
    for (; i < n; ++i) amax = std::max(amax, x[i] < 0 ? -x[i] : x[i]);
    // torch evaluates `127 / t` as reciprocal(t) * 127: two roundings, kept for exactness.
    const float s = (1.0f / std::max(amax, 1e-5f)) * 127.0f;
    const __m512 vs = _mm512_set1_ps(s);
    const __m512 lo = _mm512_set1_ps(-128.0f), hi = _mm512_set1_ps(127.0f);
    __m512i vsum = _mm512_setzero_si512();
    i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + i), vs);
        v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        const __m512i iv = _mm512_cvtps_epi32(v);
        vsum = _mm512_add_epi32(vsum, iv);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtsepi32_epi8(iv));
    }
    int32_t total = _mm512_reduce_add_epi32(vsum);
    for (; i < n; ++i) {
        float v = __builtin_nearbyintf(x[i] * s);
        v = std::min(127.0f, std::max(-128.0f, v));
        q[i] = static_cast<int8_t>(v);
        total += static_cast<int32_t>(v);
    }
    *sum = total;
    return s;
}

// The I1_R16 kernel needs VBMI byte permutes; without them the AVX2 one runs (compares and
// pshufb), which every AVX-512 CPU can execute.
void ternary5_gemm_avx512(const PackedTernary& w, int block_begin, int block_end,
                          const QuantizedActs& acts, int32_t* out, size_t ld_out) {
    static const Ternary5Gemm impl = (cpu_has_avx512_vbmi() && ternary5_gemm_avx512_vbmi())
                                         ? ternary5_gemm_avx512_vbmi()
                                     : kernels_avx2() != nullptr ? kernels_avx2()->ternary5_gemm
                                                                 : ternary5_gemm_reference;
    impl(w, block_begin, block_end, acts, out, ld_out);
}

// Head GEMV: the head is the largest single read of a decode step, so two row blocks and
// four column steps are in flight (8 independent accumulators) with prefetch ahead.
void q8_gemv_avx512(const uint8_t* codes, int n_col_quads, int block_begin, int block_end,
                    const int8_t* hi, int32_t hi_sum, const int8_t* lo, int32_t lo_sum,
                    int32_t* out_hi, int32_t* out_lo) {
    const size_t block_bytes = static_cast<size_t>(n_col_quads) * kBlockBytes;
    for (int b = block_begin; b < block_end; ++b) {
        const uint8_t* w = codes + b * block_bytes;
        __m512i h0 = _mm512_setzero_si512(), h1 = h0, l0 = h0, l1 = h0;
        int q = 0;
        for (; q + 2 <= n_col_quads; q += 2) {
            const uint8_t* g = w + q * kBlockBytes;
            _mm_prefetch(reinterpret_cast<const char*>(g + kHeadPrefetchBytes), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(g + kHeadPrefetchBytes + 64), _MM_HINT_T0);
            const __m512i w0 = _mm512_load_si512(g), w1 = _mm512_load_si512(g + 64);
            h0 = _mm512_dpbusd_epi32(h0, w0, _mm512_set1_epi32(load_i32(hi + 4 * q)));
            l0 = _mm512_dpbusd_epi32(l0, w0, _mm512_set1_epi32(load_i32(lo + 4 * q)));
            h1 = _mm512_dpbusd_epi32(h1, w1, _mm512_set1_epi32(load_i32(hi + 4 * q + 4)));
            l1 = _mm512_dpbusd_epi32(l1, w1, _mm512_set1_epi32(load_i32(lo + 4 * q + 4)));
        }
        for (; q < n_col_quads; ++q) {
            const __m512i w0 = _mm512_load_si512(w + q * kBlockBytes);
            h0 = _mm512_dpbusd_epi32(h0, w0, _mm512_set1_epi32(load_i32(hi + 4 * q)));
            l0 = _mm512_dpbusd_epi32(l0, w0, _mm512_set1_epi32(load_i32(lo + 4 * q)));
        }
        _mm512_storeu_si512(
            out_hi + b * kRowBlock,
            _mm512_sub_epi32(_mm512_add_epi32(h0, h1), _mm512_set1_epi32(128 * hi_sum)));
        _mm512_storeu_si512(
            out_lo + b * kRowBlock,
            _mm512_sub_epi32(_mm512_add_epi32(l0, l1), _mm512_set1_epi32(128 * lo_sum)));
    }
}

void q4_gemv_avx512(const uint8_t* codes, int n_col_octets, int block_begin, int block_end,
                    const int8_t* x, int32_t x_sum, int32_t* out) {
    const size_t block_bytes = static_cast<size_t>(n_col_octets) * kBlockBytes;
    const __m512i offset = _mm512_set1_epi32(8 * x_sum);
    const __m512i nibble = _mm512_set1_epi8(15);
    for (int b = block_begin; b < block_end; ++b) {
        const uint8_t* w = codes + b * block_bytes;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        int q = 0;
        for (; q + 2 <= n_col_octets; q += 2) {
            const uint8_t* g = w + q * kBlockBytes;
            _mm_prefetch(reinterpret_cast<const char*>(g + kHeadPrefetchBytes), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(g + kHeadPrefetchBytes + 64), _MM_HINT_T0);
            const __m512i v0 = _mm512_load_si512(g), v1 = _mm512_load_si512(g + 64);
            const int8_t* xq = x + 8 * q;
            a0 = _mm512_dpbusd_epi32(a0, _mm512_and_si512(v0, nibble),
                                     _mm512_set1_epi32(load_i32(xq)));
            a1 = _mm512_dpbusd_epi32(a1, _mm512_and_si512(_mm512_srli_epi16(v0, 4), nibble),
                                     _mm512_set1_epi32(load_i32(xq + 4)));
            a2 = _mm512_dpbusd_epi32(a2, _mm512_and_si512(v1, nibble),
                                     _mm512_set1_epi32(load_i32(xq + 8)));
            a3 = _mm512_dpbusd_epi32(a3, _mm512_and_si512(_mm512_srli_epi16(v1, 4), nibble),
                                     _mm512_set1_epi32(load_i32(xq + 12)));
        }
        for (; q < n_col_octets; ++q) {
            const __m512i v0 = _mm512_load_si512(w + q * kBlockBytes);
            a0 = _mm512_dpbusd_epi32(a0, _mm512_and_si512(v0, nibble),
                                     _mm512_set1_epi32(load_i32(x + 8 * q)));
            a1 = _mm512_dpbusd_epi32(a1, _mm512_and_si512(_mm512_srli_epi16(v0, 4), nibble),
                                     _mm512_set1_epi32(load_i32(x + 8 * q + 4)));
        }
        const __m512i acc = _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3));
        _mm512_storeu_si512(out + b * kRowBlock, _mm512_sub_epi32(acc, offset));
    }
}

// The four quads of signed 6-bit weights of one Q6_R16 group: low nibbles | top bits << 4,
// minus the +32 offset.
struct Q6Quads {
    __m512i w0, w1, w2, w3;
};

inline Q6Quads unpack_q6(const uint8_t* c) {
    const __m512i nibble = _mm512_set1_epi8(15), top = _mm512_set1_epi8(0x30);
    const __m512i bias = _mm512_set1_epi8(32);
    constexpr int kOrMasked = 0xF8;  // a | (b & c)
    const __m512i v0 = _mm512_load_si512(c), v1 = _mm512_load_si512(c + 64);
    const __m512i t = _mm512_load_si512(c + 128);
    const auto quad = [&](__m512i low, __m512i high) {
        return _mm512_sub_epi8(_mm512_ternarylogic_epi32(low, high, top, kOrMasked), bias);
    };
    return {quad(_mm512_and_si512(v0, nibble), _mm512_slli_epi16(t, 4)),
            quad(_mm512_and_si512(_mm512_srli_epi16(v0, 4), nibble), _mm512_slli_epi16(t, 2)),
            quad(_mm512_and_si512(v1, nibble), t),
            quad(_mm512_and_si512(_mm512_srli_epi16(v1, 4), nibble), _mm512_srli_epi16(t, 2))};
}

// The head stream kHeadPrefetchBytes ahead of group g's 192 code bytes (at ``codes``). A
// super-group opens with 64 bytes of sub-scales before its first group's codes: its first group
// fetches that line ahead too, so the whole 832-byte super-group stream is covered.
inline void prefetch_q6_group(const uint8_t* codes, int g) {
    if (g % kQ6GroupsPerSuper == 0) {
        _mm_prefetch(reinterpret_cast<const char*>(codes - kBlockBytes + kHeadPrefetchBytes),
                     _MM_HINT_T0);
    }
    _mm_prefetch(reinterpret_cast<const char*>(codes + kHeadPrefetchBytes), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(codes + kHeadPrefetchBytes + 64), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(codes + kHeadPrefetchBytes + 128), _MM_HINT_T0);
}

// Per 16-column group: rebuild the four quads of 6-bit codes (low nibbles | top bits << 4), make
// them signed, dot them with x + 128 (vpdpbusd's unsigned operand), scale the group's sums by
// the rows' sub-scales; the stored correction removes the +128 at the end.
void q6_gemv_avx512(const uint8_t* data, int n_col_groups, int block_begin, int block_end,
                    const int8_t* hi, const int8_t* lo, int32_t* out_hi, int32_t* out_lo) {
    const size_t block_bytes = q6_block_bytes(n_col_groups);
    // Four activations, each + 128 (top bit flipped), in every lane.
    const auto bcast = [](const int8_t* p) {
        return _mm512_set1_epi32(load_i32(p) ^ static_cast<int32_t>(0x80808080u));
    };
    for (int b = block_begin; b < block_end; ++b) {
        const uint8_t* blk = data + b * block_bytes;
        __m512i acc_h = _mm512_setzero_si512(), acc_l = acc_h;
        for (int g = 0; g < n_col_groups; ++g) {
            const uint8_t* c = blk + q6_codes_offset(g);
            prefetch_q6_group(c, g);
            const Q6Quads w = unpack_q6(c);
            const int8_t* xh = hi + g * kColGroup;
            const int8_t* xl = lo + g * kColGroup;
            __m512i ph = _mm512_dpbusd_epi32(_mm512_setzero_si512(), bcast(xh), w.w0);
            __m512i pl = _mm512_dpbusd_epi32(_mm512_setzero_si512(), bcast(xl), w.w0);
            ph = _mm512_dpbusd_epi32(ph, bcast(xh + 4), w.w1);
            pl = _mm512_dpbusd_epi32(pl, bcast(xl + 4), w.w1);
            ph = _mm512_dpbusd_epi32(ph, bcast(xh + 8), w.w2);
            pl = _mm512_dpbusd_epi32(pl, bcast(xl + 8), w.w2);
            ph = _mm512_dpbusd_epi32(ph, bcast(xh + 12), w.w3);
            pl = _mm512_dpbusd_epi32(pl, bcast(xl + 12), w.w3);
            const __m512i s = _mm512_cvtepu8_epi32(
                _mm_load_si128(reinterpret_cast<const __m128i*>(blk + q6_scales_offset(g))));
            acc_h = _mm512_add_epi32(acc_h, _mm512_mullo_epi32(ph, s));
            acc_l = _mm512_add_epi32(acc_l, _mm512_mullo_epi32(pl, s));
        }
        const __m512i corr = _mm512_load_si512(blk + q6_corrections_offset(n_col_groups));
        _mm512_storeu_si512(out_hi + b * kRowBlock, _mm512_sub_epi32(acc_h, corr));
        _mm512_storeu_si512(out_lo + b * kRowBlock, _mm512_sub_epi32(acc_l, corr));
    }
}

// NT tokens from token t0 over each unpacked group: per token only the eight vpdpbusd and
// the two sub-scale multiplies remain. The activations come biased, so each broadcast is a
// plain load (no ALU work). 2 * NT accumulators + the group stay in registers up to NT = 8.
template <int NT>
void q6_gemm_tile(const uint8_t* data, int n_col_groups, int block_begin, int block_end,
                  const BiasedHeadActs& x, int t0, int32_t* out_hi, int32_t* out_lo,
                  size_t ld_out) {
    const size_t block_bytes = q6_block_bytes(n_col_groups);
    const auto bcast = [](const uint8_t* p) {
        int32_t v;
        std::memcpy(&v, p, sizeof v);
        return _mm512_set1_epi32(v);
    };
    for (int b = block_begin; b < block_end; ++b) {
        const uint8_t* blk = data + b * block_bytes;
        __m512i acc_h[NT], acc_l[NT];
        for (int t = 0; t < NT; ++t) acc_h[t] = acc_l[t] = _mm512_setzero_si512();
        for (int g = 0; g < n_col_groups; ++g) {
            const uint8_t* c = blk + q6_codes_offset(g);
            prefetch_q6_group(c, g);
            const Q6Quads w = unpack_q6(c);
            const __m512i s = _mm512_cvtepu8_epi32(
                _mm_load_si128(reinterpret_cast<const __m128i*>(blk + q6_scales_offset(g))));
            for (int t = 0; t < NT; ++t) {
                const uint8_t* xh = x.hi + (t0 + t) * x.stride + g * kColGroup;
                const uint8_t* xl = x.lo + (t0 + t) * x.stride + g * kColGroup;
                __m512i ph = _mm512_dpbusd_epi32(_mm512_setzero_si512(), bcast(xh), w.w0);
                __m512i pl = _mm512_dpbusd_epi32(_mm512_setzero_si512(), bcast(xl), w.w0);
                ph = _mm512_dpbusd_epi32(ph, bcast(xh + 4), w.w1);
                pl = _mm512_dpbusd_epi32(pl, bcast(xl + 4), w.w1);
                ph = _mm512_dpbusd_epi32(ph, bcast(xh + 8), w.w2);
                pl = _mm512_dpbusd_epi32(pl, bcast(xl + 8), w.w2);
                ph = _mm512_dpbusd_epi32(ph, bcast(xh + 12), w.w3);
                pl = _mm512_dpbusd_epi32(pl, bcast(xl + 12), w.w3);
                acc_h[t] = _mm512_add_epi32(acc_h[t], _mm512_mullo_epi32(ph, s));
                acc_l[t] = _mm512_add_epi32(acc_l[t], _mm512_mullo_epi32(pl, s));
            }
        }
        const __m512i corr = _mm512_load_si512(blk + q6_corrections_offset(n_col_groups));
        const size_t at = static_cast<size_t>(b - block_begin) * kRowBlock;
        for (int t = 0; t < NT; ++t) {
            const size_t row = (t0 + t) * ld_out + at;
            _mm512_storeu_si512(out_hi + row, _mm512_sub_epi32(acc_h[t], corr));
            _mm512_storeu_si512(out_lo + row, _mm512_sub_epi32(acc_l[t], corr));
        }
    }
}

constexpr int kQ6TileTokens = 8;

using Q6TileFn = void (*)(const uint8_t*, int, int, int, const BiasedHeadActs&, int, int32_t*,
                          int32_t*, size_t);

template <int... NT>
constexpr std::array<Q6TileFn, sizeof...(NT)> q6_tiles(std::integer_sequence<int, NT...>) {
    return {q6_gemm_tile<NT + 1>...};
}

// Block by block: tiles of 8 tokens, then one of the 1..7 left (a later tile re-reads the
// block from L1/L2, never from memory).
void q6_gemm_avx512(const uint8_t* data, int n_col_groups, int block_begin, int block_end,
                    const BiasedHeadActs& acts, int32_t* out_hi, int32_t* out_lo, size_t ld_out) {
    static constexpr auto kTiles = q6_tiles(std::make_integer_sequence<int, kQ6TileTokens>{});
    for (int b = block_begin; b < block_end; ++b) {
        const size_t at = static_cast<size_t>(b - block_begin) * kRowBlock;
        for (int t = 0; t < acts.n_tokens; t += kQ6TileTokens) {
            const int nt = std::min(kQ6TileTokens, acts.n_tokens - t);
            kTiles[nt - 1](data, n_col_groups, b, b + 1, acts, t, out_hi + at, out_lo + at, ld_out);
        }
    }
}

const KernelTable kAvx512 = {
    "avx512",       ternary_gemm_avx512, quantize_row_avx512, ternary5_gemm_avx512,
    q8_gemv_avx512, q4_gemv_avx512,      q6_gemv_avx512,      q6_gemm_avx512};

}  // namespace

const KernelTable* kernels_avx512() { return &kAvx512; }

}  // namespace bitnet
