// Owned, 64-byte aligned memory for weights and scratch. Large buffers come from anonymous
// mmap aligned to 2 MiB and ask for transparent huge pages: decode streams every weight once
// per token and huge pages cut the TLB misses of that stream (benchmarks/README.md,
// "Measured design choices").
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

namespace bitnet {

class AlignedBuffer {
 public:
    AlignedBuffer() = default;
    // `huge_pages`: ask for 2 MiB pages (weights). Without it, large buffers are still mapped
    // lazily, so only the pages actually touched (e.g. the used part of a KV cache) cost RSS.
    explicit AlignedBuffer(size_t bytes, bool huge_pages = true);
    ~AlignedBuffer();
    AlignedBuffer(const AlignedBuffer&) = delete;
    AlignedBuffer& operator=(const AlignedBuffer&) = delete;
    AlignedBuffer(AlignedBuffer&& other) noexcept { *this = std::move(other); }
    AlignedBuffer& operator=(AlignedBuffer&& other) noexcept;

    void* data() { return data_; }
    const void* data() const { return data_; }
    template <typename T>
    T* as() {
        return static_cast<T*>(data_);
    }
    template <typename T>
    const T* as() const {
        return static_cast<const T*>(data_);
    }
    size_t size() const { return bytes_; }

 private:
    void release();
    void* data_ = nullptr;
    size_t bytes_ = 0;
    void* map_base_ = nullptr;
    size_t map_bytes_ = 0;
};

class ThreadPool;
// memcpy split across the pool: faulting in fresh huge pages is the cost, and it scales.
// `release_src`: src is a read-only file mapping whose pages are dropped chunk by chunk, so
// peak RSS stays near the destination's size.
void copy_parallel(uint8_t* dst, const uint8_t* src, size_t bytes, ThreadPool& pool,
                   bool release_src = false);

}  // namespace bitnet
