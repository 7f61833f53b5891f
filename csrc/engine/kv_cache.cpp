#include "kv_cache.h"

#include <cstring>
#include <stdexcept>

#include "tensor.h"

namespace bitnet {

KVType parse_kv_type(const std::string& name) {
    if (name == "f32") return KVType::F32;
    if (name == "bf16") return KVType::BF16;
    throw std::invalid_argument("kv_cache must be 'f32' or 'bf16', got '" + name + "'");
}

const char* kv_type_name(KVType type) { return type == KVType::F32 ? "f32" : "bf16"; }

KVCache::KVCache(int n_layers, int n_ctx, int n_kv_heads, int head_dim, KVType type)
    : n_layers_(n_layers),
      n_ctx_(n_ctx),
      n_kv_heads_(n_kv_heads),
      head_dim_(head_dim),
      type_(type),
      // The offset of the position after the last layer is the size of one buffer.
      keys_(offset(n_layers, 0, 0), false),
      values_(offset(n_layers, 0, 0), false) {}

void KVCache::store(int layer, int head, int pos, const float* key, const float* value) {
    uint8_t* k = at(keys_, layer, head, pos);
    uint8_t* v = at(values_, layer, head, pos);
    if (type_ == KVType::F32) {
        std::memcpy(k, key, head_dim_ * sizeof(float));
        std::memcpy(v, value, head_dim_ * sizeof(float));
        return;
    }
    auto* kb = reinterpret_cast<uint16_t*>(k);
    auto* vb = reinterpret_cast<uint16_t*>(v);
    for (int i = 0; i < head_dim_; ++i) {
        kb[i] = f32_to_bf16(key[i]);
        vb[i] = f32_to_bf16(value[i]);
    }
}

void KVCache::copy_prefix(const KVCache& src, int n) {
    if (src.n_layers_ != n_layers_ || src.n_kv_heads_ != n_kv_heads_ ||
        src.head_dim_ != head_dim_ || src.type_ != type_ || n > n_ctx_ || n > src.n_ctx_) {
        throw std::invalid_argument("copy_prefix: the caches differ in shape or type");
    }
    const size_t bytes = static_cast<size_t>(n) * head_dim_ * element_bytes();
    for (int l = 0; l < n_layers_; ++l) {
        for (int h = 0; h < n_kv_heads_; ++h) {
            std::memcpy(at(keys_, l, h, 0), src.at(src.keys_, l, h, 0), bytes);
            std::memcpy(at(values_, l, h, 0), src.at(src.values_, l, h, 0), bytes);
        }
    }
}

}  // namespace bitnet
