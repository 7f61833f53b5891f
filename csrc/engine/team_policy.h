// Whether a pool whose thread count the user did not choose should share its regions or run
// them on the calling thread alone (docs/threads.md, "Adapting to a busy machine").
//
// Sharing pays only while the other threads get cores: beside another busy program a worker
// loses its core in the middle of a chunk now and then, the region waits a scheduler time
// slice for it, and the calling thread alone is faster. No single region shows this (a
// preemption is rare per region and costly when it happens), so the policy measures
// throughput, in work units per nanosecond of region time, in a probe of four blocks of several
// milliseconds each: shared, alone, alone, shared (the symmetric order cancels a workload
// that changes steadily, such as a prompt's prefill giving way to decoding). It then keeps
// the faster mode for many times the probe's length and probes again. The very first probe is
// short: a small model's call is a few milliseconds of regions, and a probe that outlasts the
// calls it measures never acts on them. Its choice is kept only 30 times its own length, so a
// choice misled by its short blocks soon meets a full probe. The split of work into chunks is
// the same in both modes, so results do not depend on the choice.
#pragma once

#include <algorithm>
#include <cstdint>

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

    // One region, run as share() said: its work estimate and its wall time.
    void record(int64_t work, int64_t ns) {
        if (block_ == kProbeBlocks) {
            exploit_left_ns_ -= ns;
            if (exploit_left_ns_ <= 0) start_probe();
            return;
        }
        const int mode = kProbeShares[block_] ? 1 : 0;
        work_[mode] += static_cast<double>(work);
        ns_[mode] += static_cast<double>(ns);
        block_ns_ += ns;
        if (block_ns_ < (first_probe_ ? params_.first_block_ns : params_.block_ns)) return;
        block_ns_ = 0;
        if (++block_ < kProbeBlocks) return;
        // Ties go to sharing: the full team is what a quiet machine wants.
        exploit_share_ = work_[1] * ns_[0] >= work_[0] * ns_[1];
        const int64_t scaled = static_cast<int64_t>(ns_[0] + ns_[1]) * params_.exploit_per_probe;
        exploit_left_ns_ = first_probe_ ? scaled : std::max(params_.min_exploit_ns, scaled);
        first_probe_ = false;
    }

 private:
    static constexpr int kProbeBlocks = 4;
    static constexpr bool kProbeShares[kProbeBlocks] = {true, false, false, true};

    void start_probe() {
        block_ = 0;
        block_ns_ = 0;
        work_[0] = work_[1] = 0;
        ns_[0] = ns_[1] = 0;
    }

    Params params_;
    bool first_probe_ = true;
    int block_ = 0;  // the probe block being measured; kProbeBlocks: keeping exploit_share_
    int64_t block_ns_ = 0;
    double work_[2] = {0, 0};  // this probe's work and time, [0] alone and [1] shared
    double ns_[2] = {0, 0};
    bool exploit_share_ = true;
    int64_t exploit_left_ns_ = 0;
};

}  // namespace bitnet
