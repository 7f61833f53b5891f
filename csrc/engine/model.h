// The BitNet b1.58 model: weights in kernel layout; Session, one sequence with its KV cache;
// and BatchStep, the whole network top to bottom over the new tokens of several sessions.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../kernels/kernels.h"
#include "aligned_buffer.h"
#include "batch.h"
#include "config.h"
#include "exact_logits.h"
#include "kv_cache.h"
#include "output_head.h"
#include "sampler.h"
#include "tensor.h"
#include "ternary_matrix.h"
#include "thread_pool.h"

namespace bitnet {

class Model;
class Session;

// The scratch and the forward of one batched step: the rows of the step are the new tokens of
// several sessions, concatenated. Each linear runs once over all rows (every weight tile is
// unpacked once per step); quantization, norms and attention run per row, each over its own
// session's KV cache, in the float order of a session alone, so the results do not depend on
// what else is in the step. Owned by the Model and used under its forward mutex; buffers grow
// to the largest step seen (at most kMaxStepRows rows), never per step.
class BatchStep {
 public:
    explicit BatchStep(Model& model) : model_(model) {}
    // Runs validated items (distinct sessions of this model) in steps of <= kMaxStepRows rows.
    void run(const BatchItem* items, int n_items);
    // Bytes of scratch held now (readable while a step runs: it only grows between steps).
    size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }

 private:
    void reserve(int rows, int n_ctx);
    void reserve_rows(int rows);
    int plan(const BatchItem* items, int n_items, int& item, int& done);
    void commit(int m);
    void forward_chunk(int m);
    void quantize(int t, const float* in, const TernaryMatrix& w);
    void gemm(const TernaryMatrix& w, int n, float* out, size_t ld_out);
    // quantize / gemm of a matrix whose parts normalize their inputs (use_rms_norm).
    void quantize_parts(int t, const float* in, const TernaryMatrix& w);
    void gemm_parts(const TernaryMatrix& w, int n, float* out, size_t ld_out);
    void attention(int layer, int m);
    void lm_head(const float* h, int n);
    size_t count_bytes() const;

    Model& model_;
    int capacity_ = 0, scores_ld_ = 0;
    std::atomic<size_t> bytes_{0};
    // Per row of the current step: its item and token index in it, token, position, its
    // session's cache, and where its final hidden state (Hidden) or logits go (nullptr: none).
    std::vector<const BatchItem*> item_;
    std::vector<int> index_;
    std::vector<int32_t> ids_;
    std::vector<int> pos_;
    std::vector<KVCache*> kv_;
    std::vector<float*> hidden_out_, logits_out_;
    std::vector<float*> head_out_;  // the logits rows of the step, in order
    // Per row: the residual stream, a normed copy and a linear's [hidden] output.
    std::vector<float> x_, xn_, ffn_, scores_;
    // RoPE cos / sin for the positions below the longest context seen: [scores_ld_][half].
    std::vector<float> rope_cos_, rope_sin_;
    // One region for what each block of a layer holds between its linears, never live at the
    // same time: q/k/v and the attention output (qkv_, attn_), then gate/up (gu_) whose gate
    // half takes act(gate) * up in place and whose up half takes its sub-norm.
    std::vector<float> stage_;
    float* qkv_ = nullptr;
    float* attn_ = nullptr;
    float* gu_ = nullptr;
    AlignedBuffer xq_;
    std::vector<float> xs_;
    std::vector<int32_t> xsum_, acc_;
    // Per part and row (part-major) for matrices with input norms: normed input, int8 row,
    // scale and sum. Sized only for models with input norms.
    std::vector<float> part_in_;
    AlignedBuffer part_xq_;
    std::vector<float> part_xs_;
    std::vector<int32_t> part_xsum_;
    std::vector<std::pair<float, int32_t>> top_heap_;
    std::vector<int32_t> top_idx_;
    std::vector<float> top_row_;
    size_t xq_stride_ = 0, acc_stride_ = 0;
};

struct LayerWeights {
    std::vector<float> input_norm, post_attn_norm;
    std::vector<float> attn_sub_norm, ffn_sub_norm;  // empty when the family has none
    TernaryMatrix qkv;                               // rows: q (q_dim), k, v (kv_dim each)
    TernaryMatrix o;                                 // hidden x q_dim
    TernaryMatrix gate_up;                           // rows: gate (intermediate), up (intermediate)
    TernaryMatrix down;                              // hidden x intermediate
};

