#include "aligned_buffer.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "tensor.h"
#include "thread_pool.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace bitnet {
namespace {
constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kHugeThreshold = size_t(4) << 20;
}  // namespace

AlignedBuffer::AlignedBuffer(size_t bytes, bool huge_pages) : bytes_(bytes) {
    if (bytes == 0) return;
#if defined(__linux__)
    if (bytes >= kHugeThreshold) {
        // Over-allocate by one huge page, then use the 2 MiB-aligned part.
        map_bytes_ = bytes + kHugePage;
        void* base =
            mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == MAP_FAILED) throw std::bad_alloc();
        map_base_ = base;
        const uintptr_t aligned =
            (reinterpret_cast<uintptr_t>(base) + kHugePage - 1) & ~(kHugePage - 1);
        data_ = reinterpret_cast<void*>(aligned);
        // Whole huge pages only: a partly used last one would hold up to 2 MiB of RSS that
        // nothing reads; the tail stays in 4 KiB pages.
        if (huge_pages) madvise(data_, bytes & ~(kHugePage - 1), MADV_HUGEPAGE);
        return;
    }
#endif
    const size_t rounded = (bytes + 63) & ~size_t(63);
    data_ = std::aligned_alloc(64, rounded);
    if (data_ == nullptr) throw std::bad_alloc();
    std::memset(data_, 0, rounded);
}

AlignedBuffer::~AlignedBuffer() { release(); }

AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& other) noexcept {
    if (this != &other) {
        release();
        data_ = std::exchange(other.data_, nullptr);
        bytes_ = std::exchange(other.bytes_, 0);
        map_base_ = std::exchange(other.map_base_, nullptr);
        map_bytes_ = std::exchange(other.map_bytes_, 0);
    }
    return *this;
}

void AlignedBuffer::release() {
#if defined(__linux__)
    if (map_base_ != nullptr) {
        munmap(map_base_, map_bytes_);
        map_base_ = nullptr;
        data_ = nullptr;
        return;
    }
#endif
    std::free(data_);
    data_ = nullptr;
}

void copy_parallel(uint8_t* dst, const uint8_t* src, size_t bytes, ThreadPool& pool,
                   bool release_src) {
    constexpr size_t kChunk = size_t(1) << 21;
    const int n_chunks = static_cast<int>((bytes + kChunk - 1) / kChunk);
    pool.parallel_for(n_chunks, [&](int begin, int end) {
        const size_t lo = static_cast<size_t>(begin) * kChunk;
        const size_t hi = std::min(bytes, static_cast<size_t>(end) * kChunk);
        for (size_t at = lo; at < hi; at += kChunk) {
            const size_t n = std::min(kChunk, hi - at);
            std::memcpy(dst + at, src + at, n);
            if (release_src) release_file_pages(src + at, n);
        }
    });
}

}  // namespace bitnet
