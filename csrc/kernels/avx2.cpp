// AVX2 kernels. No VNNI here: maddubs multiplies the unsigned codes by the int8 activations
// into int16 pairs (|2 * 2 * 128| fits easily), the column planes of several groups are
// summed in int16 and widened once with madd. 8 rows per ymm, 2 ymm per block.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels.h"

namespace bitnet {
namespace {

inline int32_t load_i32(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// Vector µops are the limit here (on a Zen 1 core a ymm maddubs or madd issues every
// other cycle, an add every cycle), so the int16 pair sums of kWidenGroups groups are added
// up before the widening madd, and each half-group is unpacked once per token tile. Each
// maddubs pair is at most 2 * 2 * 128 = 512 in magnitude, a group's four (I2_R16) or five
// (I1_R16) planes 2560, 8 groups 20480: inside int16.
constexpr int kWidenGroups = 8;

inline __m256i widen(__m256i s16) { return _mm256_madd_epi16(s16, _mm256_set1_epi16(1)); }

// GCC regroups a loop's int16 sums into trees of maddubs results (integer adds reassociate
// freely), computes many of them ahead and keeps them, and then the accumulators, on the stack:
// the multiply-add loops become bound by spill loads and stores instead of the multiplies. An
// empty asm that wants the accumulator in a register after each add keeps the adds in the
// written order, one register per accumulator, and costs no instruction (benchmarks/README.md,
// "Measured design choices").
inline void keep_in_register(__m256i& v) { __asm__("" : "+x"(v)); }

template <int P>
struct Planes {
    __m256i c[P];
};

// I2_R16: the four code planes of one 32-byte half-group (8 rows x 16 columns).
struct TwoBit {
    static constexpr int kPlanes = 4;
    static constexpr int kCols = kColGroup;
    static Planes<kPlanes> unpack(const uint8_t* half_group) {
        const __m256i mask = _mm256_set1_epi8(3);
        const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(half_group));
        return {{_mm256_and_si256(w, mask), _mm256_and_si256(_mm256_srli_epi16(w, 2), mask),
                 _mm256_and_si256(_mm256_srli_epi16(w, 4), mask),
                 _mm256_and_si256(_mm256_srli_epi16(w, 6), mask)}};
    }
};

// I1_R16: the five base-3 digits of every byte of one half-group (8 rows x 20 columns),
// without byte permutes or multiplies. Digits 4, 3, 2 (most significant first): digit =
// (v >= p) + (v >= 2p) from two signed compares on v - 128, then p * digit (a pshufb table)
// comes off v; what remains is below 9, so digits 1 and 0 are two pshufb lookups of it.
struct Base3 {
    static constexpr int kPlanes = 5;
    static constexpr int kCols = kColGroup5;
    static __m256i table(int a, int b, int c, int d, int e, int f, int g, int h, int i) {
        const __m128i t = _mm_setr_epi8(
            static_cast<char>(a), static_cast<char>(b), static_cast<char>(c), static_cast<char>(d),
            static_cast<char>(e), static_cast<char>(f), static_cast<char>(g), static_cast<char>(h),
            static_cast<char>(i), 0, 0, 0, 0, 0, 0, 0);
        return _mm256_broadcastsi128_si256(t);
    }
    static Planes<kPlanes> unpack(const uint8_t* half_group) {
        const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
        __m256i s =
            _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(half_group)), bias);
        Planes<kPlanes> out;
        for (int d = 4, p = 81; d >= 2; --d, p /= 3) {
            const __m256i ge1 = _mm256_cmpgt_epi8(s, _mm256_set1_epi8(static_cast<char>(p - 129)));
            const __m256i ge2 =
                _mm256_cmpgt_epi8(s, _mm256_set1_epi8(static_cast<char>(2 * p - 129)));
            const __m256i digit = _mm256_abs_epi8(_mm256_add_epi8(ge1, ge2));
            s = _mm256_sub_epi8(s,
                                _mm256_shuffle_epi8(table(0, p, 2 * p, 0, 0, 0, 0, 0, 0), digit));
            out.c[d] = digit;
        }
        const __m256i low = _mm256_xor_si256(s, bias);  // 3 * digit 1 + digit 0, below 9
        out.c[1] = _mm256_shuffle_epi8(table(0, 0, 0, 1, 1, 1, 2, 2, 2), low);
        out.c[0] = _mm256_shuffle_epi8(table(0, 1, 2, 0, 1, 2, 0, 1, 2), low);
        return out;
    }
};

