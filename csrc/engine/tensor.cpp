#include "tensor.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace bitnet {

DType parse_dtype(const std::string& name) {
    if (name == "U8") return DType::U8;
    if (name == "BF16") return DType::BF16;
    if (name == "F16") return DType::F16;
    if (name == "F32") return DType::F32;
    throw CheckpointContentError("unsupported tensor dtype " + name);
}

const char* dtype_name(DType dtype) {
    switch (dtype) {
        case DType::U8:
            return "U8";
        case DType::BF16:
            return "BF16";
        case DType::F16:
            return "F16";
        case DType::F32:
            return "F32";
    }
    return "?";
}

size_t dtype_size(DType dtype) {
    switch (dtype) {
        case DType::U8:
            return 1;
        case DType::BF16:
        case DType::F16:
            return 2;
        case DType::F32:
            return 4;
    }
    return 0;
}

float f16_to_f32(uint16_t h) {
    const uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    float v;
    if (exp == 0) {
        v = std::ldexp(static_cast<float>(mant), -24);
    } else if (exp == 31) {
        v = mant ? NAN : INFINITY;
    } else {
        v = std::ldexp(static_cast<float>(mant | 0x400), static_cast<int>(exp) - 25);
    }
    return sign ? -v : v;
}

float TensorView::at(int64_t i) const {
    switch (dtype) {
        case DType::U8:
            return static_cast<const uint8_t*>(data)[i];
        case DType::BF16:
            return bf16_to_f32(static_cast<const uint16_t*>(data)[i]);
        case DType::F16:
            return f16_to_f32(static_cast<const uint16_t*>(data)[i]);
        case DType::F32:
            return static_cast<const float*>(data)[i];
    }
    return 0.0f;
}

void widen_to_f32(const void* src, DType dtype, int64_t n, float* out) {
    switch (dtype) {
        case DType::U8: {
            const auto* s = static_cast<const uint8_t*>(src);
            for (int64_t i = 0; i < n; ++i) out[i] = s[i];
            break;
        }
        case DType::BF16: {
            const auto* s = static_cast<const uint16_t*>(src);
            for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(s[i]);
            break;
        }
        case DType::F16: {
            const auto* s = static_cast<const uint16_t*>(src);
            for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(s[i]);
            break;
        }
        case DType::F32:
            std::memcpy(out, src, static_cast<size_t>(n) * sizeof(float));
            break;
    }
}

void release_file_pages(const void* data, size_t bytes) {
#if defined(__linux__)
    const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const auto begin = reinterpret_cast<uintptr_t>(data);
    const uintptr_t first = (begin + page - 1) & ~(page - 1);
    const uintptr_t last = (begin + bytes) & ~(page - 1);
    if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
#else
    (void)data;
    (void)bytes;
#endif
}

void release_file_row(const void* row, size_t row_bytes, const void* table, size_t table_bytes) {
#if defined(__linux__)
    // A read fault also maps other cached pages near the row: its aligned "fault-around"
    // window (fault_around_bytes, 64 KiB by default), and with the page cache's large folios
    // (Linux 6.x) a whole folio, up to 2 MiB. Dropping the 2 MiB-aligned window covers both;
    // unmapping pages that are not mapped costs next to nothing.
    constexpr uintptr_t kWindow = uintptr_t(2) << 20;
    const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const auto begin = reinterpret_cast<uintptr_t>(row);
    const auto table_begin = reinterpret_cast<uintptr_t>(table);
    const uintptr_t lowest = table_begin & ~(page - 1);
    const uintptr_t highest = (table_begin + table_bytes + page - 1) & ~(page - 1);
    const uintptr_t first = std::max(lowest, begin & ~(kWindow - 1));
    const uintptr_t last = std::min(highest, (begin + row_bytes + kWindow - 1) & ~(kWindow - 1));
    if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
#else
    (void)row;
    (void)row_bytes;
    (void)table;
    (void)table_bytes;
#endif
}

}  // namespace bitnet
