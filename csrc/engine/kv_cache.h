// Per-sequence key/value cache: [layer][kv head][position][head_dim] float32. Each kv head's
// rows are contiguous, so attention over the context reads one sequential stream per head
// (the hardware prefetcher follows it) instead of a short piece of every position's row.
#pragma once

#include <cstddef>

#include "aligned_buffer.h"

namespace bitnet {

class KVCache {
 public:
    KVCache() = default;
    KVCache(int n_layers, int n_ctx, int n_kv_heads, int head_dim);

    float* key(int layer, int head, int pos) { return at(keys_, layer, head, pos); }
    float* value(int layer, int head, int pos) { return at(values_, layer, head, pos); }
    const float* key(int layer, int head, int pos) const { return at(keys_, layer, head, pos); }
    const float* value(int layer, int head, int pos) const { return at(values_, layer, head, pos); }
    size_t bytes() const { return keys_.size() + values_.size(); }

 private:
    size_t offset(int layer, int head, int pos) const {
        return ((static_cast<size_t>(layer) * n_kv_heads_ + head) * n_ctx_ + pos) * head_dim_;
    }
    float* at(AlignedBuffer& b, int layer, int head, int pos) {
        return b.as<float>() + offset(layer, head, pos);
    }
    const float* at(const AlignedBuffer& b, int layer, int head, int pos) const {
        return b.as<float>() + offset(layer, head, pos);
    }
    int n_ctx_ = 0, n_kv_heads_ = 0, head_dim_ = 0;
    AlignedBuffer keys_, values_;
};

}  // namespace bitnet