// Sum over the columns of one group for 8 rows, as int16 pairs (not yet widened).
template <int P>
inline __m256i group_dot16(const Planes<P>& p, const int8_t* xg) {
    __m256i s = _mm256_maddubs_epi16(p.c[0], _mm256_set1_epi32(load_i32(xg)));
    for (int d = 1; d < P; ++d) {
        s = _mm256_add_epi16(s,
                             _mm256_maddubs_epi16(p.c[d], _mm256_set1_epi32(load_i32(xg + 4 * d))));
    }
    return s;
}

// One token, one row block: two 8-row halves, int16 sums widened every kWidenGroups groups.
template <class L>
void gemv_block(const uint8_t* blk, int G, const int8_t* x, int32_t sum, int32_t* out) {
    __m256i lo = _mm256_setzero_si256(), hi = lo;
    for (int g0 = 0; g0 < G; g0 += kWidenGroups) {
        const int g1 = std::min(G, g0 + kWidenGroups);
        __m256i lo16 = _mm256_setzero_si256(), hi16 = lo16;
        for (int g = g0; g < g1; ++g) {
            const uint8_t* grp = blk + g * kBlockBytes;
            _mm_prefetch(reinterpret_cast<const char*>(grp + 1024), _MM_HINT_T0);
            const int8_t* xg = x + g * L::kCols;
            lo16 = _mm256_add_epi16(lo16, group_dot16(L::unpack(grp), xg));
            hi16 = _mm256_add_epi16(hi16, group_dot16(L::unpack(grp + 32), xg));
        }
        lo = _mm256_add_epi32(lo, widen(lo16));
        hi = _mm256_add_epi32(hi, widen(hi16));
    }
    const __m256i s = _mm256_set1_epi32(sum);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_sub_epi32(lo, s));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8), _mm256_sub_epi32(hi, s));
}

// NT tokens x one 8-row half of a block: the half-group is unpacked once and feeds every
// token (AVX2 has 16 vector registers: 4-5 planes + NT int16 and NT int32 sums).
template <class L, int NT>
void gemm_half_tile(const PackedTernary& w, int b, int half, const QuantizedActs& acts, int t0,
                    int32_t* out, size_t ld_out) {
    const int G = w.n_col_groups;
    const uint8_t* blk = w.codes + static_cast<size_t>(b) * G * kBlockBytes + 32 * half;
    __m256i acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_si256();
    const int8_t* x0 = acts.x + t0 * acts.stride;
    for (int g0 = 0; g0 < G; g0 += kWidenGroups) {
        const int g1 = std::min(G, g0 + kWidenGroups);
        __m256i s16[NT];
        for (int t = 0; t < NT; ++t) s16[t] = _mm256_setzero_si256();
        for (int g = g0; g < g1; ++g) {
            _mm_prefetch(reinterpret_cast<const char*>(blk + g * kBlockBytes + 1024), _MM_HINT_T0);
            const auto p = L::unpack(blk + g * kBlockBytes);
            for (int t = 0; t < NT; ++t) {
                s16[t] =
                    _mm256_add_epi16(s16[t], group_dot16(p, x0 + t * acts.stride + g * L::kCols));
            }
        }
        for (int t = 0; t < NT; ++t) acc[t] = _mm256_add_epi32(acc[t], widen(s16[t]));
    }
    for (int t = 0; t < NT; ++t) {
        int32_t* o = out + (t0 + t) * ld_out + b * kRowBlock + 8 * half;
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o),
                            _mm256_sub_epi32(acc[t], _mm256_set1_epi32(acts.sums[t0 + t])));
    }
}

