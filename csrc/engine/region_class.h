// Classes of parallel regions, for what the adaptive pool learns from measured regions
// (solo_cost.h, team_policy.h).
//
// What a unit of work costs depends on the kind of region: a decode step's matrix-vector
// products read their weights from memory, a prompt's matrix products reuse them from the
// caches, and the output head and attention differ from both; yet the output head for one
// token and a prompt's projections can have about the same work. So a class is a kind of
// region (the pool's task function, one per call site) and a power of two of work: regions of
// one kind and size always fall in the same class. Classes share a table of kRegionClasses
// slots; two that meet in one slot are only learnt together.
#pragma once

#include <cstdint>

namespace bitnet {

constexpr int kRegionClasses = 1024;

// The slot of the regions of `kind` (any value that tells call sites apart, 0 for one
// kind) with `work` > 0 units: a multiplicative hash of the kind and floor(log2(work)).
inline int region_class(uintptr_t kind, int64_t work) {
    const uint64_t log2_work = 63 - __builtin_clzll(static_cast<uint64_t>(work));
    const uint64_t key = static_cast<uint64_t>(kind) ^ (log2_work << 56);
    return static_cast<int>((key * 0x9E3779B97F4A7C15ull) >> 54);  // top 10 bits
}

}  // namespace bitnet
