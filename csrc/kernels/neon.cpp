// ARM NEON kernels for any AArch64 CPU: the 4-byte dot product is done with widening
// multiplies (smull) into int16 and pairwise adds into int32. CPUs with the dot-product
// extension get neon_dotprod.cpp instead, chosen at run time from the hardware caps.
#include <arm_neon.h>

#include <cstdlib>

#if defined(__linux__)
#include <sys/auxv.h>
#endif

namespace {
inline int32x4_t dot4_widen(int32x4_t acc, int8x16_t a, int8x16_t b) {
    const int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    const int16x8_t hi = vmull_s8(vget_high_s8(a), vget_high_s8(b));
    // Adjacent products -> int32 pairs, then pairs of pairs: one lane per 4-byte group.
    return vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)));
}
}  // namespace

#define BITNET_NEON_DOT(acc, a, b) dot4_widen(acc, a, b)
#include "neon_impl.h"

namespace bitnet {

const KernelTable* kernels_neon_dotprod();

namespace {
const KernelTable kNeon = {
    "neon",       ternary_gemm_neon, quantize_row_neon, ternary5_gemm_reference,
    q8_gemv_neon, q4_gemv_neon,      q6_gemv_neon,      nullptr};

bool cpu_has_dotprod() {
#if defined(__linux__)
    constexpr unsigned long kHwcapAsimdDp = 1ul << 20;  // HWCAP_ASIMDDP
    return (getauxval(AT_HWCAP) & kHwcapAsimdDp) != 0;
#else
    return false;
#endif
}
}  // namespace

const KernelTable* kernels_neon() {
    if (std::getenv("BITNET_NEON_NO_DOTPROD") == nullptr && cpu_has_dotprod()) {
        return kernels_neon_dotprod();
    }
    return &kNeon;
}

}  // namespace bitnet
