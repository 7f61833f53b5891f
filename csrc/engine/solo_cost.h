// How long a region takes on the calling thread alone, learnt from the regions an adaptive
// pool ran alone (docs/threads.md, "Adapting to a busy machine").
//
// A region's work estimate counts multiply-accumulates or element operations, and what one
// unit costs depends on the kernel and the machine: a small model's prefill matrices pass the
// pool's work threshold while taking tens of microseconds, and sharing such a region costs
// about what a second thread saves (publishing it, a sleeping worker's wake-up, waiting for
// the last chunk). So the pool keeps, per class of regions (a kind of region and a power of
// two of work, region_class.h), the time per unit measured alone, and runs a region alone when that
// predicts less than kMinSharedNs. A class never run alone is not known to be short: its regions
// are shared as before.
#pragma once

#include <algorithm>
#include <cstdint>

#include "region_class.h"

namespace bitnet {

class SoloCost {
 public:
    // Below this predicted time alone, a region is not worth sharing: half of it is about
    // what waking a sleeping worker and waiting for its last chunk cost.
    static constexpr int64_t kMinSharedNs = 50'000;

    // Whether regions of `kind` (region_class) and about `work` units (> 0) were measured to
    // take less than kMinSharedNs alone.
    bool known_short(int64_t work, uintptr_t kind = 0) const {
        const double per_unit = ns_per_unit_[region_class(kind, work)];
        return per_unit > 0 && static_cast<double>(work) * per_unit < kMinSharedNs;
    }

    // A region of `kind` and `work` units (> 0) that ran on the calling thread alone in `ns`.
    void record_solo(int64_t work, int64_t ns, uintptr_t kind = 0) {
        double& per_unit = ns_per_unit_[region_class(kind, work)];
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
    static constexpr double kAverageWeight = 0.25;
    static constexpr double kMaxJump = 4;

    double ns_per_unit_[kRegionClasses] = {};  // 0: never measured alone
};

}  // namespace bitnet
