#include "model.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <stdexcept>

#include "attention.h"
#include "ops.h"

namespace bitnet {
namespace {

// Steps of at most this many rows (decode of a few sequences) do their per-token work (norms,
// quantization, RoPE) on the calling thread: a few microseconds per row, so splitting it saves
// little and adds a barrier that waits for every worker, long on a busy machine.
constexpr int kInlineRows = 4;

const TensorView& find(const std::map<std::string, TensorView>& tensors, const std::string& name) {
    auto it = tensors.find(name);
    if (it == tensors.end()) throw CheckpointContentError("missing tensor " + name);
    return it->second;
}

std::vector<float> to_floats(const TensorView& t, int64_t expected, const std::string& name) {
    if (t.numel() != expected) throw CheckpointContentError(name + ": unexpected size");
    std::vector<float> out(static_cast<size_t>(expected));
    for (int64_t i = 0; i < expected; ++i) out[i] = t.at(i);
    return out;
}

LinearSource linear_source(const std::map<std::string, TensorView>& tensors,
                           const std::string& prefix) {
    LinearSource src;
    src.name = prefix + ".weight";
    src.weight = find(tensors, src.name);
    if (src.weight.dtype == DType::U8) {
        const TensorView& scale = find(tensors, prefix + ".weight_scale");
        if (scale.numel() < 1) throw CheckpointContentError(prefix + ".weight_scale is empty");
        src.weight_scale = scale.at(0);
    }
    return src;
}

}  // namespace

Model::Model(const ModelConfig& config, const std::map<std::string, TensorView>& tensors,
             int n_threads, const std::string& isa, HeadKind head,
             const std::function<void(int, int)>& progress, KVType kv,
             const ExactLogitsOptions& exact)
    : config_(config), kernels_(&select_kernels(isa.c_str())), pool_(n_threads), kv_type_(kv) {
    check_config(config_);
    const auto& c = config_;
    const int H = c.hidden_size;
    embedding_ = find(tensors, "model.embed_tokens.weight");
    if (embedding_.numel() != static_cast<int64_t>(c.vocab_size) * H) {
        throw CheckpointContentError("model.embed_tokens.weight: unexpected size");
    }
    const bool prepacked = !c.prepacked_head.empty();
    if (prepacked && parse_head_kind(c.prepacked_head) == head) {
        head_ = OutputHead::from_prepacked(
            head, c.vocab_size, H, find(tensors, "bitnet.head.codes"),
            find(tensors, "bitnet.head.scales"), pool_, c.release_source_pages);
    } else {
        const TensorView& head_table =
            c.tie_word_embeddings ? embedding_ : find(tensors, "lm_head.weight");
        head_ = OutputHead(head_table, c.vocab_size, H, head, pool_, c.release_source_pages);
        if (c.release_source_pages) {
            release_file_pages(head_table.data, head_table.numel() * dtype_size(head_table.dtype));
        }
    }
    // A converted untied checkpoint may not carry lm_head.weight: its head stays as quantized.
    const auto head_table = c.tie_word_embeddings ? tensors.find("model.embed_tokens.weight")
                                                  : tensors.find("lm_head.weight");
    if (exact.top > 0 && head != HeadKind::F32 && head_table != tensors.end()) {
        exact_ =
            ExactLogits(head_table->second, c.vocab_size, H, exact.top, exact.file, exact.offset);
    }
    final_norm_ = to_floats(find(tensors, "model.norm.weight"), H, "model.norm.weight");
    if (prepacked) {
        load_prepacked(tensors);
    } else {
        build_layers(tensors, progress);
    }
    if (c.release_source_pages) {
        // Everything the engine keeps is its own copy now, but reading the norms and scales
        // left their pages (and their read faults' neighbours) mapped: ~2 MB of the 2B-4T
        // file. A tensor as its own table drops every page that holds part of it.
        for (const auto& [name, t] : tensors) {
            const size_t bytes = static_cast<size_t>(t.numel()) * dtype_size(t.dtype);
            release_file_row(t.data, bytes, t.data, bytes);
        }
    }
}

void Model::build_layers(const std::map<std::string, TensorView>& tensors,
                         const std::function<void(int, int)>& progress) {
    const auto& c = config_;
    const int H = c.hidden_size, I = c.intermediate_size;
    // Gather every linear first, so all ternary matrices go into one arena (huge pages for
    // the whole decode stream) in the order decode reads them.
    struct Fused {
        std::vector<LinearSource> parts;
        int cols;
    };
    std::vector<std::array<Fused, 4>> plan(c.num_hidden_layers);
    size_t arena_bytes = 0;
    for (int i = 0; i < c.num_hidden_layers; ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        auto lin = [&](const std::string& name) { return linear_source(tensors, p + name); };
        plan[i] = {
            Fused{{lin("self_attn.q_proj"), lin("self_attn.k_proj"), lin("self_attn.v_proj")}, H},
            Fused{{lin("self_attn.o_proj")}, c.q_dim()},
            Fused{{lin("mlp.gate_proj"), lin("mlp.up_proj")}, H}, Fused{{lin("mlp.down_proj")}, I}};
        for (const auto& f : plan[i]) {
            arena_bytes += TernaryMatrix::packed_bytes(TernaryMatrix::rows_of(f.parts), f.cols,
                                                       c.base3_layout);
        }
    }
    arena_ = AlignedBuffer(arena_bytes);
    uint8_t* cursor = arena_.as<uint8_t>();
    auto build = [&](const Fused& f) {
        TernaryMatrix m =
            TernaryMatrix::build(f.parts, f.cols, c.scale_divides(), pool_, cursor, c.base3_layout);
        if (c.release_source_pages) {
            for (const auto& part : f.parts) {
                release_file_pages(part.weight.data,
                                   part.weight.numel() * dtype_size(part.weight.dtype));
            }
        }
        cursor += m.bytes();
        return m;
    };
    layers_.resize(c.num_hidden_layers);
    for (int i = 0; i < c.num_hidden_layers; ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        LayerWeights& L = layers_[i];
        auto norm = [&](const std::string& name, int n) {
            return to_floats(find(tensors, p + name), n, p + name);
        };
        L.input_norm = norm("input_layernorm.weight", H);
        L.post_attn_norm = norm("post_attention_layernorm.weight", H);
        load_sub_norms(tensors, p, L);
        L.qkv = build(plan[i][0]);
        L.o = build(plan[i][1]);
        L.gate_up = build(plan[i][2]);
        L.down = build(plan[i][3]);
        if (L.qkv.rows() != c.q_dim() + 2 * c.kv_dim() || L.o.rows() != H ||
            L.gate_up.rows() != 2 * I || L.down.rows() != H) {
            throw CheckpointContentError(p + "*: linear shapes do not match config.json");
        }
        load_linear_norms(tensors, p, L);
        if (progress) progress(i + 1, c.num_hidden_layers);
    }
}

void Model::load_prepacked(const std::map<std::string, TensorView>& tensors) {
    const auto& c = config_;
    const int H = c.hidden_size, I = c.intermediate_size, Q = c.q_dim();
    const TensorView& arena = find(tensors, "bitnet.arena");
    const std::array<std::pair<const char*, std::pair<int, int>>, 4> shapes = {{
        {"qkv", {Q + 2 * c.kv_dim(), H}},
        {"o", {H, Q}},
        {"gate_up", {2 * I, H}},
        {"down", {H, I}},
    }};
    size_t expected = 0;
    for (const auto& kv : shapes) {
        expected += TernaryMatrix::packed_bytes(kv.second.first, kv.second.second, c.base3_layout);
    }
    expected *= c.num_hidden_layers;
    if (arena.dtype != DType::U8 || static_cast<size_t>(arena.numel()) != expected) {
        throw CheckpointContentError("bitnet.arena: size does not match config.json");
    }
    arena_ = AlignedBuffer(expected);
    copy_parallel(arena_.as<uint8_t>(), static_cast<const uint8_t*>(arena.data), expected, pool_,
                  c.release_source_pages);
    uint8_t* cursor = arena_.as<uint8_t>();
    layers_.resize(c.num_hidden_layers);
    for (int i = 0; i < c.num_hidden_layers; ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        LayerWeights& L = layers_[i];
        auto norm = [&](const std::string& name, int n) {
            return to_floats(find(tensors, p + name), n, p + name);
        };
        L.input_norm = norm("input_layernorm.weight", H);
        L.post_attn_norm = norm("post_attention_layernorm.weight", H);
        load_sub_norms(tensors, p, L);
        TernaryMatrix* mats[4] = {&L.qkv, &L.o, &L.gate_up, &L.down};
        for (int j = 0; j < 4; ++j) {
            const int rows = shapes[j].second.first, cols = shapes[j].second.second;
            const std::string name =
                "bitnet.layers." + std::to_string(i) + "." + shapes[j].first + ".scales";
            const TensorView& scales = find(tensors, name);
            if (scales.dtype != DType::F32 || scales.numel() != rows) {
                throw CheckpointContentError(name + ": expected " + std::to_string(rows) +
                                             " F32 values");
            }
            *mats[j] = TernaryMatrix::from_prepacked(rows, cols, c.scale_divides(),
                                                     static_cast<const float*>(scales.data), cursor,
                                                     c.base3_layout);
            cursor += mats[j]->bytes();
        }
        load_linear_norms(tensors, p, L);
    }
}

// The family's sub-norms (left empty when it has none: the forward then skips them).
void Model::load_sub_norms(const std::map<std::string, TensorView>& tensors,
                           const std::string& prefix, LayerWeights& L) const {
    const auto& c = config_;
    if (!c.attn_sub_norm.empty()) {
        const std::string name = prefix + c.attn_sub_norm;
        L.attn_sub_norm = to_floats(find(tensors, name), c.q_dim(), name);
    }
    if (!c.ffn_sub_norm.empty()) {
        const std::string name = prefix + c.ffn_sub_norm;
        L.ffn_sub_norm = to_floats(find(tensors, name), c.intermediate_size, name);
    }
}

// With use_rms_norm, every linear's own input norm, in the order of its matrix's parts.
void Model::load_linear_norms(const std::map<std::string, TensorView>& tensors,
                              const std::string& prefix, LayerWeights& L) const {
    const auto& c = config_;
    if (c.linear_norm.empty()) return;
    const int H = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
    auto norms = [&](std::initializer_list<const char*> linears, int cols) {
        std::vector<std::vector<float>> out;
        for (const char* linear : linears) {
            const std::string name = prefix + linear + "." + c.linear_norm;
            out.push_back(to_floats(find(tensors, name), cols, name));
        }
        return out;
    };
    const float eps = c.linear_norm_eps;
    L.qkv.set_input_norms(norms({"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}, H),
                          {Q, Q + KV, Q + 2 * KV}, eps);
    L.o.set_input_norms(norms({"self_attn.o_proj"}, Q), {H}, eps);
    L.gate_up.set_input_norms(norms({"mlp.gate_proj", "mlp.up_proj"}, H), {I, 2 * I}, eps);
    L.down.set_input_norms(norms({"mlp.down_proj"}, I), {H}, eps);
}

std::vector<std::pair<std::string, TensorView>> Model::export_layout() const {
    std::vector<std::pair<std::string, TensorView>> out;
    auto view = [](const void* data, DType dtype, int64_t n) {
        TensorView v;
        v.data = data;
        v.dtype = dtype;
        v.shape = {n};
        return v;
    };
    out.emplace_back("bitnet.arena",
                     view(arena_.data(), DType::U8, static_cast<int64_t>(arena_.size())));
    const char* names[4] = {"qkv", "o", "gate_up", "down"};
    for (size_t i = 0; i < layers_.size(); ++i) {
        const TernaryMatrix* mats[4] = {&layers_[i].qkv, &layers_[i].o, &layers_[i].gate_up,
                                        &layers_[i].down};
        for (int j = 0; j < 4; ++j) {
            out.emplace_back("bitnet.layers." + std::to_string(i) + "." + names[j] + ".scales",
                             view(mats[j]->row_scales(), DType::F32, mats[j]->rows()));
        }
    }
    out.emplace_back("bitnet.head.codes", view(head_.data().data(), DType::U8,
                                               static_cast<int64_t>(head_.data().size())));
    out.emplace_back("bitnet.head.scales", view(head_.scales().data(), DType::F32,
                                                static_cast<int64_t>(head_.scales().size())));
    return out;
}

void Model::embed(int token, float* out) const {
    const int H = config_.hidden_size;
    const size_t row_bytes = static_cast<size_t>(H) * dtype_size(embedding_.dtype);
    const uint8_t* row = static_cast<const uint8_t*>(embedding_.data) + token * row_bytes;
    widen_to_f32(row, embedding_.dtype, H, out);
    if (config_.release_source_pages) {
        // The table stays a file mapping (a copy would be as large as the weights); each lookup
        // would otherwise leave ~64 KiB of it mapped: +140 MB of RSS after 512 random tokens
        // of the 2B-4T shape.
        release_file_row(row, row_bytes, embedding_.data,
                         embedding_.numel() * dtype_size(embedding_.dtype));
    }
}

// Bytes read from weights per decoded token: linears with their per-row scales and input
// norms, the norm weights, the head, one embedding row, the rows of the exact top logits.
size_t Model::weight_bytes() const {
    size_t total = head_.bytes() + config_.hidden_size * dtype_size(embedding_.dtype) +
                   exact_.bytes_per_position() + final_norm_.size() * sizeof(float);
    for (const auto& L : layers_) {
        for (const TernaryMatrix* m : {&L.qkv, &L.o, &L.gate_up, &L.down}) {
            total += m->bytes() + m->side_bytes();
        }
        total += (L.input_norm.size() + L.post_attn_norm.size() + L.attn_sub_norm.size() +
                  L.ffn_sub_norm.size()) *
                 sizeof(float);
    }
    return total;
}

Session::Session(std::shared_ptr<Model> model, int n_ctx)
    : model_(std::move(model)), n_ctx_(n_ctx), sampler_(model_->config().vocab_size) {
    const auto& c = model_->config();
    if (n_ctx <= 0 || n_ctx > c.max_position_embeddings) {
        throw std::invalid_argument("n_ctx must be in [1, max_position_embeddings]");
    }
    kv_ = KVCache(c.num_hidden_layers, n_ctx, c.num_key_value_heads, c.head_dim, model_->kv_type());
    last_logits_.resize(c.vocab_size);
    tokens_.reserve(n_ctx);
}

void Session::truncate(int n) {
    if (n < 0 || n > n_past_) throw std::out_of_range("truncate: position out of range");
    n_past_ = n;
    tokens_.resize(n);
    has_logits_ = false;
}

void Session::eval(const int32_t* ids, int n, Output output, float* out) {
    const BatchItem item{this, ids, n, output, out};
    model_->eval_batch(&item, 1);
}

void Session::copy_prefix(const Session& src, int n) {
    if (&src.model() != model_.get()) {
        throw std::invalid_argument("copy_prefix: the source is a session of another model");
    }
    // Under the forward lock: no step is writing either cache meanwhile.
    std::lock_guard<std::mutex> lock(model_->forward_mutex());
    if (n < 0 || n > src.n_past_) throw std::out_of_range("copy_prefix: n is outside [0, n_past]");
    if (n > n_ctx_) throw std::out_of_range("copy_prefix: n exceeds this session's n_ctx");
    if (&src == this) {
        truncate(n);
        return;
    }
    kv_.copy_prefix(src.kv_, n);
    tokens_.assign(src.tokens_.begin(), src.tokens_.begin() + n);
    n_past_ = n;
    has_logits_ = n == src.n_past_ && src.has_logits_;
    if (has_logits_) last_logits_ = src.last_logits_;
}

// The whole BitNet b1.58 network for the m rows of the step: row t is token ids_[t] at
// position pos_[t] of the sequence whose cache is kv_[t].
void BatchStep::forward_chunk(int m) {
    const auto& c = model_.config();
    const int H = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
    const int QKV = Q + 2 * KV, half = c.head_dim / 2;
    const float eps = c.rms_norm_eps;
    // Per-token work (a few element operations per hidden or FFN value) runs on the pool only
    // for prefill-sized steps (see kInlineRows) with enough of it to share.
    const int64_t per_token_work = int64_t(m) * (H + I) * 4;
    auto per_token = [&](auto&& fn) {
        if (m <= kInlineRows) {
            for (int t = 0; t < m; ++t) fn(t);
            return;
        }
        model_.pool().parallel_for(m, per_token_work, [&](int begin, int end) {
            for (int t = begin; t < end; ++t) fn(t);
        });
    };

    per_token([&](int t) { model_.embed(ids_[t], &x_[t * H]); });
    for (int l = 0; l < c.num_hidden_layers; ++l) {
        const LayerWeights& L = model_.layers()[l];
        // Attention block: RMSNorm -> q/k/v -> RoPE -> attention -> sub-norm -> o -> residual.
        per_token([&](int t) {
            rms_norm(&x_[t * H], L.input_norm.data(), H, eps, &xn_[t * H]);
            quantize(t, &xn_[t * H], L.qkv);
        });
        gemm(L.qkv, m, qkv_, QKV);
        per_token([&](int t) {
            const int pos = pos_[t];
            float* q = &qkv_[t * QKV];
            float* k = q + Q;
            const float* v = k + KV;
            const float* cos = &rope_cos_[static_cast<size_t>(pos) * half];
            const float* sin = &rope_sin_[static_cast<size_t>(pos) * half];
            apply_rope(q, c.num_attention_heads, c.head_dim, cos, sin);
            apply_rope(k, c.num_key_value_heads, c.head_dim, cos, sin);
            for (int h = 0; h < c.num_key_value_heads; ++h) {
                kv_[t]->store(l, h, pos, k + h * c.head_dim, v + h * c.head_dim);
            }
        });
        attention(l, m);
        // The sub-norm goes to the row's q/k/v, which attention has finished with.
        per_token([&](int t) {
            quantize(t, optional_rms_norm(&attn_[t * Q], L.attn_sub_norm, Q, eps, &qkv_[t * QKV]),
                     L.o);
        });
        gemm(L.o, m, ffn_.data(), H);
        // Feed-forward block: residual, RMSNorm -> gate/up -> act(gate) * up -> sub-norm -> down.
        per_token([&](int t) {
            add_inplace(&x_[t * H], &ffn_[t * H], H);
            rms_norm(&x_[t * H], L.post_attn_norm.data(), H, eps, &xn_[t * H]);
            quantize(t, &xn_[t * H], L.gate_up);
        });
        gemm(L.gate_up, m, gu_, 2 * I);
        // act(gate) * up element by element over the gate half; its sub-norm into the up half.
        per_token([&](int t) {
            float* gate = &gu_[t * 2 * I];
            float* up = gate + I;
            ffn_activation(c.activation, gate, up, I, gate);
            quantize(t, optional_rms_norm(gate, L.ffn_sub_norm, I, eps, up), L.down);
        });
        gemm(L.down, m, ffn_.data(), H);
        per_token([&](int t) { add_inplace(&x_[t * H], &ffn_[t * H], H); });
    }

    // Outputs: final-normed states, or logits for the rows that need them (an item's last
    // row, or every row of an AllLogits item), all of them in one pass over the head.
    const auto& norm = model_.final_norm();
    per_token([&](int t) {
        if (hidden_out_[t] != nullptr) rms_norm(&x_[t * H], norm.data(), H, eps, hidden_out_[t]);
    });
    int n_logits = 0;
    for (int t = 0; t < m; ++t) {
        if (logits_out_[t] == nullptr) continue;
        rms_norm(&x_[t * H], norm.data(), H, eps, &xn_[n_logits * H]);
        head_out_[n_logits++] = logits_out_[t];
    }
    if (n_logits > 0) lm_head(xn_.data(), n_logits);
}

// BitLinear, step 1: per-token int8 absmax quantization of the input row (zero padding up to
// the matrix's padded width, since the buffer is shared by matrices of different widths).
void BatchStep::quantize(int t, const float* in, const TernaryMatrix& w) {
    if (w.has_input_norms()) return quantize_parts(t, in, w);
    int8_t* row = xq_.as<int8_t>() + t * xq_stride_;
    xs_[t] = model_.kernels().quantize_row(in, w.cols(), row, &xsum_[t]);
    std::memset(row + w.cols(), 0, w.padded_cols() - w.cols());
}

// BitLinear, step 2: ternary x int8 with exact int32 accumulation, then one float rescale per
// output (docs/formats.md, "the weight-scale rule").
void BatchStep::gemm(const TernaryMatrix& w, int n, float* out, size_t ld_out) {
    if (w.has_input_norms()) return gemm_parts(w, n, out, ld_out);
    const KernelTable& k = model_.kernels();
    const QuantizedActs acts{xq_.as<int8_t>(), xsum_.data(), xq_stride_, n};
    const PackedTernary packed = w.packed();
    int32_t* acc = acc_.data();
    const size_t ld_acc = acc_stride_;
    ThreadPool& pool = model_.pool();
    const int64_t work = int64_t(n) * w.rows() * w.padded_cols();
    pool.parallel_for_dynamic(
        w.n_row_blocks(), pool.grain_for(w.n_row_blocks()), work, [&](int b0, int b1) {
            (w.base3() ? k.ternary5_gemm : k.ternary_gemm)(packed, b0, b1, acts, acc, ld_acc);
            const int r0 = b0 * kRowBlock, r1 = std::min(w.rows(), b1 * kRowBlock);
            for (int t = 0; t < n; ++t) {
                rescale(acc + t * ld_acc, w.row_scales(), xs_[t], w.divide(), r0, r1,
                        out + t * ld_out);
            }
        });
}

// BitLinear with use_rms_norm, step 1: each part of the matrix normalizes the row with its own
// weight (transformers' LlamaRMSNorm inside BitLinear), then quantizes it into its own slot.
void BatchStep::quantize_parts(int t, const float* in, const TernaryMatrix& w) {
    const size_t parts_ld = static_cast<size_t>(capacity_);
    float* normed = &part_in_[static_cast<size_t>(t) * xq_stride_];
    for (size_t p = 0; p < w.input_norms().size(); ++p) {
        const size_t slot = p * parts_ld + t;
        rms_norm(in, w.input_norms()[p].data(), w.cols(), w.input_norm_eps(), normed);
        int8_t* row = part_xq_.as<int8_t>() + slot * xq_stride_;
        part_xs_[slot] = model_.kernels().quantize_row(normed, w.cols(), row, &part_xsum_[slot]);
        std::memset(row + w.cols(), 0, w.padded_cols() - w.cols());
    }
}

// Step 2: each part's rows against its own quantized rows. A row block that straddles two
// parts is computed once for each and keeps only that part's rows.
void BatchStep::gemm_parts(const TernaryMatrix& w, int n, float* out, size_t ld_out) {
    const KernelTable& k = model_.kernels();
    const PackedTernary packed = w.packed();
    const size_t parts_ld = static_cast<size_t>(capacity_);
    ThreadPool& pool = model_.pool();
    int begin = 0;
    for (size_t p = 0; p < w.part_ends().size(); ++p) {
        const int end = w.part_ends()[p];
        const size_t slot = p * parts_ld;
        const QuantizedActs acts{part_xq_.as<int8_t>() + slot * xq_stride_, &part_xsum_[slot],
                                 xq_stride_, n};
        const float* xs = &part_xs_[slot];
        const int first = begin / kRowBlock, blocks = (end + kRowBlock - 1) / kRowBlock - first;
        const int64_t work = int64_t(n) * (end - begin) * w.padded_cols();
        pool.parallel_for_dynamic(blocks, pool.grain_for(blocks), work, [&](int b0, int b1) {
            (w.base3() ? k.ternary5_gemm : k.ternary_gemm)(packed, first + b0, first + b1, acts,
                                                           acc_.data(), acc_stride_);
            const int r0 = std::max(begin, (first + b0) * kRowBlock);
            const int r1 = std::min(end, (first + b1) * kRowBlock);
            for (int t = 0; t < n; ++t) {
                rescale(acc_.data() + t * acc_stride_, w.row_scales(), xs[t], w.divide(), r0, r1,
                        out + t * ld_out);
            }
        });
        begin = end;
    }
}

// Causal GQA attention of each row over its own sequence's cache (the same float order as the
// sequence alone). The query heads that share a kv head form one task (read each cached row
// once); the group is halved only while there are fewer tasks than threads: two threads
// reading the same rows cost more than an uneven split (e.g. 5 kv heads on 2 threads).
// Softmax in float32.
void BatchStep::attention(int layer, int m) {
    const auto& c = model_.config();
    const int Q = c.q_dim(), KV = c.kv_dim(), QKV = Q + 2 * KV, d = c.head_dim;
    const int group = c.num_attention_heads / c.num_key_value_heads;
    const int n_threads = model_.n_threads();
    int per_task = group;
    while (per_task % 2 == 0 && m * c.num_attention_heads / per_task < n_threads) per_task /= 2;
    const int tasks_per_token = c.num_attention_heads / per_task;
    const float scaling = 1.0f / std::sqrt(static_cast<float>(d));
    const int n_tasks = m * tasks_per_token;
    // Scores and weighted values: about 2 * d operations per query head and key.
    int64_t keys = 0;
    for (int t = 0; t < m; ++t) keys += pos_[t] + 1;
    const int64_t work = keys * c.num_attention_heads * 2 * d;
    model_.pool().run(work, [&](int thread, int n) {
        float* scores = &scores_[static_cast<size_t>(thread) * group * scores_ld_];
        // Strided: later tokens see more keys (causal), so contiguous ranges would be uneven.
        for (int task = thread; task < n_tasks; task += n) {
            const int t = task / tasks_per_token;
            const int h0 = (task % tasks_per_token) * per_task;
            const int kvh = h0 / group;
            const float* q = &qkv_[t * QKV + h0 * d];
            float* out = &attn_[t * Q + h0 * d];
            const int n_keys = pos_[t] + 1;
            const KVCache& kv = *kv_[t];
            if (kv.type() == KVType::F32) {
                gqa_attend(q, per_task, d, static_cast<const float*>(kv.keys(layer, kvh)),
                           static_cast<const float*>(kv.values(layer, kvh)), d, n_keys, scaling,
                           scores, scores_ld_, out);
            } else {
                gqa_attend(q, per_task, d, static_cast<const uint16_t*>(kv.keys(layer, kvh)),
                           static_cast<const uint16_t*>(kv.values(layer, kvh)), d, n_keys, scaling,
                           scores, scores_ld_, out);
            }
        }
    });
}

// Logits of n final-normed rows h[j * hidden] into head_out_[j], then their exact top logits.
void BatchStep::lm_head(const float* h, int n) {
    const int H = model_.config().hidden_size;
    const ExactLogits& exact = model_.exact_logits();
    model_.head().logits_batch(h, n, head_out_.data(), model_.kernels(), model_.pool(),
                               xq_.as<int8_t>(), acc_.data());
    if (exact.top() == 0) return;
    for (int j = 0; j < n; ++j) {
        exact.refine(h + static_cast<size_t>(j) * H, head_out_[j], model_.pool(), top_heap_.data(),
                     top_idx_.data(), top_row_.data());
    }
}

int Session::sample(const SamplerParams& params, const uint32_t* mask, size_t mask_words) {
    if (!has_logits_) throw std::logic_error("sample() needs an eval() with logits first");
    return sampler_.sample(last_logits_.data(), params, tokens_.data(), tokens_.size(), mask,
                           mask_words);
}

}  // namespace bitnet
