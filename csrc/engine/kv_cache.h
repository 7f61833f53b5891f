// Per-sequence key/value cache: [layer][position][kv_heads * head_dim] float32.
#pragma once

#include <cstddef>

#include "aligned_buffer.h"

namespace bitnet {

class KVCache {
 public:
    KVCache() = default;
    KVCache(int n_layers, int n_ctx, int kv_dim);

    float* key(int layer, int pos) { return at(keys_, layer, pos); }
    float* value(int layer, int pos) { return at(values_, layer, pos); }
    const float* key(int layer, int pos) const { return at(keys_, layer, pos); }
    const float* value(int layer, int pos) const { return at(values_, layer, pos); }
    int kv_dim() const { return kv_dim_; }
    size_t bytes() const { return keys_.size() + values_.size(); }

 private:
    float* at(AlignedBuffer& b, int layer, int pos) {
        return b.as<float>() + (static_cast<size_t>(layer) * n_ctx_ + pos) * kv_dim_;
    }
    const float* at(const AlignedBuffer& b, int layer, int pos) const {
        return b.as<float>() + (static_cast<size_t>(layer) * n_ctx_ + pos) * kv_dim_;
    }
    int n_ctx_ = 0, kv_dim_ = 0;
    AlignedBuffer keys_, values_;
};

}  // namespace bitnet
