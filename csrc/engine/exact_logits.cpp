#include "exact_logits.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <stdexcept>

#include "ops.h"

namespace bitnet {

namespace {

using Entry = std::pair<float, int32_t>;
// Min-heap on the logit: the root is the smallest of the k kept so far.
constexpr std::greater<Entry> kMinHeap{};

// Whether any of x[0..16) exceeds `threshold`: written without early exit so it compiles to
// vector compares; almost every block of a 128256-entry vocabulary is skipped on it.
BITNET_FLOAT_CLONES
bool block_exceeds(const float* x, float threshold) {
    int any = 0;
    for (int j = 0; j < 16; ++j) any |= x[j] > threshold ? 1 : 0;
    return any != 0;
}

}  // namespace

int top_k(const float* x, int n, int k, Entry* heap) {
    const int m = std::min(k, n);
    if (m <= 0) return 0;
    for (int i = 0; i < m; ++i) heap[i] = {x[i], i};
    std::make_heap(heap, heap + m, kMinHeap);
    auto offer = [&](int i) {
        if (!(x[i] > heap[0].first)) return;
        std::pop_heap(heap, heap + m, kMinHeap);
        heap[m - 1] = {x[i], i};
        std::push_heap(heap, heap + m, kMinHeap);
    };
    int i = m;
    for (; i + 16 <= n; i += 16) {
        if (!block_exceeds(x + i, heap[0].first)) continue;
        for (int j = i; j < i + 16; ++j) offer(j);
    }
    for (; i < n; ++i) offer(i);
    return m;
}

ExactLogits::ExactLogits(const TensorView& table, int vocab, int hidden, int top,
                         const std::string& file, int64_t offset)
    : table_(table), vocab_(vocab), hidden_(hidden), top_(std::min(top, vocab)), offset_(offset) {
    if (table.dtype == DType::U8) {
        throw CheckpointContentError("output head table: not a float tensor");
    }
    if (!file.empty()) {
        fd_ = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd_ < 0) {
            throw CheckpointContentError("cannot open " + file + ": " + std::strerror(errno));
        }
    }
}

ExactLogits::~ExactLogits() {
    if (fd_ >= 0) ::close(fd_);
}

ExactLogits::ExactLogits(ExactLogits&& other) noexcept
    : table_(std::move(other.table_)),
      vocab_(other.vocab_),
      hidden_(other.hidden_),
      top_(other.top_),
      fd_(std::exchange(other.fd_, -1)),
      offset_(other.offset_) {}

ExactLogits& ExactLogits::operator=(ExactLogits&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        table_ = std::move(other.table_);
        vocab_ = other.vocab_;
        hidden_ = other.hidden_;
        top_ = other.top_;
        fd_ = std::exchange(other.fd_, -1);
        offset_ = other.offset_;
    }
    return *this;
}

const void* ExactLogits::read_row(int64_t v, void* raw) const {
    const size_t bytes = row_bytes();
    if (fd_ < 0) return static_cast<const uint8_t*>(table_.data) + v * bytes;
    size_t done = 0;
    while (done < bytes) {
        const ssize_t got = ::pread(fd_, static_cast<uint8_t*>(raw) + done, bytes - done,
                                    offset_ + v * static_cast<int64_t>(bytes) + done);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return nullptr;
        done += static_cast<size_t>(got);
    }
    return raw;
}

void ExactLogits::refine(const float* h, float* logits, ThreadPool& pool, Entry* heap, int32_t* idx,
                         float* row) const {
    // Each thread keeps the top of its slice of the vocabulary (slices by the pool's size,
    // not by the threads that run them: the same candidates however the work is shared)...
    const int n_threads = pool.size();
    auto slice = [&](int i) { return static_cast<int>(int64_t(vocab_) * i / n_threads); };
    pool.run(int64_t(vocab_) * 2, [&](int i, int) {
        Entry* mine = heap + static_cast<size_t>(i) * top_;
        const int found = top_k(logits + slice(i), slice(i + 1) - slice(i), top_, mine);
        for (int j = 0; j < found; ++j) mine[j].second += slice(i);
    });
    // ...and the caller merges those few candidates (contiguous: slices hold >= top_ entries
    // except when the vocabulary is smaller than top_ * n_threads).
    int n_cand = 0;
    for (int i = 0; i < n_threads; ++i) {
        const int found = std::min(top_, slice(i + 1) - slice(i));
        std::copy_n(heap + static_cast<size_t>(i) * top_, found, heap + n_cand);
        n_cand += found;
    }
    const int m = std::min(top_, n_cand);
    std::nth_element(heap, heap + m - 1, heap + n_cand, std::greater<Entry>());
    for (int j = 0; j < m; ++j) idx[j] = heap[j].second;
    // The rows, one read each (a system call or page faults, then a dot product), split over
    // the threads when they are wide enough to be worth it.
    std::atomic<bool> unreadable{false};
    pool.run(int64_t(m) * hidden_ * 16, [&](int i, int n) {
        float* wide = row + static_cast<size_t>(i) * 2 * hidden_;
        for (int j = i; j < m; j += n) {
            const int64_t v = idx[j];
            const void* src = read_row(v, wide + hidden_);
            if (src == nullptr) {
                unreadable = true;
                return;
            }
            widen_to_f32(src, table_.dtype, hidden_, wide);
            // The float32 head's own arithmetic (dot_f32 over the widened row): the same bits.
            logits[v] = dot_f32(h, wide, hidden_);
        }
    });
    if (unreadable) {
        throw std::runtime_error("output head table: the checkpoint file can no longer be read");
    }
}

}  // namespace bitnet