// Prefill (many tokens): each chunk of kWidenGroups groups of a row block is unpacked once into
// a small buffer that stays in L1, and every token of the step reads its planes from there, so
// the unpack no longer grows with the token count; each broadcast activation quad feeds both
// 8-row halves. Per token and group only the maddubs + add pairs remain.
constexpr int kPanelTokens = 4;  // 2 * 4 int16 sums + 2 planes + 1 broadcast of 16 ymm
// Row blocks unpacked side by side: a token tile's activations, which come from L2 (all tokens
// of a chunk do not fit in L1 next to the planes), then feed kPanelBlocks blocks while in L1
// instead of one. Their planes (8 KiB for I2_R16, 10 KiB for I1_R16) stay in a 32 KiB L1
// (benchmarks/README.md, "Measured design choices").
constexpr int kPanelBlocks = 4;
// From 5 tokens on, the half tiles below would unpack every half-group twice.
constexpr int kPanelMinTokens = 5;

// Both halves' planes of up to kWidenGroups groups: plane p of half h of chunk group g at
// [(2 * g + h) * kPlanes + p].
template <class L>
using PanelChunk = __m256i[kWidenGroups * 2 * L::kPlanes];

template <class L>
void unpack_chunk(const uint8_t* groups, int n_groups, __m256i* planes) {
    for (int g = 0; g < n_groups; ++g) {
        for (int half = 0; half < 2; ++half) {
            const auto p = L::unpack(groups + g * kBlockBytes + 32 * half);
            for (int d = 0; d < L::kPlanes; ++d) planes[(2 * g + half) * L::kPlanes + d] = p.c[d];
        }
    }
}

// NT tokens over one unpacked chunk: out (16 rows per token) is stored on the first chunk,
// added to on the later ones, and the activation sum comes off on the last (sums != nullptr).
template <class L, int NT>
void panel_tile(const __m256i* planes, int n_groups, const int8_t* x, size_t stride, int32_t* out,
                size_t ld_out, bool first, const int32_t* sums) {
    __m256i lo[NT], hi[NT];
    for (int t = 0; t < NT; ++t) lo[t] = hi[t] = _mm256_setzero_si256();
    for (int g = 0; g < n_groups; ++g) {
        const __m256i* pg = planes + 2 * g * L::kPlanes;
        for (int d = 0; d < L::kPlanes; ++d) {
            const __m256i a = _mm256_load_si256(pg + d);
            const __m256i b = _mm256_load_si256(pg + L::kPlanes + d);
            for (int t = 0; t < NT; ++t) {
                const __m256i q =
                    _mm256_set1_epi32(load_i32(x + t * stride + g * L::kCols + 4 * d));
                lo[t] = _mm256_add_epi16(lo[t], _mm256_maddubs_epi16(a, q));
                hi[t] = _mm256_add_epi16(hi[t], _mm256_maddubs_epi16(b, q));
                keep_in_register(lo[t]);
                keep_in_register(hi[t]);
            }
        }
    }
    for (int t = 0; t < NT; ++t) {
        int32_t* o = out + t * ld_out;
        __m256i l = widen(lo[t]), h = widen(hi[t]);
        if (!first) {
            l = _mm256_add_epi32(l, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o)));
            h = _mm256_add_epi32(h, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o + 8)));
        }
        if (sums != nullptr) {
            const __m256i s = _mm256_set1_epi32(sums[t]);
            l = _mm256_sub_epi32(l, s);
            h = _mm256_sub_epi32(h, s);
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), l);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 8), h);
    }
}

