#include "kv_cache.h"

namespace bitnet {

KVCache::KVCache(int n_layers, int n_ctx, int n_kv_heads, int head_dim)
    : n_ctx_(n_ctx),
      n_kv_heads_(n_kv_heads),
      head_dim_(head_dim),
      keys_(static_cast<size_t>(n_layers) * n_kv_heads * n_ctx * head_dim * sizeof(float), false),
      values_(static_cast<size_t>(n_layers) * n_kv_heads * n_ctx * head_dim * sizeof(float),
              false) {}

}  // namespace bitnet
