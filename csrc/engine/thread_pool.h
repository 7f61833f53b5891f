// A persistent pool for the engine's parallel regions (docs/threads.md).
//
// A region is a number of independent chunks that any thread claims, one at a time, from a
// shared counter; the calling thread takes part and claims until none are left. So a worker
// the OS has not scheduled (another process on its core, more threads than cores) holds up
// only a chunk it has already claimed, never a whole region, and a region too small to
// share runs on the calling thread alone. Workers spin briefly between regions (a token's
// regions arrive microseconds apart), then sleep; a caller whose last chunk is slow to finish
// sleeps too, which frees its core for the thread holding that chunk. After fork() the child
// (which has only the forking thread) starts fresh workers before its first region. An
// adaptive pool (the thread count the user did not choose) runs its regions on the calling
// thread alone while that is measured to be faster (team_policy.h), and those measured to
// take only tens of microseconds alone always (solo_cost.h).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "solo_cost.h"
#include "team_policy.h"

namespace bitnet {

class ThreadPool {
 public:
    // More threads than this is a mistake, not a machine.
    static constexpr int kMaxThreads = 1024;
    // Work, in multiply-accumulates or comparable element operations, that one more thread
    // must have to make sharing a region worth it: publishing a region and waiting for it
    // costs about a microsecond with workers spinning, and a sleeping worker takes tens of
    // microseconds to arrive.
    static constexpr int64_t kMinWorkPerThread = int64_t(1) << 20;
    // A region of unknown size (loading, tests): always shared.
    static constexpr int64_t kUnknownWork = std::numeric_limits<int64_t>::max();

    // Throws std::invalid_argument unless 1 <= n_threads <= kMaxThreads.
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_threads_; }

    // Adaptive: measured regions (work estimate given) run on the calling thread alone while
    // that is faster than sharing them (team_policy.h), or when regions of their size take
    // only tens of microseconds alone (solo_cost.h). Off by default: a thread count the user
    // chose is used as given. The split into chunks, and so every result, is the same.
    void set_adaptive(bool adaptive) { adaptive_.store(adaptive, std::memory_order_relaxed); }
    bool adaptive() const { return adaptive_.load(std::memory_order_relaxed); }

    // What the regions worth sharing cost since the pool started (benchmarks, tests).
    struct Stats {
        int64_t shared_regions = 0;  // published to the workers
        int64_t solo_regions = 0;    // run alone by an adaptive pool's choice
        int64_t short_regions = 0;   // ... of which measured too short alone to share
        int64_t caller_chunks = 0;   // chunks of shared regions run by the calling thread
        int64_t worker_chunks = 0;   // ... and by the workers
        int64_t lonely_regions = 0;  // shared regions no worker joined in time for a chunk
        int64_t caller_wait_ns = 0;  // the caller waiting for chunks workers held
        int64_t caller_sleeps = 0;   // waits long enough for the caller to sleep
    };
    Stats stats() const;

    // Whether a region of `work` units is worth sharing among this pool's threads.
    bool worth_sharing(int64_t work) const {
        return n_threads_ > 1 && work >= 2 * kMinWorkPerThread;
    }

    // Calls fn(i, n) once for every i in [0, n), n = size(), on whichever threads are free
    // (the caller included), and returns when all calls have returned. Calls with different
    // i may run at the same time, so `i` may index scratch; results must not depend on which
    // thread makes a call. Safe to call from several threads and from inside fn (such calls
    // run on the calling thread). The first exception thrown by fn is rethrown here. `work`
    // (see worth_sharing) below the threshold runs every call on the calling thread.
    template <typename F>
    void run(int64_t work, F&& fn) {
        run_chunks(
            n_threads_, work,
            [](void* ctx, int chunk, int n_chunks) {
                (*static_cast<std::remove_reference_t<F>*>(ctx))(chunk, n_chunks);
            },
            &fn);
    }
    template <typename F>
    void run(F&& fn) {
        run(kUnknownWork, fn);
    }

    // Splits [0, n_items) into contiguous ranges, a few per thread: fn(begin, end).
    template <typename F>
    void parallel_for(int n_items, int64_t work, F&& fn) {
        const int n_chunks = std::min(n_items, kRangesPerThread * n_threads_);
        if (n_chunks <= 1 || !worth_sharing(work)) {
            if (n_items > 0) fn(0, n_items);
            return;
        }
        struct Ctx {
            std::remove_reference_t<F>* fn;
            int n_items;
        } ctx{&fn, n_items};
        run_chunks(
            n_chunks, work,
            [](void* p, int chunk, int n) {
                const auto* c = static_cast<Ctx*>(p);
                const int begin = static_cast<int>(int64_t(c->n_items) * chunk / n);
                const int end = static_cast<int>(int64_t(c->n_items) * (chunk + 1) / n);
                if (begin < end) (*c->fn)(begin, end);
            },
            &ctx);
    }
    template <typename F>
    void parallel_for(int n_items, F&& fn) {
        parallel_for(n_items, kUnknownWork, fn);
    }

