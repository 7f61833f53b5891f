// ThreadPool: every item visited exactly once whatever the split, small work on the calling
// thread, calls from inside a region and from several threads at once, more threads than
// cores, exceptions, fork() (the child gets working threads; the parent keeps its own), and
// the adaptive team: the policy's choices, a pool whose worker loses its core mid-chunk, and
// regions measured too short to share.
// Prints one line per failed check and "N passed, M failed"; exits non-zero on a failure. A
// hang is a failure too: an alarm ends the process.
#include "../engine/thread_pool.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using bitnet::SoloCost;
using bitnet::TeamPolicy;
using bitnet::ThreadPool;

namespace {

constexpr unsigned kWholeTestSeconds = 300;
constexpr int kChildSeconds = 60;
constexpr int64_t kBig = ThreadPool::kUnknownWork;

int passed = 0, failed = 0;

void check(bool ok, const std::string& what) {
    (ok ? passed : failed)++;
    if (!ok) std::printf("FAIL %s\n", what.c_str());
}

// Counts visits per item; true when every item in [0, n) was visited exactly once.
class Visits {
 public:
    explicit Visits(int n) : counts_(n) {}
    void visit(int begin, int end) {
        for (int i = begin; i < end; ++i) counts_[i].fetch_add(1, std::memory_order_relaxed);
    }
    bool each_once() const {
        for (const auto& c : counts_) {
            if (c.load() != 1) return false;
        }
        return true;
    }