template <class L>
void gemm_panel(const PackedTernary& w, int block_begin, int block_end, const QuantizedActs& acts,
                int32_t* out, size_t ld_out) {
    const int G = w.n_col_groups, n = acts.n_tokens;
    const size_t stride = acts.stride;
    PanelChunk<L> planes[kPanelBlocks];
    for (int b0 = block_begin; b0 < block_end; b0 += kPanelBlocks) {
        const int n_blocks = std::min(kPanelBlocks, block_end - b0);
        for (int g0 = 0; g0 < G; g0 += kWidenGroups) {
            const int ng = std::min(kWidenGroups, G - g0);
            for (int i = 0; i < n_blocks; ++i) {
                const uint8_t* blk = w.codes + static_cast<size_t>(b0 + i) * G * kBlockBytes;
                unpack_chunk<L>(blk + g0 * kBlockBytes, ng, planes[i]);
            }
            const bool first = g0 == 0, last = g0 + ng == G;
            const int8_t* x = acts.x + g0 * L::kCols;
            const auto tile = [&](auto nt, int t) {
                for (int i = 0; i < n_blocks; ++i) {
                    panel_tile<L, decltype(nt)::value>(planes[i], ng, x + t * stride, stride,
                                                       out + (b0 + i) * kRowBlock + t * ld_out,
                                                       ld_out, first,
                                                       last ? acts.sums + t : nullptr);
                }
            };
            int t = 0;
            for (; t + kPanelTokens <= n; t += kPanelTokens)
                tile(std::integral_constant<int, kPanelTokens>{}, t);
            switch (n - t) {
                case 3:
                    tile(std::integral_constant<int, 3>{}, t);
                    break;
                case 2:
                    tile(std::integral_constant<int, 2>{}, t);
                    break;
                case 1:
                    tile(std::integral_constant<int, 1>{}, t);
                    break;
                default:
                    break;
            }
        }
    }
}

template <class L>
void gemm(const PackedTernary& w, int block_begin, int block_end, const QuantizedActs& acts,
          int32_t* out, size_t ld_out) {
    const int G = w.n_col_groups;
    if (acts.n_tokens == 1) {
        for (int b = block_begin; b < block_end; ++b) {
            gemv_block<L>(w.codes + static_cast<size_t>(b) * G * kBlockBytes, G, acts.x,
                          acts.sums[0], out + b * kRowBlock);
        }
        return;
    }
    if (acts.n_tokens >= kPanelMinTokens) {
        gemm_panel<L>(w, block_begin, block_end, acts, out, ld_out);
        return;
    }
    // 2..4 tokens (a small batched decode step): one tile, each half-group unpacked once for
    // all of them.
    for (int b = block_begin; b < block_end; ++b) {
        for (int half = 0; half < 2; ++half) {
            switch (acts.n_tokens) {
                case 4:
                    gemm_half_tile<L, 4>(w, b, half, acts, 0, out, ld_out);
                    break;
                case 3:
                    gemm_half_tile<L, 3>(w, b, half, acts, 0, out, ld_out);
                    break;
                case 2:
                    gemm_half_tile<L, 2>(w, b, half, acts, 0, out, ld_out);
                    break;
                default:
                    break;
            }
        }
    }
}

void ternary_gemm_avx2(const PackedTernary& w, int block_begin, int block_end,
                       const QuantizedActs& acts, int32_t* out, size_t ld_out) {
    gemm<TwoBit>(w, block_begin, block_end, acts, out, ld_out);
}

void ternary5_gemm_avx2(const PackedTernary& w, int block_begin, int block_end,
                        const QuantizedActs& acts, int32_t* out, size_t ld_out) {
    gemm<Base3>(w, block_begin, block_end, acts, out, ld_out);
}

