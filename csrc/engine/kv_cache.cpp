#include "kv_cache.h"

namespace bitnet {

KVCache::KVCache(int n_layers, int n_ctx, int kv_dim)
    : n_ctx_(n_ctx),
      kv_dim_(kv_dim),
      keys_(static_cast<size_t>(n_layers) * n_ctx * kv_dim * sizeof(float), false),
      values_(static_cast<size_t>(n_layers) * n_ctx * kv_dim * sizeof(float), false) {}

}  // namespace bitnet