class Model {
 public:
    // `tensors` maps checkpoint names (model.layers.0.self_attn.q_proj.weight, ...) to borrowed
    // views. Linears and the head are repacked at construction; the embedding table is read
    // in place, so its memory (a file mapping) must outlive the model. `isa` may force a
    // kernel family.
    // `progress(done, total)` is called as layers are prepared (may be empty). `kv` is the
    // element type of the KV caches of this model's sessions. `exact`: how many of the
    // largest logits of each position a quantized head recomputes in float32 (top 0: none).
    Model(const ModelConfig& config, const std::map<std::string, TensorView>& tensors,
          int n_threads, const std::string& isa, HeadKind head,
          const std::function<void(int, int)>& progress = {}, KVType kv = KVType::F32,
          const ExactLogitsOptions& exact = {});

    const ModelConfig& config() const { return config_; }
    const KernelTable& kernels() const { return *kernels_; }
    ThreadPool& pool() { return pool_; }
    // Sessions share the pool; one forward runs at a time per model.
    std::mutex& forward_mutex() { return forward_mutex_; }
    // One forward over the new tokens of several distinct sessions of this model (see
    // BatchItem). Checks every item first and throws (std::invalid_argument, or
    // std::out_of_range on context overflow) before touching any state.
    void eval_batch(const BatchItem* items, int n_items);
    int n_threads() const { return pool_.size(); }
    KVType kv_type() const { return kv_type_; }
    size_t weight_bytes() const;
    // Bytes of the batched step's scratch: sized by the largest step run so far.
    size_t scratch_bytes() const { return step_.bytes(); }

    const std::vector<LayerWeights>& layers() const { return layers_; }
    // The repacked weights (arena, per-row scales, head), for `bitnet convert`: names and
    // borrowed views a later Model accepts in place of the checkpoint linears.
    std::vector<std::pair<std::string, TensorView>> export_layout() const;

    // Writes the float32 embedding of `token` to `out` (widened from the checkpoint dtype).
    void embed(int token, float* out) const;
    const OutputHead& head() const { return head_; }
    const ExactLogits& exact_logits() const { return exact_; }
    const std::vector<float>& final_norm() const { return final_norm_; }

 private:
    void build_layers(const std::map<std::string, TensorView>& tensors,
                      const std::function<void(int, int)>& progress);
    void load_prepacked(const std::map<std::string, TensorView>& tensors);
    void load_sub_norms(const std::map<std::string, TensorView>& tensors, const std::string& prefix,
                        LayerWeights& L) const;
    void load_linear_norms(const std::map<std::string, TensorView>& tensors,
                           const std::string& prefix, LayerWeights& L) const;

    ModelConfig config_;
    const KernelTable* kernels_;
    ThreadPool pool_;
    KVType kv_type_ = KVType::F32;
    std::mutex forward_mutex_;
    BatchStep step_{*this};  // used under forward_mutex_
    std::vector<LayerWeights> layers_;
    AlignedBuffer arena_;   // every ternary matrix, one huge-page region
    TensorView embedding_;  // [vocab][hidden], borrowed
    OutputHead head_;
    ExactLogits exact_;
    std::vector<float> final_norm_;
};

class Session {
 public:
    Session(std::shared_ptr<Model> model, int n_ctx);

    int n_past() const { return n_past_; }
    int n_ctx() const { return n_ctx_; }
    const std::vector<int32_t>& tokens() const { return tokens_; }
    const Model& model() const { return *model_; }

    // Appends ids to the sequence (a batch of one). `out` receives [n][vocab] logits
    // (AllLogits) or [n][hidden] final-normed states (Hidden); the last position's logits are
    // always kept for sample() unless output is Hidden. Throws std::out_of_range on context
    // overflow, before touching any state.
    void eval(const int32_t* ids, int n, Output output, float* out);
    const float* last_logits() const { return last_logits_.data(); }
    bool has_logits() const { return has_logits_; }

    int sample(const SamplerParams& params, const uint32_t* mask, size_t mask_words);
    void set_seed(uint64_t seed) { sampler_.seed(seed); }
    void truncate(int n);
    // Makes this session hold the first n positions of `src` (a session of the same model):
    // its KV rows and tokens, and its last logits when n is all of src. Later evals give the
    // bits of a session that evaluated those tokens itself. The sampler state is kept.
    void copy_prefix(const Session& src, int n);

 private:
    friend class BatchStep;

    std::shared_ptr<Model> model_;
    int n_ctx_;
    int n_past_ = 0;
    std::vector<int32_t> tokens_;
    KVCache kv_;
    Sampler sampler_;
    std::vector<float> last_logits_;
    bool has_logits_ = false;
};

}  // namespace bitnet