float quantize_row_avx2(const float* x, int n, int8_t* q, int32_t* sum) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 vmax = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8)
        vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, vmax);
    float amax = 0.0f;
    for (float v : lanes) amax = std::max(amax, v);
    for (; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
    // torch evaluates `127 / t` as reciprocal(t) * 127: two roundings, kept for exactness.
    const float s = (1.0f / std::max(amax, 1e-5f)) * 127.0f;
    const __m256 vs = _mm256_set1_ps(s);
    const __m256 lo = _mm256_set1_ps(-128.0f), hi = _mm256_set1_ps(127.0f);
    __m256i vsum = _mm256_setzero_si256();
    i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
        const __m256i iv = _mm256_cvtps_epi32(v);
        vsum = _mm256_add_epi32(vsum, iv);
        alignas(32) int32_t tmp[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), iv);
        for (int j = 0; j < 8; ++j) q[i + j] = static_cast<int8_t>(tmp[j]);
    }
    alignas(32) int32_t parts[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(parts), vsum);
    int32_t total = 0;
    for (int32_t p : parts) total += p;
    for (; i < n; ++i) {
        float v = std::nearbyint(x[i] * s);
        v = std::min(127.0f, std::max(-128.0f, v));
        q[i] = static_cast<int8_t>(v);
        total += static_cast<int32_t>(v);
    }
    *sum = total;
    return s;
}

// Head GEMV without VNNI. The two activation terms are one int16 activation x = 256 * hi + lo
// (the engine quantizes lo on 256x the scale of hi), and madd multiplies it by the codes
// w + 128 zero-extended to int16: one madd per 16 weights, where int8 operands need a maddubs,
// a madd and sign fixes per term, so the multiply µops that bound this GEMV on a Zen 1 core
// halve and it runs near the read bandwidth. The int32 sums wrap, but the true sum of one chunk
// (127 * 32639 * 512 < 2^31) fits, so a chunk is exact once its bias 128 * sum(x) is removed;
// it then goes out as out_hi += chunk >> 8, out_lo += chunk & 255, which keeps
// 256 * out_hi + out_lo exact.
constexpr int kHeadChunkQuads = 128;   // 512 columns
constexpr int kHeadPanelQuads = 4096;  // int16 activations of 16384 columns: 32 KiB of stack

inline int64_t load_i64(const int16_t* p) {
    int64_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// Row sums of one chunk for rows 0-7 from the pair sums of rows 0-3 (a) and 4-7 (b).
inline __m256i row_sums(__m256i a, __m256i b) {
    // hadd gives rows 0 1 4 5 | 2 3 6 7; the 64-bit permute puts them in order.
    return _mm256_permute4x64_epi64(_mm256_hadd_epi32(a, b), 0xD8);
}

void q8_gemv_avx2(const uint8_t* codes, int n_col_quads, int block_begin, int block_end,
                  const int8_t* hi, int32_t /*hi_sum*/, const int8_t* lo, int32_t /*lo_sum*/,
                  int32_t* out_hi, int32_t* out_lo) {
    const size_t block_bytes = static_cast<size_t>(n_col_quads) * kBlockBytes;
    alignas(32) int16_t x16[4 * kHeadPanelQuads];
    int32_t chunk_bias[kHeadPanelQuads / kHeadChunkQuads];
    const __m256i low_byte = _mm256_set1_epi32(255);
    for (int b = block_begin; b < block_end; ++b) {
        std::fill_n(out_hi + b * kRowBlock, kRowBlock, 0);
        std::fill_n(out_lo + b * kRowBlock, kRowBlock, 0);
    }
    for (int p0 = 0; p0 < n_col_quads; p0 += kHeadPanelQuads) {
        const int p1 = std::min(n_col_quads, p0 + kHeadPanelQuads);
        for (int c0 = p0; c0 < p1; c0 += kHeadChunkQuads) {
            int32_t sum = 0;
            for (int k = 4 * c0; k < 4 * std::min(p1, c0 + kHeadChunkQuads); ++k) {
                const int v = 256 * hi[k] + lo[k];
                x16[k - 4 * p0] = static_cast<int16_t>(v);
                sum += v;
            }
            chunk_bias[(c0 - p0) / kHeadChunkQuads] = 128 * sum;
        }
        for (int b = block_begin; b < block_end; ++b) {
            const uint8_t* w = codes + b * block_bytes;
            int32_t* oh = out_hi + b * kRowBlock;
            int32_t* ol = out_lo + b * kRowBlock;
            __m256i h0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(oh));
            __m256i h1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(oh + 8));
            __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ol));
            __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ol + 8));
            for (int c0 = p0; c0 < p1; c0 += kHeadChunkQuads) {
                __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(),
                                  _mm256_setzero_si256(), _mm256_setzero_si256()};
                const int c1 = std::min(p1, c0 + kHeadChunkQuads);
                for (int q = c0; q < c1; ++q) {
                    const uint8_t* g = w + q * kBlockBytes;
                    _mm_prefetch(reinterpret_cast<const char*>(g + 2048), _MM_HINT_T0);
                    const __m256i x = _mm256_set1_epi64x(load_i64(x16 + 4 * (q - p0)));
                    for (int v = 0; v < 4; ++v) {
                        const __m256i codes16 = _mm256_cvtepu8_epi16(
                            _mm_loadu_si128(reinterpret_cast<const __m128i*>(g + 16 * v)));
                        acc[v] = _mm256_add_epi32(acc[v], _mm256_madd_epi16(codes16, x));
                    }
                }
                const __m256i bias = _mm256_set1_epi32(chunk_bias[(c0 - p0) / kHeadChunkQuads]);
                const __m256i r0 = _mm256_sub_epi32(row_sums(acc[0], acc[1]), bias);
                const __m256i r1 = _mm256_sub_epi32(row_sums(acc[2], acc[3]), bias);
                h0 = _mm256_add_epi32(h0, _mm256_srai_epi32(r0, 8));
                h1 = _mm256_add_epi32(h1, _mm256_srai_epi32(r1, 8));
                l0 = _mm256_add_epi32(l0, _mm256_and_si256(r0, low_byte));
                l1 = _mm256_add_epi32(l1, _mm256_and_si256(r1, low_byte));
            }
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(oh), h0);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(oh + 8), h1);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(ol), l0);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(ol + 8), l1);
        }
    }
}

