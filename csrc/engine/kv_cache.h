// Per-sequence key/value cache: [layer][kv head][position][head_dim], float32 or bfloat16.
// Each kv head's rows are contiguous, so attention over the context reads one sequential
// stream per head (the hardware prefetcher follows it). bfloat16 halves the bytes that decode
// reads per context position, which dominate at long contexts, for ~3 significant digits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "aligned_buffer.h"

namespace bitnet {

enum class KVType { F32, BF16 };

KVType parse_kv_type(const std::string& name);
const char* kv_type_name(KVType type);

class KVCache {
 public:
    KVCache() = default;
    KVCache(int n_layers, int n_ctx, int n_kv_heads, int head_dim, KVType type);

    // Writes one position's key and value rows of one kv head (converted to the cache type).
    void store(int layer, int head, int pos, const float* key, const float* value);
    // Copies positions [0, n) of every layer and head from `src`, a cache of the same shape
    // and type (its n_ctx may differ; both hold at least n positions).
    void copy_prefix(const KVCache& src, int n);
    // Rows of (layer, head) from position 0: const float* (F32) or const uint16_t* (BF16).
    const void* keys(int layer, int head) const { return at(keys_, layer, head, 0); }
    const void* values(int layer, int head) const { return at(values_, layer, head, 0); }
    KVType type() const { return type_; }
    size_t bytes() const { return keys_.size() + values_.size(); }
    size_t element_bytes() const { return type_ == KVType::F32 ? 4 : 2; }

 private:
    size_t offset(int layer, int head, int pos) const {
        return ((static_cast<size_t>(layer) * n_kv_heads_ + head) * n_ctx_ + pos) * head_dim_ *
               element_bytes();
    }
    uint8_t* at(AlignedBuffer& b, int layer, int head, int pos) {
        return b.as<uint8_t>() + offset(layer, head, pos);
    }
    const uint8_t* at(const AlignedBuffer& b, int layer, int head, int pos) const {
        return b.as<uint8_t>() + offset(layer, head, pos);
    }
    int n_layers_ = 0, n_ctx_ = 0, n_kv_heads_ = 0, head_dim_ = 0;
    KVType type_ = KVType::F32;
    AlignedBuffer keys_, values_;
};

}  // namespace bitnet
