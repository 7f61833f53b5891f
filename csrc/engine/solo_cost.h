// How long a region takes on the calling thread alone, learnt from the regions an adaptive
// pool ran alone (docs/threads.md, "Adapting to a busy machine").
//
// A region's work estimate counts multiply-accumulates or element operations, and what one
// unit costs depends on the kernel and the machine: a small model's prefill matrices pass the
// pool's work threshold while taking tens of microseconds, and sharing such a region costs
// about what a second thread saves (publishing it, a sleeping worker's wake-up, waiting for
// the last chunk). So the pool keeps, per power of two of work (regions of one kind and size
// fall in one class, a decode step's and a long prompt's in different ones), the time per
// unit measured alone, and runs a region alone when that predicts less than kMinSharedNs.
// A class never run alone is not known to be short: its regions are shared as before.
#pragma once

#include <algorithm>
#include <cstdint>

namespace bitnet {

class SoloCost {
 public:
    // Below this predicted time alone, a region is not worth sharing: half of it is about
    // what waking a sleeping worker and waiting for its last chunk cost.
    static constexpr int64_t kMinSharedNs = 50'000;

    // Whether regions of about `work` units (> 0) were measured to take less than
    // kMinSharedNs alone.
    bool known_short(int64_t work) const {
        const double per_unit = ns_per_unit_[size_class(work)];
        return per_unit > 0 && static_cast<double>(work) * per_unit < kMinSharedNs;
    }

    // A region of `work` units (> 0) that ran on the calling thread alone in `ns`.
    void record_solo(int64_t work, int64_t ns) {
        double& per_unit = ns_per_unit_[size_class(work)];
        const double measured = static_cast<double>(ns) / static_cast<double>(work);
        if (per_unit <= 0) {
            per_unit = measured;
            return;
        }
        // A moving average over the last few regions, each counted as at most kMaxJump times
        // the average: a preempted region (a time slice in a region of microseconds) moves it
        // a little, a machine that really became slower moves it within a few regions.
        per_unit += (std::min(measured, kMaxJump * per_unit) - per_unit) * kAverageWeight;
    }

 private:
    static constexpr int kClasses = 64;
    static constexpr double kAverageWeight = 0.25;
    static constexpr double kMaxJump = 4;

    static int size_class(int64_t work) {  // floor(log2(work)), work > 0
        return 63 - __builtin_clzll(static_cast<uint64_t>(work));
    }

    double ns_per_unit_[kClasses] = {};  // 0: never measured alone
};

}  // namespace bitnet