void q4_gemv_avx2(const uint8_t* codes, int n_col_octets, int block_begin, int block_end,
                  const int8_t* x, int32_t x_sum, int32_t* out) {
    const size_t block_bytes = static_cast<size_t>(n_col_octets) * kBlockBytes;
    const __m256i nibble = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    const __m256i offset = _mm256_set1_epi32(8 * x_sum);
    for (int b = block_begin; b < block_end; ++b) {
        const uint8_t* w = codes + b * block_bytes;
        __m256i lo = _mm256_setzero_si256(), hi = lo;
        for (int q = 0; q < n_col_octets; ++q) {
            const uint8_t* g = w + q * kBlockBytes;
            _mm_prefetch(reinterpret_cast<const char*>(g + 2048), _MM_HINT_T0);
            const __m256i x0 = _mm256_set1_epi32(load_i32(x + 8 * q));
            const __m256i x1 = _mm256_set1_epi32(load_i32(x + 8 * q + 4));
            const __m256i v_lo = _mm256_load_si256(reinterpret_cast<const __m256i*>(g));
            const __m256i v_hi = _mm256_load_si256(reinterpret_cast<const __m256i*>(g + 32));
            // Codes <= 15: maddubs pairs stay within int16.
            __m256i s = _mm256_maddubs_epi16(_mm256_and_si256(v_lo, nibble), x0);
            s = _mm256_add_epi16(
                s, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v_lo, 4), nibble), x1));
            lo = _mm256_add_epi32(lo, _mm256_madd_epi16(s, ones));
            __m256i t = _mm256_maddubs_epi16(_mm256_and_si256(v_hi, nibble), x0);
            t = _mm256_add_epi16(
                t, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v_hi, 4), nibble), x1));
            hi = _mm256_add_epi32(hi, _mm256_madd_epi16(t, ones));
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + b * kRowBlock),
                            _mm256_sub_epi32(lo, offset));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + b * kRowBlock + 8),
                            _mm256_sub_epi32(hi, offset));
    }
}