    // Hands out [0, n_items) in chunks of `grain` items to whichever thread is free next:
    // fn(begin, end). Balances the work when threads run at different speeds (a shared core,
    // memory contention).
    template <typename F>
    void parallel_for_dynamic(int n_items, int grain, int64_t work, F&& fn) {
        if (grain < 1) grain = 1;
        if (n_items <= grain || !worth_sharing(work)) {
            if (n_items > 0) fn(0, n_items);
            return;
        }
        struct Ctx {
            std::remove_reference_t<F>* fn;
            int n_items, grain;
        } ctx{&fn, n_items, grain};
        const int n_chunks = static_cast<int>((int64_t(n_items) + grain - 1) / grain);
        run_chunks(
            n_chunks, work,
            [](void* p, int chunk, int) {
                const auto* c = static_cast<Ctx*>(p);
                const int begin = chunk * c->grain;
                (*c->fn)(begin, std::min(c->n_items, begin + c->grain));
            },
            &ctx);
    }
    template <typename F>
    void parallel_for_dynamic(int n_items, int grain, F&& fn) {
        parallel_for_dynamic(n_items, grain, kUnknownWork, fn);
    }

    // A grain for parallel_for_dynamic: about `chunks_per_thread` chunks per thread, a
    // multiple of `multiple` (kernels that work on pairs of items).
    int grain_for(int n_items, int chunks_per_thread = 8, int multiple = 2) const {
        const int g = n_items / (chunks_per_thread * n_threads_) / multiple * multiple;
        return g < multiple ? multiple : g;
    }

 private:
    using Task = void (*)(void* ctx, int chunk, int n_chunks);
    static constexpr int kRangesPerThread = 4;

    // The mutex and condition variables. After fork() the child may find them locked by a
    // thread that no longer exists, so the child abandons them and makes new ones.
    struct Sync {
        std::mutex mutex;
        std::condition_variable work_ready;   // workers sleeping between regions
        std::condition_variable region_done;  // the caller sleeping on its last chunks
        uint64_t wake_count = 0;              // guarded by mutex
    };

    void run_chunks(int n_chunks, int64_t work, Task task, void* ctx);
    void run_inline(int n_chunks, Task task, void* ctx);
    void run_shared(int n_chunks, Task task, void* ctx);
    int claim_chunks();
    void run_chunk(int chunk);
    bool wait_for_region_done(std::chrono::nanoseconds spin);
    void wake_workers();
    bool wait_for_work();
    void worker();
    void start_workers();
    void restart_after_fork();

    const int n_threads_;
    std::unique_ptr<Sync> sync_;
    std::unique_ptr<std::vector<std::thread>> threads_;
    unsigned fork_epoch_ = 0;  // the process generation whose threads threads_ holds

    // The region being run. task_, ctx_ and n_chunks_ are written before remaining_ publishes
    // them and read only by a thread that has claimed a chunk, which the caller waits for.
    Task task_ = nullptr;
    void* ctx_ = nullptr;
    int n_chunks_ = 0;
    std::atomic<int> remaining_{0};  // chunks not yet claimed; may dip below 0
    std::atomic<int> completed_{0};
    std::atomic<bool> caller_sleeping_{false};
    std::atomic<bool> failed_{false};
    std::exception_ptr error_;  // written by the first chunk to throw (failed_ exchange)

    std::atomic<bool> in_use_{false};  // a region is running: other callers run inline
    std::atomic<int> sleepers_{0};
    std::atomic<bool> stop_{false};

    std::atomic<bool> adaptive_{false};
    TeamPolicy policy_;   // used only by the thread that holds in_use_
    SoloCost solo_cost_;  // likewise
    // End of the last measured region, in wall time and (while probing; else -1) in the
    // calling thread's CPU time (likewise): the policy also counts the time the calling
    // thread lost between regions, where a team's spinning workers can take its core.
    std::chrono::steady_clock::time_point last_region_end_{};
    int64_t last_region_cpu_end_ = -1;

    // Stats, written only by the thread that holds in_use_ (atomic for stats() readers).
    struct Counters {
        std::atomic<int64_t> shared_regions{0}, solo_regions{0}, short_regions{0}, caller_chunks{0},
            worker_chunks{0}, lonely_regions{0}, caller_wait_ns{0}, caller_sleeps{0};
    };
    Counters counters_;
};

}  // namespace bitnet
