// Standalone kernel test: every kernel table this CPU can run against the scalar reference,
// on random data and ragged shapes. Built natively and, for NEON, cross-compiled and run under
// qemu-user by tests/test_neon_kernels.py. Prints one line per check and "N passed, M failed".
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../kernels/kernels.h"

using namespace bitnet;

namespace {

int passed = 0, failed = 0;

// 64-byte aligned copy of a byte vector (the wide kernels use aligned loads).
class AlignedCodes {
 public:
    explicit AlignedCodes(const std::vector<uint8_t>& src) : storage_(src.size() + 64) {
        const auto base = reinterpret_cast<uintptr_t>(storage_.data());
        data_ = storage_.data() + ((64 - base % 64) % 64);
        std::memcpy(data_, src.data(), src.size());
    }
    const uint8_t* data() const { return data_; }

 private:
    std::vector<uint8_t> storage_;
    uint8_t* data_;
};

void check(bool ok, const std::string& what) {
    (ok ? passed : failed)++;
    if (!ok) std::printf("FAIL %s\n", what.c_str());
}

std::vector<uint8_t> random_ternary_codes(std::mt19937& rng, size_t bytes) {
    std::vector<uint8_t> codes(bytes);
    std::uniform_int_distribution<int> trit(0, 2);
    for (auto& b : codes)
        b = static_cast<uint8_t>(trit(rng) | trit(rng) << 2 | trit(rng) << 4 | trit(rng) << 6);
    return codes;
}

std::vector<int8_t> random_acts(std::mt19937& rng, size_t n, int lo) {
    std::vector<int8_t> x(n);
    std::uniform_int_distribution<int> v(lo, 127);
    for (auto& e : x) e = static_cast<int8_t>(v(rng));
    return x;
}

// Random Q6_R16 blocks (any codes, sub-scales in [1, 127]) with the corrections they imply.
std::vector<uint8_t> random_q6_blocks(std::mt19937& rng, int blocks, int groups) {
    const size_t block_bytes = q6_block_bytes(groups);
    std::vector<uint8_t> data(blocks * block_bytes);
    std::uniform_int_distribution<int> byte(0, 255), scale(1, 127);
    for (int b = 0; b < blocks; ++b) {
        uint8_t* blk = data.data() + b * block_bytes;
        for (int g = 0; g < groups; ++g) {
            for (int i = 0; i < kQ6GroupCodeBytes; ++i) {
                blk[q6_codes_offset(g) + i] = static_cast<uint8_t>(byte(rng));
            }
            for (int r = 0; r < kRowBlock; ++r) {
                blk[q6_scales_offset(g) + r] = static_cast<uint8_t>(scale(rng));
            }
        }
        for (int r = 0; r < kRowBlock; ++r) {
            int64_t corr = 0;
            for (int g = 0; g < groups; ++g) {
                const uint8_t* lane = blk + q6_codes_offset(g) + 4 * r;
                int w_sum = 0;
                for (int c = 0; c < kColGroup; ++c) {
                    const int quad = c / 4, j = c % 4;
                    const uint8_t n = lane[(quad / 2) * kBlockBytes + j];
                    const int low = quad % 2 == 0 ? n & 15 : n >> 4;
                    w_sum += (low | ((lane[2 * kBlockBytes + j] >> (2 * quad)) & 3) << 4) - 32;
                }
                corr += 128 * static_cast<int64_t>(blk[q6_scales_offset(g) + r]) * w_sum;
            }
            const auto wrapped = static_cast<int32_t>(static_cast<uint32_t>(corr));
            std::memcpy(blk + q6_corrections_offset(groups) + 4 * r, &wrapped, sizeof wrapped);
        }
    }
    return data;
}

// Random codes of either ternary layout: I2_R16 bytes hold four 2-bit codes in {0, 1, 2};
// for I1_R16 any byte below 3^5 is a valid group of five base-3 codes.
std::vector<uint8_t> random_layout_codes(std::mt19937& rng, size_t bytes, bool base3) {
    if (!base3) return random_ternary_codes(rng, bytes);
    std::vector<uint8_t> codes(bytes);
    std::uniform_int_distribution<int> base3_byte(0, 242);
    for (auto& b : codes) b = static_cast<uint8_t>(base3_byte(rng));
    return codes;
}

// One ternary GEMM shape of one layout against the reference, on random codes and activations.
void check_ternary_gemm(const KernelTable& k, std::mt19937& rng, int blocks, int groups, int tokens,
                        bool base3) {
    const KernelTable& ref = kernels_ref();
    auto codes =
        random_layout_codes(rng, static_cast<size_t>(blocks) * groups * kBlockBytes, base3);
    // Keep the layout's 64-byte alignment, which the wide kernels rely on.
    AlignedCodes aligned(codes);
    const size_t stride = static_cast<size_t>(groups) * (base3 ? kColGroup5 : kColGroup);
    auto x = random_acts(rng, stride * tokens, -128);
    std::vector<int32_t> sums(tokens, 0);
    for (int t = 0; t < tokens; ++t) {
        for (size_t c = 0; c < stride; ++c) sums[t] += x[t * stride + c];
    }
    const PackedTernary w{aligned.data(), blocks, groups};
    const QuantizedActs acts{x.data(), sums.data(), stride, tokens};
    const size_t ld = static_cast<size_t>(blocks) * kRowBlock;
    std::vector<int32_t> a(ld * tokens, -1), b(ld * tokens, -2);
    (base3 ? ref.ternary5_gemm : ref.ternary_gemm)(w, 0, blocks, acts, a.data(), ld);
    (base3 ? k.ternary5_gemm : k.ternary_gemm)(w, 0, blocks, acts, b.data(), ld);
    check(a == b, std::string(k.isa) + (base3 ? " ternary5_gemm " : " ternary_gemm ") +
                      std::to_string(blocks) + "x" + std::to_string(groups) + "x" +
                      std::to_string(tokens));
}

// q6_gemm over a block range and `tokens` tokens against the reference q6_gemv per token;
// rows outside the range and beyond each token's row stride stay untouched.
void check_q6_gemm(const KernelTable& k, std::mt19937& rng, int blocks, int tokens) {
    const KernelTable& ref = kernels_ref();
    const int groups = 4 * (1 + tokens % 3);
    AlignedCodes aligned(random_q6_blocks(rng, blocks, groups));
    const size_t stride = static_cast<size_t>(groups) * kColGroup + 16;
    auto hi = random_acts(rng, stride * tokens, -127);
    auto lo = random_acts(rng, stride * tokens, -127);
    std::vector<uint8_t> hi_biased(hi.size()), lo_biased(lo.size());
    for (size_t i = 0; i < hi.size(); ++i) {
        hi_biased[i] = static_cast<uint8_t>(hi[i] ^ 0x80);
        lo_biased[i] = static_cast<uint8_t>(lo[i] ^ 0x80);
    }
    const int b0 = blocks > 1 ? 1 : 0;
    const size_t rows = static_cast<size_t>(blocks) * kRowBlock;
    const size_t ld = static_cast<size_t>(blocks - b0) * kRowBlock + 5;
    std::vector<int32_t> out_hi(ld * tokens, 7), out_lo(ld * tokens, 7);
    const BiasedHeadActs acts{hi_biased.data(), lo_biased.data(), stride, tokens};
    k.q6_gemm(aligned.data(), groups, b0, blocks, acts, out_hi.data(), out_lo.data(), ld);
    bool same = true;
    std::vector<int32_t> a1(rows), a2(rows);
    for (int t = 0; t < tokens; ++t) {
        ref.q6_gemv(aligned.data(), groups, 0, blocks, hi.data() + t * stride,
                    lo.data() + t * stride, a1.data(), a2.data());
        for (size_t i = 0; i < ld; ++i) {
            const size_t r = b0 * kRowBlock + i;
            const bool inside = r < rows;
            const int32_t h = out_hi[t * ld + i], l = out_lo[t * ld + i];
            same &= inside ? (h == a1[r] && l == a2[r]) : (h == 7 && l == 7);
        }
    }
    check(same, std::string(k.isa) + " q6_gemm " + std::to_string(blocks) + "x" +
                    std::to_string(groups) + "x" + std::to_string(tokens));
}

void test_table(const KernelTable& k, std::mt19937& rng) {
    const KernelTable& ref = kernels_ref();
    const std::string isa = k.isa;
    // {row blocks, column groups, tokens}: 2..16 tokens are batched decode steps, 37 and 128
    // prompt chunks (AVX2 unpacks 8-group chunks of a block once for all of their tokens).
    const int shapes[][3] = {{1, 1, 1},   {2, 3, 1},   {5, 10, 7}, {3, 160, 9}, {8, 6, 17},
                             {40, 2, 4},  {2, 7, 2},   {3, 5, 3},  {1, 9, 5},   {4, 11, 6},
                             {2, 3, 8},   {3, 6, 10},  {2, 9, 15}, {5, 4, 16},  {3, 13, 12},
                             {2, 21, 37}, {1, 17, 128}};
    for (bool base3 : {false, true}) {
        for (const auto& s : shapes) check_ternary_gemm(k, rng, s[0], s[1], s[2], base3);
    }
    // {row blocks, column steps, extreme}: extreme rows are all w = 127 against x = 127, the
    // largest sums a head kernel must carry; 4100 steps are more than one int16 panel on AVX2.
    const int heads[][3] = {{1, 1, 0},  {3, 5, 0},    {7, 640, 0},
                            {2, 33, 0}, {1, 4100, 0}, {2, 640, 1}};
    for (const auto& s : heads) {
        const int blocks = s[0], steps = s[1];
        const bool extreme = s[2] != 0;
        std::vector<uint8_t> bytes(static_cast<size_t>(blocks) * steps * kBlockBytes);
        std::uniform_int_distribution<int> byte(1, 255);
        for (auto& e : bytes) e = extreme ? 255 : static_cast<uint8_t>(byte(rng));
        AlignedCodes aligned(bytes);
        auto hi = random_acts(rng, static_cast<size_t>(steps) * 8, extreme ? 127 : -127);
        auto lo = random_acts(rng, static_cast<size_t>(steps) * 8, extreme ? 127 : -127);
        int32_t hs = 0, ls = 0;
        for (int i = 0; i < steps * 4; ++i) hs += hi[i], ls += lo[i];
        const size_t rows = static_cast<size_t>(blocks) * kRowBlock;
        std::vector<int32_t> a1(rows), a2(rows), b1(rows), b2(rows);
        ref.q8_gemv(aligned.data(), steps, 0, blocks, hi.data(), hs, lo.data(), ls, a1.data(),
                    a2.data());
        k.q8_gemv(aligned.data(), steps, 0, blocks, hi.data(), hs, lo.data(), ls, b1.data(),
                  b2.data());
        bool same = true;
        for (size_t r = 0; r < rows; ++r) {
            same &= 256 * int64_t{a1[r]} + a2[r] == 256 * int64_t{b1[r]} + b2[r];
        }
        check(same, isa + " q8_gemv " + std::to_string(blocks) + "x" + std::to_string(steps));
        int32_t s8 = 0;
        for (int i = 0; i < steps * 8; ++i) s8 += hi[i];
        ref.q4_gemv(aligned.data(), steps, 0, blocks, hi.data(), s8, a1.data());
        k.q4_gemv(aligned.data(), steps, 0, blocks, hi.data(), s8, b1.data());
        check(a1 == b1, isa + " q4_gemv " + std::to_string(blocks) + "x" + std::to_string(steps));
    }
    const int q6_shapes[][2] = {{1, 4}, {3, 8}, {7, 160}, {2, 12}};
    for (const auto& s : q6_shapes) {
        const int blocks = s[0], groups = s[1];
        AlignedCodes aligned(random_q6_blocks(rng, blocks, groups));
        auto hi = random_acts(rng, static_cast<size_t>(groups) * kColGroup, -127);
        auto lo = random_acts(rng, static_cast<size_t>(groups) * kColGroup, -127);
        const size_t rows = static_cast<size_t>(blocks) * kRowBlock;
        std::vector<int32_t> a1(rows), a2(rows), b1(rows, -1), b2(rows, -1);
        ref.q6_gemv(aligned.data(), groups, 0, blocks, hi.data(), lo.data(), a1.data(), a2.data());
        k.q6_gemv(aligned.data(), groups, 0, blocks, hi.data(), lo.data(), b1.data(), b2.data());
        check(a1 == b1 && a2 == b2,
              isa + " q6_gemv " + std::to_string(blocks) + "x" + std::to_string(groups));
        // A sub-range of blocks writes only its own rows.
        std::vector<int32_t> c1(rows, 7), c2(rows, 7);
        k.q6_gemv(aligned.data(), groups, 1, blocks, hi.data(), lo.data(), c1.data(), c2.data());
        bool only_range = true;
        for (size_t i = 0; i < rows; ++i) {
            const bool inside = i >= static_cast<size_t>(kRowBlock);
            only_range &= inside ? (c1[i] == a1[i] && c2[i] == a2[i]) : (c1[i] == 7 && c2[i] == 7);
        }
        check(only_range, isa + " q6_gemv block range " + std::to_string(blocks));
    }
    if (k.q6_gemm != nullptr) {
        for (int tokens = 1; tokens <= 17; ++tokens) check_q6_gemm(k, rng, 3 + tokens % 4, tokens);
    }
    for (int n : {1, 3, 4, 16, 17, 100, 2560}) {
        std::vector<float> x(n);
        std::normal_distribution<float> g(0.0f, 3.0f);
        for (auto& e : x) e = g(rng);
        x[0] = 0.0f;
        std::vector<int8_t> q1(n), q2(n);
        int32_t s1 = 0, s2 = 0;
        const float a = ref.quantize_row(x.data(), n, q1.data(), &s1);
        const float b = k.quantize_row(x.data(), n, q2.data(), &s2);
        check(a == b && s1 == s2 && q1 == q2, isa + " quantize_row " + std::to_string(n));
    }
}

}  // namespace

int main() {
    std::mt19937 rng(1234);
    std::vector<const KernelTable*> tables = {&kernels_ref()};
    for (const KernelTable* t : {kernels_avx2(), kernels_avx512(), kernels_neon()}) {
        if (t == nullptr) continue;
        try {
            if (&select_kernels(t->isa) == t) tables.push_back(t);
        } catch (const std::exception&) {
            std::printf("skip %s: not supported by this CPU\n", t->isa);
        }
    }
    std::printf("tables:");
    for (const KernelTable* t : tables) std::printf(" %s", t->isa);
    std::printf("\n");
    for (const KernelTable* t : tables) test_table(*t, rng);
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
