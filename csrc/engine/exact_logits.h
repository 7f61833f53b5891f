// Exact top logits over a quantized output head. A quantized head reads 2-4x fewer bytes per
// token than the float table, but its error can reorder near-tied top logits. Greedy and
// top-k/top-p sampling only look at the top of the distribution, so the largest logits of each
// position are recomputed in float32 from the checkpoint's own table (a few rows per position):
// those equal the float32 head's bit for bit, the rest keep the quantized values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "tensor.h"
#include "thread_pool.h"

namespace bitnet {

// The `k` largest of x[0..n) as (value, index) in heap[0..min(k, n)) (any order). Returns
// min(k, n).
int top_k(const float* x, int n, int k, std::pair<float, int32_t>* heap);

// What a Model needs to build its ExactLogits: how many logits, and where the head's float
// table lies when it is a file mapping (empty `file`: read it in memory).
struct ExactLogitsOptions {
    int top = 0;
    std::string file;
    int64_t offset = 0;
};

class ExactLogits {
 public:
    ExactLogits() = default;
    // `table`: [vocab][hidden] float table of the head (the tied embedding or lm_head.weight),
    // borrowed. When it is a mapping of a file, `file` and `offset` (bytes from the file's
    // start) name it: rows are then read with pread, because touching a few random rows of the
    // mapping per token costs a page fault of 64 KiB each and, to keep them out of RSS, a TLB
    // shootdown each; pread avoids both (benchmarks/README.md, "Measured design choices").
    // Throws CheckpointContentError if the file cannot be opened.
    ExactLogits(const TensorView& table, int vocab, int hidden, int top, const std::string& file,
                int64_t offset);
    ~ExactLogits();
    ExactLogits(ExactLogits&& other) noexcept;
    ExactLogits& operator=(ExactLogits&& other) noexcept;
    ExactLogits(const ExactLogits&) = delete;
    ExactLogits& operator=(const ExactLogits&) = delete;

    int top() const { return top_; }
    // Table bytes `refine` reads per position.
    size_t bytes_per_position() const { return static_cast<size_t>(top_) * row_bytes(); }
    // Scratch `refine` needs on `n_threads` threads: heap entries, and floats of `row` (a
    // widened row and the raw one per thread).
    size_t heap_scratch(int n_threads) const { return static_cast<size_t>(top_) * n_threads; }
    size_t row_scratch(int n_threads) const {
        return top_ > 0 ? 2 * static_cast<size_t>(hidden_) * n_threads : 0;
    }
    // Recomputes the `top()` largest of logits[0..vocab) from the table, the work split over
    // the pool (each row is one system call: latency, not bandwidth); `idx` is scratch of
    // `top()` entries. Throws std::runtime_error if the checkpoint file can no longer be read.
    void refine(const float* h, float* logits, ThreadPool& pool, std::pair<float, int32_t>* heap,
                int32_t* idx, float* row) const;

 private:
    size_t row_bytes() const { return static_cast<size_t>(hidden_) * dtype_size(table_.dtype); }
    // Row v of the table, as stored: in place, or read from the file into `raw` (nullptr if
    // the file can no longer be read).
    const void* read_row(int64_t v, void* raw) const;

    TensorView table_;
    int vocab_ = 0, hidden_ = 0, top_ = 0;
    int fd_ = -1;
    int64_t offset_ = 0;
};

}  // namespace bitnet
