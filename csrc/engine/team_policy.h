// Whether a pool whose thread count the user did not choose should share its regions or run
// them on the calling thread alone (docs/threads.md, "Adapting to a busy machine").
//
// Sharing pays only while the other threads get cores: beside another busy program a worker
// loses its core in the middle of a chunk now and then, the region waits a scheduler time
// slice for it, and the calling thread alone is faster. No single region shows this (a
// preemption is rare per region and costly when it happens), so the policy measures
// throughput, in work units per nanosecond of region time, in a probe of four blocks of several
// milliseconds each: shared, alone, alone, shared (the symmetric order cancels a workload
// that changes steadily, such as a prompt's prefill giving way to decoding). What a unit of
// work costs differs between kinds of regions (region_class.h), and a block of a few
// milliseconds holds an uneven mix of them (the output head, a step's end), so the modes are
// compared per class of regions both measured, weighted by the probe's work in each. It then
// keeps the faster mode for many times the probe's length and probes again. The very first probe is
// short: a small model's call is a few milliseconds of regions, and a probe that outlasts the
// calls it measures never acts on them. Its choice is kept only 30 times its own length, so a
// choice misled by its short blocks soon meets a full probe. The split of work into chunks is
// the same in both modes, so results do not depend on the choice.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "region_class.h"

namespace bitnet {

class TeamPolicy {
 public:
    struct Params {
        // Region time of one probe block: tens of a token's regions, and a few of the
        // scheduler's time slices (the preemptions that make sharing slow are rare events:
        // a shorter block often sees none and misleads).
        int64_t block_ns = 8'000'000;
        // The first probe's blocks: a few of a small model's prefill regions, or one of a
        // large model's, so the first choice comes within the first call.
        int64_t first_block_ns = 1'000'000;
        // Region time the faster mode is kept before the next probe: at least this, and
        // `exploit_per_probe` times the probe's own time (a probe of long prefill regions
        // takes longer), so the slower mode's blocks cost a few percent at most.
        int64_t min_exploit_ns = 1'000'000'000;
        int64_t exploit_per_probe = 30;
    };

    TeamPolicy() = default;
    explicit TeamPolicy(const Params& params) : params_(params) {}

    // Whether the next region should be shared with the pool's other threads.
    bool share() const { return block_ < kProbeBlocks ? kProbeShares[block_] : exploit_share_; }

    // Whether the next region is part of a probe (measured closely) rather than of the
    // time the chosen mode is kept.
    bool probing() const { return block_ < kProbeBlocks; }

    // One region, run as share() said: its work estimate, its wall time and its kind
    // (region_class).
    void record(int64_t work, int64_t ns, uintptr_t kind = 0) {
        if (block_ == kProbeBlocks) {
            exploit_left_ns_ -= ns;
            if (exploit_left_ns_ <= 0) start_probe();
            return;
        }
        const int mode = kProbeShares[block_] ? 1 : 0;
        const int c = region_class(kind, work);
        work_[mode][c] += static_cast<double>(work);
        ns_[mode][c] += static_cast<double>(ns);
        probe_ns_ += ns;
        block_ns_ += ns;
        if (block_ns_ < (first_probe_ ? params_.first_block_ns : params_.block_ns)) return;
        block_ns_ = 0;
        if (++block_ < kProbeBlocks) return;
        // Sharing must be faster by a margin: a second thread that gains little costs another
        // program a core, and the margin bounds what going alone can lose (1 / 1.1 of the
        // shared speed) while keeping a noisy probe beside a busy program from choosing a
        // team that its rare preemptions make slower (benchmarks/README.md, "Figures of
        // 2026-12-04").
        exploit_share_ = alone_over_shared_time() >= kShareGain;
        const int64_t scaled = probe_ns_ * params_.exploit_per_probe;
        exploit_left_ns_ = first_probe_ ? scaled : std::max(params_.min_exploit_ns, scaled);
        first_probe_ = false;
    }

 private:
    static constexpr int kProbeBlocks = 4;
    static constexpr double kShareGain = 1.1;
    static constexpr bool kProbeShares[kProbeBlocks] = {true, false, false, true};

    void start_probe() {
        block_ = 0;
        block_ns_ = 0;
        probe_ns_ = 0;
        std::memset(work_, 0, sizeof work_);
        std::memset(ns_, 0, sizeof ns_);
    }

    // How much longer the probe's work would take alone than shared: per class measured in
    // both modes, its work at each mode's time per unit; with no such class (a first probe of
    // a few regions), the two modes' whole work and time.
    double alone_over_shared_time() const {
        double alone = 0, shared = 0;
        double all_work[2] = {}, all_ns[2] = {};
        for (int c = 0; c < kRegionClasses; ++c) {
            for (int m = 0; m < 2; ++m) {
                all_work[m] += work_[m][c];
                all_ns[m] += ns_[m][c];
            }
            if (work_[0][c] == 0 || work_[1][c] == 0) continue;
            const double work = work_[0][c] + work_[1][c];
            alone += work * ns_[0][c] / work_[0][c];
            shared += work * ns_[1][c] / work_[1][c];
        }
        if (shared > 0) return alone / shared;
        return (all_ns[0] / all_work[0]) / (all_ns[1] / all_work[1]);
    }

    Params params_;
    bool first_probe_ = true;
    int block_ = 0;  // the probe block being measured; kProbeBlocks: keeping exploit_share_
    int64_t block_ns_ = 0;
    int64_t probe_ns_ = 0;
    // This probe's work and time per mode ([0] alone, [1] shared) and class of regions.
    double work_[2][kRegionClasses] = {};
    double ns_[2][kRegionClasses] = {};
    bool exploit_share_ = true;
    int64_t exploit_left_ns_ = 0;
};

}  // namespace bitnet
