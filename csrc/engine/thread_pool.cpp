#include "thread_pool.h"

#include <pthread.h>

#include <chrono>
#include <ctime>
#include <stdexcept>
#include <string>

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

using Clock = std::chrono::steady_clock;

// How long an idle worker spins before it sleeps: long enough to bridge the gaps between the
// regions of one token, short enough to give a core back to other programs between tokens.
constexpr auto kWorkerSpin = std::chrono::microseconds(200);
// How long a caller spins on chunks other threads still hold before it sleeps: at least this,
// and twice its own time per chunk (a running thread finishes its chunk within about one
// chunk's time; one that was descheduled takes a time slice or more, and then the caller's
// core is better left idle, where the scheduler can move that thread).
constexpr auto kCallerSpin = std::chrono::microseconds(50);
// The longest gap between two measured regions whose lost time the team policy counts: about
// a scheduler time slice (longer gaps are the caller's own pauses, such as idle time between
// requests).
constexpr int64_t kCountedGapNs = 4'000'000;
// Spins between two reads of the clock.
constexpr int kSpinsPerClockRead = 64;

int64_t nanoseconds(Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

// CPU time of the calling thread (a system call, so read only while the team policy probes).
int64_t thread_cpu_ns() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

// Adds to a counter only the thread holding the pool's region writes (no read-modify-write).
void bump(std::atomic<int64_t>& counter, int64_t n) {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// Bumped in every child process fork() creates: a pool whose threads were started in another
// generation has no threads in this process.
std::atomic<unsigned> g_fork_epoch{0};
void on_fork_child() { g_fork_epoch.fetch_add(1, std::memory_order_relaxed); }

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads) {
    if (n_threads < 1 || n_threads > kMaxThreads) {
        throw std::invalid_argument("n_threads must be between 1 and " +
                                    std::to_string(kMaxThreads) + ", got " +
                                    std::to_string(n_threads));
    }
    static std::once_flag registered;
    std::call_once(registered, [] { pthread_atfork(nullptr, nullptr, on_fork_child); });
    start_workers();
}

ThreadPool::~ThreadPool() {
    if (fork_epoch_ != g_fork_epoch.load(std::memory_order_relaxed)) {
        // Threads of another process: nothing to join here.
        static_cast<void>(threads_.release());
        static_cast<void>(sync_.release());
        return;
    }
    stop_.store(true);
    wake_workers();
    for (auto& t : *threads_) t.join();
}

void ThreadPool::start_workers() {
    sync_ = std::make_unique<Sync>();
    threads_ = std::make_unique<std::vector<std::thread>>();
    fork_epoch_ = g_fork_epoch.load(std::memory_order_relaxed);
    threads_->reserve(n_threads_ - 1);
    try {
        for (int i = 1; i < n_threads_; ++i) threads_->emplace_back([this] { worker(); });
    } catch (...) {
        // Out of threads or memory: stop the ones that started rather than leave them running.
        stop_.store(true);
        wake_workers();
        for (auto& t : *threads_) t.join();
        threads_->clear();
        throw;
    }
}

void ThreadPool::restart_after_fork() {
    // The child of a fork has none of the workers, and the old mutex may be held by one of
    // them forever: both are abandoned (a few hundred bytes), never joined or unlocked.
    static std::mutex restarting;
    std::lock_guard<std::mutex> lock(restarting);
    if (fork_epoch_ == g_fork_epoch.load(std::memory_order_relaxed)) return;
    static_cast<void>(threads_.release());
    static_cast<void>(sync_.release());
    remaining_.store(0);
    completed_.store(0);
    caller_sleeping_.store(false);
    sleepers_.store(0);
    in_use_.store(false);
    start_workers();
}

void ThreadPool::run_inline(int n_chunks, Task task, void* ctx) {
    for (int c = 0; c < n_chunks; ++c) task(ctx, c, n_chunks);
}

void ThreadPool::run_chunks(int n_chunks, int64_t work, Task task, void* ctx) {
    if (n_chunks <= 1 || !worth_sharing(work)) {
        run_inline(n_chunks, task, ctx);
        return;
    }
    if (fork_epoch_ != g_fork_epoch.load(std::memory_order_relaxed)) restart_after_fork();
    // Another thread's region, or a call from inside one of this pool's chunks.
    if (in_use_.exchange(true, std::memory_order_acquire)) {
        run_inline(n_chunks, task, ctx);
        return;
    }
    struct Release {
        std::atomic<bool>& in_use;
        ~Release() { in_use.store(false, std::memory_order_release); }
    } release{in_use_};
    // Loading and tests pass no estimate: nothing to measure, always shared.
    const bool measured = adaptive() && work != kUnknownWork;
    // The region's kind for what the pool learns: its task, one function per call site.
    const auto kind = reinterpret_cast<uintptr_t>(task);
    // Short alone, whatever the team policy says: such regions run alone in both of its
    // modes, so its probe compares sharing the others with running everything alone.
    const bool short_region = measured && solo_cost_.known_short(work, kind);
    const bool share = !measured || (!short_region && policy_.share());
    const bool probing = measured && policy_.probing();
    const int64_t cpu_start = probing ? thread_cpu_ns() : 0;
    const auto start = Clock::now();
    if (share) {
        run_shared(n_chunks, task, ctx);
    } else {
        run_inline(n_chunks, task, ctx);
        bump(counters_.solo_regions, 1);
        bump(counters_.short_regions, short_region ? 1 : 0);
    }
    if (!measured) return;
    const auto end = Clock::now();
    const int64_t ns = nanoseconds(end - start);
    // Beside a busy program a shared team's workers, spinning between regions, are one
    // thread more than the cores: the calling thread then loses its core between regions,
    // which region time alone does not show. So the policy also counts the time the caller
    // lost in the gap before the region (wall time less its CPU time; not the caller's own
    // work there, which both modes share and which would only add noise), for gaps of a
    // scheduler time slice or less: a longer one is the caller's own pause.
    int64_t lost = 0;
    if (probing && last_region_cpu_end_ >= 0) {
        const int64_t gap = nanoseconds(start - last_region_end_);
        if (gap > 0 && gap <= kCountedGapNs) {
            lost = std::max<int64_t>(0, gap - (cpu_start - last_region_cpu_end_));
        }
    }
    last_region_end_ = end;
    last_region_cpu_end_ = probing ? thread_cpu_ns() : -1;
    policy_.record(work, ns + lost, kind);
    if (!share) solo_cost_.record_solo(work, ns, kind);
}

void ThreadPool::run_shared(int n_chunks, Task task, void* ctx) {
    task_ = task;
    ctx_ = ctx;
    n_chunks_ = n_chunks;
    failed_.store(false, std::memory_order_relaxed);
    completed_.store(0, std::memory_order_relaxed);
    remaining_.store(n_chunks);  // publishes the region (seq_cst: see wait_for_work)
    if (sleepers_.load() > 0) wake_workers();
    const auto start = Clock::now();
    const int mine = claim_chunks();
    const auto claimed = Clock::now();
    const auto per_chunk = (claimed - start) / std::max(mine, 1);
    const bool slept =
        wait_for_region_done(std::max<std::chrono::nanoseconds>(kCallerSpin, 2 * per_chunk));
    bump(counters_.shared_regions, 1);
    bump(counters_.caller_chunks, mine);
    bump(counters_.worker_chunks, n_chunks - mine);
    bump(counters_.lonely_regions, mine == n_chunks ? 1 : 0);
    bump(counters_.caller_wait_ns, nanoseconds(Clock::now() - claimed));
    bump(counters_.caller_sleeps, slept ? 1 : 0);
    std::exception_ptr error;
    if (failed_.load(std::memory_order_acquire)) error = std::move(error_);
    if (error) std::rethrow_exception(error);
}

ThreadPool::Stats ThreadPool::stats() const {
    Stats s;
    s.shared_regions = counters_.shared_regions.load(std::memory_order_relaxed);
    s.solo_regions = counters_.solo_regions.load(std::memory_order_relaxed);
    s.short_regions = counters_.short_regions.load(std::memory_order_relaxed);
    s.caller_chunks = counters_.caller_chunks.load(std::memory_order_relaxed);
    s.worker_chunks = counters_.worker_chunks.load(std::memory_order_relaxed);
    s.lonely_regions = counters_.lonely_regions.load(std::memory_order_relaxed);
    s.caller_wait_ns = counters_.caller_wait_ns.load(std::memory_order_relaxed);
    s.caller_sleeps = counters_.caller_sleeps.load(std::memory_order_relaxed);
    return s;
}

int ThreadPool::claim_chunks() {
    for (int claimed = 0;; ++claimed) {
        const int left = remaining_.fetch_sub(1, std::memory_order_acq_rel);
        if (left <= 0) return claimed;
        run_chunk(n_chunks_ - left);
    }
}

void ThreadPool::run_chunk(int chunk) {
    // Once this chunk counts as completed the caller may start the next region: read first.
    const int n_chunks = n_chunks_;
    try {
        task_(ctx_, chunk, n_chunks);
    } catch (...) {
        if (!failed_.exchange(true, std::memory_order_acq_rel)) error_ = std::current_exception();
    }
    // seq_cst with caller_sleeping_: either the caller sees this chunk done, or this thread
    // sees the caller asleep and wakes it.
    if (completed_.fetch_add(1) + 1 == n_chunks && caller_sleeping_.load()) {
        std::lock_guard<std::mutex> lock(sync_->mutex);
        sync_->region_done.notify_one();
    }
}

// Returns whether the caller slept (the chunks were not done within `spin`).
bool ThreadPool::wait_for_region_done(std::chrono::nanoseconds spin) {
    const auto done = [&] { return completed_.load() == n_chunks_; };
    const auto spin_until = Clock::now() + spin;
    for (int spins = 1; !done(); ++spins) {
        BITNET_CPU_RELAX();
        if (spins % kSpinsPerClockRead == 0 && Clock::now() > spin_until) {
            std::unique_lock<std::mutex> lock(sync_->mutex);
            caller_sleeping_.store(true);
            sync_->region_done.wait(lock, done);
            caller_sleeping_.store(false);
            return true;
        }
    }
    return false;
}

void ThreadPool::wake_workers() {
    {
        std::lock_guard<std::mutex> lock(sync_->mutex);
        ++sync_->wake_count;
    }
    sync_->work_ready.notify_all();
}

// Returns when a region has chunks to claim (true) or the pool is stopping (false).
bool ThreadPool::wait_for_work() {
    const auto has_work = [&] { return remaining_.load(std::memory_order_relaxed) > 0; };
    auto spin_until = Clock::now() + kWorkerSpin;
    for (int spins = 1;; ++spins) {
        if (stop_.load(std::memory_order_relaxed)) return false;
        if (has_work()) return true;
        BITNET_CPU_RELAX();
        if (spins % kSpinsPerClockRead != 0 || Clock::now() < spin_until) continue;
        std::unique_lock<std::mutex> lock(sync_->mutex);
        // seq_cst with the caller's publication: either this thread sees the new region, or
        // the caller sees a sleeper and wakes it.
        sleepers_.fetch_add(1);
        if (remaining_.load() <= 0 && !stop_.load()) {
            const uint64_t seen = sync_->wake_count;
            sync_->work_ready.wait(lock, [&] { return sync_->wake_count != seen; });
        }
        sleepers_.fetch_sub(1);
        spin_until = Clock::now() + kWorkerSpin;
    }
}

void ThreadPool::worker() {
    while (wait_for_work()) claim_chunks();
}

}  // namespace bitnet
