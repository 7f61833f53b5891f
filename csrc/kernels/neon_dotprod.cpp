// NEON kernels for CPUs with the dot-product extension (sdot: 4 int8 products summed into
// each int32 lane, the counterpart of vpdpbusd). This file alone is compiled with +dotprod.
#include <arm_neon.h>

#define BITNET_NEON_DOT(acc, a, b) vdotq_s32(acc, a, b)
#include "neon_impl.h"

namespace bitnet {

const KernelTable* kernels_neon_dotprod() {
    static const KernelTable table = {
        "neon",       ternary_gemm_neon, quantize_row_neon, ternary5_gemm_reference,
        q8_gemv_neon, q4_gemv_neon,      q6_gemv_neon,      nullptr};
    return &table;
}

}  // namespace bitnet
