// Picks the kernel table at run time from the CPU's features, so one build serves every
// machine of an architecture; BITNET_ISA forces one (for tests and benchmarks).
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

namespace bitnet {
namespace {

#if defined(__x86_64__) || defined(_M_X64)
uint64_t xgetbv0() {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<uint64_t>(edx) << 32) | eax;
}

bool cpu_has_avx2() {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    const bool osxsave = c & (1u << 27), fma = c & (1u << 12);
    if (!osxsave || !fma || (xgetbv0() & 0x6) != 0x6) return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    return b & (1u << 5);
}

bool cpu_has_avx512_vnni() {
    unsigned a, b, c, d;
    if (!cpu_has_avx2()) return false;
    if ((xgetbv0() & 0xE6) != 0xE6) return false;  // OS saves opmask + zmm state
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool f = b & (1u << 16), bw = b & (1u << 30), vl = b & (1u << 31);
    const bool vnni = c & (1u << 11);
    return f && bw && vl && vnni;
}
bool cpu_has_vbmi_bits() {
    unsigned a, b, c, d;
    if (!cpu_has_avx512_vnni()) return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    return c & (1u << 1);
}
#endif

const KernelTable* best_available() {
#if defined(__x86_64__) || defined(_M_X64)
    if (cpu_has_avx512_vnni() && kernels_avx512()) return kernels_avx512();
    if (cpu_has_avx2() && kernels_avx2()) return kernels_avx2();
#endif
    if (kernels_neon()) return kernels_neon();
    return &kernels_ref();
}

}  // namespace

bool cpu_has_avx512_vbmi() {
#if defined(__x86_64__) || defined(_M_X64)
    return cpu_has_vbmi_bits();
#else
    return false;
#endif
}

// ISA files that this build did not compile in (see CMakeLists.txt) report "absent".
#ifndef BITNET_HAVE_AVX2
const KernelTable* kernels_avx2() { return nullptr; }
#endif
#ifndef BITNET_HAVE_AVX512
const KernelTable* kernels_avx512() { return nullptr; }
#endif
#ifndef BITNET_HAVE_AVX512
Ternary5Gemm ternary5_gemm_avx512_vbmi() { return nullptr; }
#endif
#ifndef BITNET_HAVE_NEON
const KernelTable* kernels_neon() { return nullptr; }
#endif

const KernelTable& select_kernels(const char* forced_isa) {
    if (forced_isa == nullptr || *forced_isa == '\0' || std::strcmp(forced_isa, "auto") == 0) {
        return *best_available();
    }
    const std::string isa = forced_isa;
    const KernelTable* table = nullptr;
    bool runs_here = false;
    if (isa == "ref") {
        table = &kernels_ref();
        runs_here = true;
    }
#if defined(__x86_64__) || defined(_M_X64)
    else if (isa == "avx2") {
        table = kernels_avx2();
        runs_here = cpu_has_avx2();
    } else if (isa == "avx512") {
        table = kernels_avx512();
        runs_here = cpu_has_avx512_vnni();
    }
#endif
    else if (isa == "neon") {
        table = kernels_neon();
        runs_here = table != nullptr;
    } else {
        throw std::invalid_argument("unknown ISA '" + isa + "' (expected ref, avx2, avx512, neon)");
    }
    if (table == nullptr || !runs_here) {
        throw std::runtime_error("ISA '" + isa + "' is not available on this CPU or build");
    }
    return *table;
}

}  // namespace bitnet
