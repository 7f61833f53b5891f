#include "thread_pool.h"

#include <chrono>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define BITNET_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define BITNET_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define BITNET_CPU_RELAX() ((void)0)
#endif

namespace bitnet {
namespace {
// Long enough to bridge the gaps inside one token, short enough not to burn a core while
// Python detokenizes or the user thinks.
constexpr auto kSpinTime = std::chrono::microseconds(2000);
constexpr int kSpinsBeforeYield = 4096;
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
    for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_.store(true);
        generation_.fetch_add(1);
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
}

void ThreadPool::run_raw(Task task, void* ctx) {
    if (n_threads_ == 1) {
        task(ctx, 0, 1);
        return;
    }
    task_ = task;
    ctx_ = ctx;
    done_.store(0, std::memory_order_relaxed);
    {
        std::lock_guard<std::mutex> lock(mutex_);
        generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    task(ctx, 0, n_threads_);
    // Spin briefly, then yield: when the machine is oversubscribed the worker we wait for may
    // need this core to finish.
    for (int spins = 0; done_.load(std::memory_order_acquire) != n_threads_ - 1; ++spins) {
        if (spins < kSpinsBeforeYield) {
            BITNET_CPU_RELAX();
        } else {
            std::this_thread::yield();
        }
    }
}

void ThreadPool::worker(int index) {
    uint64_t seen = 0;
    for (;;) {
        uint64_t gen = generation_.load(std::memory_order_acquire);
        const auto spin_until = std::chrono::steady_clock::now() + kSpinTime;
        int spins = 0;
        while (gen == seen) {
            if (++spins < kSpinsBeforeYield) {
                BITNET_CPU_RELAX();
            } else {
                std::this_thread::yield();
            }
            if ((spins & 255) == 0 && std::chrono::steady_clock::now() > spin_until) {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return generation_.load() != seen; });
            }
            gen = generation_.load(std::memory_order_acquire);
        }
        seen = gen;
        if (stop_.load()) return;
        task_(ctx_, index, n_threads_);
        done_.fetch_add(1, std::memory_order_release);
    }
}

}  // namespace bitnet
