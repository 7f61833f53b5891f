// Borrowed views of checkpoint tensors (memory-mapped by the caller) and dtype conversion.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace bitnet {

enum class DType { U8, BF16, F16, F32 };

DType parse_dtype(const std::string& name);
const char* dtype_name(DType dtype);
size_t dtype_size(DType dtype);

struct TensorView {
    const void* data = nullptr;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;

    int64_t numel() const {
        int64_t n = 1;
        for (auto d : shape) n *= d;
        return n;
    }
    // Element i converted to float (bf16 and f16 widen exactly).
    float at(int64_t i) const;
};

inline float bf16_to_f32(uint16_t v) {
    const uint32_t bits = static_cast<uint32_t>(v) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

// float32 -> bfloat16, round to nearest even (for finite values).
inline uint16_t f32_to_bf16(float x) {
    uint32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return static_cast<uint16_t>(bits >> 16);
}

float f16_to_f32(uint16_t v);

// n consecutive elements stored as `dtype` at `src`, widened to float32 like TensorView::at
// (exactly for bf16 and f16), with a vector-friendly loop per dtype.
void widen_to_f32(const void* src, DType dtype, int64_t n, float* out);

// Drops this process's pages of a read-only file mapping (the page cache keeps them): once a
// tensor has been repacked, its source must not count in RSS twice. A later read re-faults.
// Only for memory-mapped files: on anonymous memory this would discard data.
void release_file_pages(const void* data, size_t bytes);
// For one row of a file-mapped table read at random (an embedding lookup): drops the pages the
// read mapped, rounded outwards to the largest window a read fault maps but never past the pages
// of `table` (whatever lies beyond may be another mapping). Other rows in those pages re-fault
// when read.
void release_file_row(const void* row, size_t row_bytes, const void* table, size_t table_bytes);

// Thrown for checkpoint content the engine cannot use; the bindings map it to CheckpointError.
struct CheckpointContentError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

}  // namespace bitnet
