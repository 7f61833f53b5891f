// A persistent pool: workers spin briefly between jobs (a token's ~hundreds of parallel
// sections arrive microseconds apart), then sleep, so an idle model costs no CPU.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace bitnet {

class ThreadPool {
 public:
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_threads_; }

    // Calls fn(thread_index, n_threads) on every thread (the caller is thread 0) and returns
    // when all calls have returned. Not reentrant; callers serialise through their own lock.
    template <typename F>
    void run(F&& fn) {
        run_raw(
            [](void* ctx, int i, int n) { (*static_cast<std::remove_reference_t<F>*>(ctx))(i, n); },
            &fn);
    }

    // Splits [0, n_items) into contiguous ranges, one per thread: fn(begin, end).
    template <typename F>
    void parallel_for(int n_items, F&& fn) {
        if (n_threads_ == 1 || n_items <= 1) {
            fn(0, n_items);
            return;
        }
        run([&](int i, int n) {
            const int begin = static_cast<int>(int64_t(n_items) * i / n);
            const int end = static_cast<int>(int64_t(n_items) * (i + 1) / n);
            if (begin < end) fn(begin, end);
        });
    }

    // Hands out [0, n_items) in chunks of `grain` items to whichever thread is free next:
    // fn(begin, end). Balances the work when threads run at different speeds (a shared core,
    // memory contention), where an even static split leaves one thread waiting.
    template <typename F>
    void parallel_for_dynamic(int n_items, int grain, F&& fn) {
        if (n_threads_ == 1 || n_items <= grain) {
            fn(0, n_items);
            return;
        }
        std::atomic<int> next{0};
        run([&](int, int) {
            for (;;) {
                const int begin = next.fetch_add(grain, std::memory_order_relaxed);
                if (begin >= n_items) return;
                fn(begin, std::min(n_items, begin + grain));
            }
        });
    }

    // A grain for parallel_for_dynamic: about `chunks_per_thread` chunks per thread, a
    // multiple of `multiple` (kernels that work on pairs of items).
    int grain_for(int n_items, int chunks_per_thread = 8, int multiple = 2) const {
        const int g = n_items / (chunks_per_thread * n_threads_) / multiple * multiple;
        return g < multiple ? multiple : g;
    }

 private:
    using Task = void (*)(void*, int, int);
    void run_raw(Task task, void* ctx);
    void worker(int index);

    int n_threads_;
    std::vector<std::thread> threads_;
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> done_{0};
    std::atomic<bool> stop_{false};
    Task task_ = nullptr;
    void* ctx_ = nullptr;
    std::mutex mutex_;
    std::condition_variable wake_;
};

}  // namespace bitnet