 private:
    std::vector<std::atomic<int>> counts_;
};

bool parallel_for_covers(ThreadPool& pool, int n) {
    Visits v(n);
    pool.parallel_for(n, [&](int b, int e) { v.visit(b, e); });
    return v.each_once();
}

bool dynamic_covers(ThreadPool& pool, int n, int grain, int64_t work = kBig) {
    Visits v(n);
    pool.parallel_for_dynamic(n, grain, work, [&](int b, int e) { v.visit(b, e); });
    return v.each_once();
}

bool run_covers(ThreadPool& pool) {
    Visits v(pool.size());
    bool sizes_ok = true;
    pool.run([&](int i, int n) {
        if (n != pool.size()) sizes_ok = false;
        v.visit(i, i + 1);
    });
    return sizes_ok && v.each_once();
}

void test_coverage() {
    for (int threads : {1, 2, 3, 8}) {
        ThreadPool pool(threads);
        const std::string t = " threads=" + std::to_string(threads);
        for (int n : {0, 1, 2, 7, 64, 1000, 100003}) {
            check(parallel_for_covers(pool, n), "parallel_for n=" + std::to_string(n) + t);
            for (int grain : {1, 2, 5, 64, 4096}) {
                check(dynamic_covers(pool, n, grain),
                      "parallel_for_dynamic n=" + std::to_string(n) +
                          " grain=" + std::to_string(grain) + t);
            }
        }
        check(run_covers(pool), "run" + t);
        // Many regions back to back: workers go between spinning, claiming and sleeping.
        bool all = true;
        for (int r = 0; r < 3000; ++r) all = all && dynamic_covers(pool, 257, 3);
        check(all, "3000 regions" + t);
    }
}

void test_small_work_stays_on_caller() {
    ThreadPool pool(4);
    const auto me = std::this_thread::get_id();
    bool on_caller = true;
    const int64_t small = ThreadPool::kMinWorkPerThread;
    check(!pool.worth_sharing(small), "worth_sharing(kMinWorkPerThread) is false");
    check(pool.worth_sharing(2 * small), "worth_sharing(2 * kMinWorkPerThread) is true");
    check(!ThreadPool(1).worth_sharing(kBig), "a 1-thread pool never shares");
    Visits v(1000);
    pool.parallel_for_dynamic(1000, 4, small, [&](int b, int e) {
        on_caller = on_caller && std::this_thread::get_id() == me;
        v.visit(b, e);
    });
    check(on_caller && v.each_once(), "small parallel_for_dynamic runs on the caller");
    int calls = 0;
    pool.run(small, [&](int, int) {
        on_caller = on_caller && std::this_thread::get_id() == me;
        ++calls;
    });
    check(on_caller && calls == 4, "small run makes every call on the caller");
}

void test_nested_and_concurrent() {
    ThreadPool pool(3);
    Visits outer(64);
    std::atomic<bool> inner_ok{true};
    pool.parallel_for(64, [&](int b, int e) {
        outer.visit(b, e);
        if (!parallel_for_covers(pool, 100)) inner_ok = false;
    });
    check(outer.each_once() && inner_ok, "parallel_for inside a region");

    std::atomic<int> bad{0};
    std::vector<std::thread> callers;
    for (int c = 0; c < 4; ++c) {
        callers.emplace_back([&, c] {
            for (int r = 0; r < 300; ++r) {
                if (!dynamic_covers(pool, 500 + c, 7)) bad++;
            }
        });
    }
    for (auto& t : callers) t.join();
    check(bad == 0, "four threads sharing one pool");
}

void test_oversubscribed() {
    // Far more threads than this machine has cores: every region must still finish.
    const int threads = 4 * static_cast<int>(std::thread::hardware_concurrency()) + 8;
    ThreadPool pool(threads);
    bool all = true;
    for (int r = 0; r < 2000; ++r) all = all && dynamic_covers(pool, 4096, 16);
    for (int r = 0; r < 200; ++r) all = all && run_covers(pool);
    check(all, "oversubscribed pool of " + std::to_string(threads) + " threads");
}

void test_exceptions() {
    ThreadPool pool(4);
    bool threw = false;
    try {
        pool.parallel_for_dynamic(1000, 10, [&](int b, int) {
            if (b == 500) throw std::runtime_error("chunk 50");
        });
    } catch (const std::runtime_error& e) {
        threw = std::string(e.what()) == "chunk 50";
    }
    check(threw, "an exception in a chunk reaches the caller");
    check(dynamic_covers(pool, 1000, 10), "the pool works after an exception");
    bool rejected = false;
    try {
        ThreadPool too_many(ThreadPool::kMaxThreads + 1);
    } catch (const std::invalid_argument&) {
        rejected = true;
    }
    check(rejected, "more than kMaxThreads threads is rejected");
    rejected = false;
    try {
        ThreadPool none(0);
    } catch (const std::invalid_argument&) {
        rejected = true;
    }
    check(rejected, "0 threads is rejected");
}

// Runs `child` in a forked process (exit status 0 = pass) and waits at most kChildSeconds.
bool in_child(bool (*child)(ThreadPool&), ThreadPool& pool) {
    std::fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
        alarm(kChildSeconds);
        _exit(child(pool) ? 0 : 1);
    }
    if (pid < 0) return false;
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return false;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool child_uses_pool(ThreadPool& pool) {
    bool all = true;
    for (int r = 0; r < 200; ++r) all = all && dynamic_covers(pool, 4096, 16);
    return all && run_covers(pool) && parallel_for_covers(pool, 1000);
}

bool child_forks_again(ThreadPool& pool) {
    return child_uses_pool(pool) && in_child(child_uses_pool, pool) && child_uses_pool(pool);
}

bool child_destroys_unused_pool(ThreadPool&) {
    auto* pool = new ThreadPool(3);
    pool->parallel_for(1000, [](int, int) {});
    // A pool created here and destroyed after a fork in the grandchild...
    const bool ok = in_child(
        [](ThreadPool& p) {
            delete &p;  // ...joins no thread of another process
            return true;
        },
        *pool);
    delete pool;
    return ok;
}

void test_fork() {
    ThreadPool pool(2);
    check(dynamic_covers(pool, 4096, 16), "parent before fork");
    check(in_child(child_uses_pool, pool), "child of fork uses the parent's pool");
    check(dynamic_covers(pool, 4096, 16), "parent after fork");
    check(in_child(child_forks_again, pool), "grandchild of fork");
    check(in_child(child_destroys_unused_pool, pool), "pool destroyed in a child");
    ThreadPool busy(2);
    // Fork while the pool's workers are spinning right after a region.
    dynamic_covers(busy, 100000, 8);
    check(in_child(child_uses_pool, busy), "fork right after a region");
}

// Feeds `policy` one region per block of the probe: shared, alone, alone, shared.
void probe(TeamPolicy& policy, int64_t shared_work, int64_t solo_work, int64_t ns) {
    policy.record(shared_work, ns);
    policy.record(solo_work, ns);
    policy.record(solo_work, ns);
    policy.record(shared_work, ns);
}

// Records `n` regions of `work` units lasting `ns` each; true if the policy's choice was `share`
// before the first of them and after every one.
bool keeps_choice(TeamPolicy& policy, bool share, int n, int64_t work, int64_t ns) {
    bool kept = policy.share() == share;
    for (int r = 0; r < n; ++r) {
        policy.record(work, ns);
        kept = kept && policy.share() == share;
    }
    return kept;
}

// A policy past its short first probe (shared, alone, alone, shared; sharing twice as fast),
// and past that probe's exploit time.
TeamPolicy after_first_probe(const TeamPolicy::Params& params) {
    TeamPolicy policy(params);
    probe(policy, 2 * params.first_block_ns, params.first_block_ns, params.first_block_ns);
    policy.record(params.first_block_ns, 4 * params.first_block_ns * params.exploit_per_probe);
    return policy;
}

// TeamPolicy on made-up measurements: probes shared, alone, alone, shared; keeps the faster
// mode for the exploit time; probes again.
void test_team_policy() {
    TeamPolicy::Params params;
    params.block_ns = 1000;
    params.first_block_ns = 100;
    params.min_exploit_ns = 10000;
    params.exploit_per_probe = 2;

    // The first probe has short blocks, and its choice is kept 2x its length only.
    TeamPolicy first(params);
    check(first.share(), "the first probe starts with a shared block");
    first.record(100, 100);
    check(!first.share(), "a first probe's block lasts its own, shorter time");
    first.record(300, 100);
    first.record(300, 100);
    check(first.share(), "the first probe ends shared");
    first.record(100, 100);
    check(keeps_choice(first, false, 7, 300, 100),
          "alone was faster: alone for 2x the first probe's time");
    first.record(300, 100);
    check(first.share(), "then a probe of full blocks starts shared");
    first.record(1000, 900);
    check(first.share(), "whose blocks last the full block time");

    TeamPolicy busy = after_first_probe(params);
    check(busy.share(), "the policy starts with a shared block");
    busy.record(500, 500);
    check(busy.share(), "a block lasts its region time");
    busy.record(500, 500);
    check(!busy.share(), "then a block alone");
    busy.record(3000, 1000);
    check(!busy.share(), "and another alone");
    busy.record(3000, 1000);
    check(busy.share(), "and a shared one");
    busy.record(1000, 1000);
    check(!busy.share(), "alone was faster: it stays alone");
    check(keeps_choice(busy, false, 9, 3000, 1000), "alone for the exploit time");
    busy.record(3000, 1000);
    check(busy.share(), "then the next probe starts shared");
    probe(busy, 1000, 3000, 1000);
    check(!busy.share(), "still busy: alone again");

    TeamPolicy quiet = after_first_probe(params);
    probe(quiet, 2000, 1000, 1000);
    check(keeps_choice(quiet, true, 9, 2000, 1000),
          "sharing was faster: shared for the exploit time");
    quiet.record(2000, 1000);
    quiet.record(2000, 1000);
    check(!quiet.share(), "the next probe measures alone again");

    TeamPolicy tie = after_first_probe(params);
    probe(tie, 1000, 1000, 1000);
    check(!tie.share(), "a tie goes to the calling thread alone");
    TeamPolicy small_gain = after_first_probe(params);
    probe(small_gain, 1050, 1000, 1000);
    check(!small_gain.share(), "so does sharing that is less than 10% faster");
    TeamPolicy gain = after_first_probe(params);
    probe(gain, 1150, 1000, 1000);
    check(gain.share(), "sharing 15% faster is kept");

    // Blocks of uneven mixes: the shared blocks hold many regions of a kind that costs much
    // per unit (a decode step's matrix-vector products), the alone blocks mostly a kind that
    // costs little (a prompt's matrix products). Over all work, sharing looks only 6% faster;
    // per kind it is 1.6x faster, and that is what counts.
    TeamPolicy::Params mixed_params = params;
    mixed_params.block_ns = 5000;
    TeamPolicy mixed = after_first_probe(mixed_params);
    const int64_t gemv = int64_t(1) << 20, gemm = int64_t(1) << 24;
    for (int block = 0; block < 4; ++block) {
        const bool shared = block == 0 || block == 3;
        check(mixed.share() == shared, "the mixed probe's blocks: shared, alone, alone, shared");
        for (int r = 0; r < (shared ? 6 : 1); ++r) mixed.record(gemv, shared ? 600 : 1000);
        mixed.record(gemm, shared ? 2500 : 4000);
    }
    check(mixed.share(), "sharing is compared per kind of region");
    // The same with two kinds of the same work (the output head for one token, a prompt's
    // projection): told apart by their kind.
    TeamPolicy kinds = after_first_probe(mixed_params);
    const uintptr_t head = 1, projection = 2;
    for (int block = 0; block < 4; ++block) {
        const bool shared = block == 0 || block == 3;
        for (int r = 0; r < (shared ? 6 : 1); ++r) kinds.record(gemm, shared ? 600 : 1000, head);
        kinds.record(gemm, shared ? 2500 : 4000, projection);
    }
    check(kinds.share(), "regions of the same work and different kinds are compared apart");

    // A probe of long regions (a prefill) is followed by an exploit 2x its length.
    TeamPolicy long_regions = after_first_probe(params);
    probe(long_regions, 1000, 3000, 100000);
    bool alone = true;
    for (int r = 0; r < 7; ++r) {
        long_regions.record(3000, 100000);
        alone = alone && !long_regions.share();
    }
    check(alone, "the exploit time grows with the probe's");
}

// A region whose chunks take a few microseconds on the calling thread, and a millisecond on
// any other thread: a worker that loses its core in the middle of its chunk. With
// `await_worker`, the caller's first chunk waits (at most a second) until a worker has
// started one, so that the region surely waits for it.
bool slow_worker_region(ThreadPool& pool, bool await_worker = false) {
    const auto caller = std::this_thread::get_id();
    std::atomic<bool> worker_started{false};
    Visits v(64);
    pool.parallel_for_dynamic(64, 8, int64_t(1) << 30, [&](int b, int e) {
        using std::chrono::steady_clock;
        if (std::this_thread::get_id() != caller) {
            worker_started = true;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        } else if (await_worker && b == 0) {
            const auto until = steady_clock::now() + std::chrono::seconds(1);
            while (!worker_started && steady_clock::now() < until) std::this_thread::yield();
        } else {
            const auto until = steady_clock::now() + std::chrono::microseconds(5);
            while (steady_clock::now() < until) {
            }
        }
        v.visit(b, e);
    });
    return v.each_once();
}

void test_adaptive_team() {
    ThreadPool fixed(2);
    check(!fixed.adaptive(), "a pool is not adaptive unless asked");
    bool covered = true;
    for (int r = 0; r < 40; ++r) covered = slow_worker_region(fixed, true) && covered;
    const ThreadPool::Stats f = fixed.stats();
    check(covered && f.solo_regions == 0 && f.shared_regions == 40,
          "a fixed pool shares every region, however slow its worker");
    check(f.caller_chunks + f.worker_chunks == 40 * 8, "stats count every chunk");

    ThreadPool adaptive(2);
    adaptive.set_adaptive(true);
    constexpr int kRegions = 3000;
    for (int r = 0; r < kRegions; ++r) covered = slow_worker_region(adaptive) && covered;
    const ThreadPool::Stats a = adaptive.stats();
    check(covered, "every item once while the team adapts");
    check(a.solo_regions + a.shared_regions == kRegions, "stats count every region");
    // A region the worker joins waits a millisecond for it, one alone takes about 40 us.
    // Shared regions no worker joined in time cost what one alone does, so the short first
    // probe may pick either; sharing is then kept 30 times that probe's time (~0.1 s, ~100
    // joined regions), and the first full probe picks alone for at least a second of region
    // time, longer than the rest of these regions last. So the regions that waited for the
    // worker stay a small share of all.
    const int64_t joined = a.shared_regions - a.lonely_regions;
    check(a.solo_regions > 0 && joined <= kRegions / 12,
          "an adaptive pool rarely waits for a slow worker (solo " +
              std::to_string(a.solo_regions) + ", shared " + std::to_string(a.shared_regions) +
              ", joined by the worker " + std::to_string(joined) + ")");
    check(f.caller_sleeps > 0 && f.caller_wait_ns > 0, "the caller's waits are counted");

    // Regions of unknown size are never measured, so an adaptive pool shares them.
    ThreadPool::Stats before = adaptive.stats();
    check(dynamic_covers(adaptive, 4096, 16), "unknown work on an adaptive pool");
    check(adaptive.stats().shared_regions == before.shared_regions + 1,
          "unknown work is shared by an adaptive pool");
}

// SoloCost on made-up measurements: a size class is short once measured short alone, and
// one slow region does not make it long.
void test_solo_cost() {
    const int64_t work = int64_t(1) << 21;
    SoloCost cost;
    check(!cost.known_short(work), "a size never run alone is not known to be short");
    cost.record_solo(work, 10'000);
    check(cost.known_short(work), "10 us alone is short");
    check(cost.known_short(2 * work - 1), "so is about 20 us of the same size class");
    check(!cost.known_short(2 * work), "the next power of two is another class");
    check(!cost.known_short(work, 1), "another kind of region is another class");
    cost.record_solo(4 * work, 100'000);
    check(!cost.known_short(4 * work), "100 us alone is worth sharing");
    cost.record_solo(work, 4'000'000);
    check(cost.known_short(work), "one preempted region leaves a class short");
    int slow_regions = 0;
    while (cost.known_short(work) && slow_regions < 10) {
        cost.record_solo(work, 200'000);
        ++slow_regions;
    }
    check(slow_regions <= 4, "a class that became slow is shared again within a few regions");
}

// A region of 256 items in chunks of 16, from one call site (so regions of one kind, as the
// pool learns them): whether it visited every item once, and whether only on the caller.
struct RegionRun {
    bool covered;
    bool on_caller;
};
RegionRun chunks_of_16(ThreadPool& pool, int64_t work) {
    const auto me = std::this_thread::get_id();
    std::atomic<bool> on_caller{true};
    Visits v(256);
    pool.parallel_for_dynamic(256, 16, work, [&](int b, int e) {
        if (std::this_thread::get_id() != me) on_caller = false;
        v.visit(b, e);
    });
    return {v.each_once(), on_caller};
}

// An adaptive pool runs regions it measured short alone on the calling thread, whatever the
// team policy chose; a fixed pool shares them.
void test_short_regions_alone() {
    const int64_t work = int64_t(1) << 30;  // claimed large, takes microseconds
    ThreadPool fixed(2);
    for (int r = 0; r < 100; ++r) dynamic_covers(fixed, 256, 16, work);
    check(fixed.stats().short_regions == 0 && fixed.stats().shared_regions == 100,
          "a fixed pool shares short regions");

    ThreadPool adaptive(2);
    adaptive.set_adaptive(true);
    bool covered = true;
    for (int r = 0; r < 100000 && adaptive.stats().short_regions == 0; ++r) {
        covered = chunks_of_16(adaptive, work).covered && covered;
    }
    check(covered && adaptive.stats().short_regions > 0,
          "an adaptive pool learns that regions of a few microseconds are short");
    const ThreadPool::Stats before = adaptive.stats();
    const RegionRun run = chunks_of_16(adaptive, work);
    check(
        run.covered && run.on_caller && adaptive.stats().short_regions == before.short_regions + 1,
        "a short region runs on the calling thread");
    const ThreadPool::Stats again = adaptive.stats();
    check(dynamic_covers(adaptive, 256, 16, work) &&
              adaptive.stats().short_regions == again.short_regions,
          "a region of the same work from another call site is learnt apart");
}

}  // namespace

int main() {
    alarm(kWholeTestSeconds);
    test_coverage();
    test_small_work_stays_on_caller();
    test_nested_and_concurrent();
    test_oversubscribed();
    test_exceptions();
    test_fork();
    test_team_policy();
    test_adaptive_team();
    test_solo_cost();
    test_short_regions_alone();
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