// As the AVX-512 kernel (see there), one 8-row half of the block at a time. maddubs pairs of
// (x + 128) * w stay within int16 (2 * 255 * 31), and so does the sum of two quads' pairs.
void q6_gemv_avx2(const uint8_t* data, int n_col_groups, int block_begin, int block_end,
                  const int8_t* hi, const int8_t* lo, int32_t* out_hi, int32_t* out_lo) {
    const size_t block_bytes = q6_block_bytes(n_col_groups);
    const __m256i nibble = _mm256_set1_epi8(15), top = _mm256_set1_epi8(0x30);
    const __m256i bias = _mm256_set1_epi8(32), ones = _mm256_set1_epi16(1);
    constexpr int32_t kFlip = static_cast<int32_t>(0x80808080u);  // x -> x + 128, per byte
    const auto code = [&](__m256i low, __m256i high) {
        return _mm256_sub_epi8(
            _mm256_or_si256(_mm256_and_si256(low, nibble), _mm256_and_si256(high, top)), bias);
    };
    for (int b = block_begin; b < block_end; ++b) {
        const uint8_t* blk = data + b * block_bytes;
        for (int half = 0; half < 2; ++half) {
            __m256i acc_h = _mm256_setzero_si256(), acc_l = acc_h;
            for (int g = 0; g < n_col_groups; ++g) {
                const uint8_t* c = blk + q6_codes_offset(g) + 32 * half;
                _mm_prefetch(reinterpret_cast<const char*>(c + 2048), _MM_HINT_T0);
                const __m256i v0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(c));
                const __m256i v1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(c + 64));
                const __m256i t = _mm256_load_si256(reinterpret_cast<const __m256i*>(c + 128));
                const __m256i w[4] = {
                    code(v0, _mm256_slli_epi16(t, 4)),
                    code(_mm256_srli_epi16(v0, 4), _mm256_slli_epi16(t, 2)),
                    code(v1, t),
                    code(_mm256_srli_epi16(v1, 4), _mm256_srli_epi16(t, 2)),
                };
                const int8_t* xs[2] = {hi + g * kColGroup, lo + g * kColGroup};
                __m256i part[2];
                for (int term = 0; term < 2; ++term) {
                    __m256i pair[2];
                    for (int k = 0; k < 2; ++k) {
                        const __m256i xa = _mm256_set1_epi32(load_i32(xs[term] + 8 * k) ^ kFlip);
                        const __m256i xb =
                            _mm256_set1_epi32(load_i32(xs[term] + 8 * k + 4) ^ kFlip);
                        pair[k] = _mm256_madd_epi16(
                            _mm256_add_epi16(_mm256_maddubs_epi16(xa, w[2 * k]),
                                             _mm256_maddubs_epi16(xb, w[2 * k + 1])),
                            ones);
                    }
                    part[term] = _mm256_add_epi32(pair[0], pair[1]);
                }
                const __m256i s = _mm256_cvtepu8_epi32(_mm_loadl_epi64(
                    reinterpret_cast<const __m128i*>(blk + q6_scales_offset(g) + 8 * half)));
                acc_h = _mm256_add_epi32(acc_h, _mm256_mullo_epi32(part[0], s));
                acc_l = _mm256_add_epi32(acc_l, _mm256_mullo_epi32(part[1], s));
            }
            const __m256i corr = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                blk + q6_corrections_offset(n_col_groups) + 32 * half));
            const int row = b * kRowBlock + 8 * half;
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(out_hi + row),
                                _mm256_sub_epi32(acc_h, corr));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(out_lo + row),
                                _mm256_sub_epi32(acc_l, corr));
        }
    }
}

const KernelTable kAvx2 = {"avx2",       ternary_gemm_avx2, quantize_row_avx2, ternary5_gemm_avx2,
                           q8_gemv_avx2, q4_gemv_avx2,      q6_gemv_avx2,      nullptr};

}  // namespace

const KernelTable* kernels_avx2() { return &kAvx2; }

}  // namespace bitnet
