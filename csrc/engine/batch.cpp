// Checking a batch and cutting it into steps; the network itself is BatchStep::forward_chunk
// (model.cpp).
#include "batch.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "model.h"
#include "ops.h"

namespace bitnet {

void Model::eval_batch(const BatchItem* items, int n_items) {
    if (n_items <= 0) throw std::invalid_argument("eval_batch needs at least one item");
    const int vocab = config_.vocab_size;
    std::lock_guard<std::mutex> lock(forward_mutex_);
    // Every check before any state changes (under the lock: n_past cannot move meanwhile).
    for (int i = 0; i < n_items; ++i) {
        const BatchItem& it = items[i];
        if (it.session == nullptr || &it.session->model() != this) {
            throw std::invalid_argument("eval_batch: item " + std::to_string(i) +
                                        " is not a session of this model");
        }
        for (int j = 0; j < i; ++j) {
            if (items[j].session == it.session) {
                throw std::invalid_argument("eval_batch: items " + std::to_string(j) + " and " +
                                            std::to_string(i) + " are the same session");
            }
        }
        if (it.n <= 0) throw std::invalid_argument("eval needs at least one token");
        if (it.session->n_past() + it.n > it.session->n_ctx()) {
            throw std::out_of_range("context overflow");
        }
        for (int j = 0; j < it.n; ++j) {
            if (it.ids[j] < 0 || it.ids[j] >= vocab) {
                throw std::invalid_argument("token id out of range");
            }
        }
        if ((it.output == Output::AllLogits || it.output == Output::Hidden) && it.out == nullptr) {
            throw std::invalid_argument("eval_batch: item " + std::to_string(i) +
                                        " asks for outputs but has no buffer");
        }
    }
    step_.run(items, n_items);
}

void BatchStep::run(const BatchItem* items, int n_items) {
    int total = 0, widest_ctx = 0;
    for (int i = 0; i < n_items; ++i) {
        total += items[i].n;
        widest_ctx = std::max(widest_ctx, items[i].session->n_ctx());
    }
    reserve(std::min(total, kMaxStepRows), widest_ctx);
    int item = 0, done = 0;  // the next row: token `done` of items[item]
    while (item < n_items) {
        const int m = plan(items, n_items, item, done);
        forward_chunk(m);
        commit(m);
    }
}

// Fills the rows of the next step from the cursor (item, done), item after item, cutting an
// item where the step is full; returns the number of rows.
int BatchStep::plan(const BatchItem* items, int n_items, int& item, int& done) {
    const auto& c = model_.config();
    int m = 0;
    while (m < kMaxStepRows && item < n_items) {
        const BatchItem& it = items[item];
        Session& s = *it.session;
        const int take = std::min(it.n - done, kMaxStepRows - m);
        for (int k = 0; k < take; ++k, ++m) {
            const int j = done + k;
            item_[m] = &it;
            index_[m] = j;
            ids_[m] = it.ids[j];
            pos_[m] = s.n_past_ + k;  // n_past moves after each step (commit)
            kv_[m] = &s.kv_;
            hidden_out_[m] = it.output == Output::Hidden
                                 ? it.out + static_cast<size_t>(j) * c.hidden_size
                                 : nullptr;
            float* logits = nullptr;
            if (it.output == Output::AllLogits) {
                logits = it.out + static_cast<size_t>(j) * c.vocab_size;
            } else if (it.output != Output::Hidden && j == it.n - 1) {
                logits = s.last_logits_.data();
            }
            logits_out_[m] = logits;
        }
        done += take;
        if (done == it.n) {
            ++item;
            done = 0;
        }
    }
    return m;
}

// The rows of a finished step join their sessions; an item's last row sets what sample() sees.
void BatchStep::commit(int m) {
    const int vocab = model_.config().vocab_size;
    for (int t = 0; t < m; ++t) {
        const BatchItem& it = *item_[t];
        Session& s = *it.session;
        s.tokens_.push_back(ids_[t]);  // reserved for n_ctx tokens: no allocation
        ++s.n_past_;
        if (index_[t] != it.n - 1) continue;
        if (it.output == Output::AllLogits) {
            std::memcpy(s.last_logits_.data(), logits_out_[t], vocab * sizeof(float));
        }
        s.has_logits_ = it.output != Output::Hidden;
    }
}

// Sizes the scratch for steps of `rows` rows over caches of up to `n_ctx` positions: grows
// (rarely: the largest step and context seen so far), never shrinks. Each buffer is allocated
// at exactly its new size (no geometric slack): the scratch lives as long as the model.
void BatchStep::reserve(int rows, int n_ctx) {
    const auto& c = model_.config();
    if (n_ctx > scores_ld_) {
        scores_.assign(static_cast<size_t>(model_.n_threads()) *
                           (c.num_attention_heads / c.num_key_value_heads) * n_ctx,
                       0.0f);
        // The rows already computed are kept: each position's values do not depend on the
        // table's length.
        const size_t half = c.head_dim / 2, kept = scores_ld_ * half;
        auto grow = [&](std::vector<float>& table) {
            std::vector<float> longer(n_ctx * half);
            std::copy(table.begin(), table.begin() + kept, longer.begin());
            table.swap(longer);
        };
        grow(rope_cos_);
        grow(rope_sin_);
        rope_tables(c.rope_inv_freq.data(), static_cast<int>(half), scores_ld_, n_ctx,
                    rope_cos_.data(), rope_sin_.data());
        scores_ld_ = n_ctx;
    }
    if (rows > capacity_) reserve_rows(rows);
    bytes_.store(count_bytes(), std::memory_order_relaxed);
}

void BatchStep::reserve_rows(int rows) {
    const auto& c = model_.config();
    capacity_ = rows;
    const int H = c.hidden_size, I = c.intermediate_size, Q = c.q_dim();
    const int QKV = Q + 2 * c.kv_dim();
    const size_t C = rows;
    int widest = std::max({H, I, Q, 2 * model_.head().padded_cols()});
    int widest_rows = 0;
    for (const auto& L : model_.layers()) {
        widest = std::max({widest, L.qkv.padded_cols(), L.o.padded_cols(), L.gate_up.padded_cols(),
                           L.down.padded_cols()});
        widest_rows = std::max({widest_rows, L.qkv.padded_rows(), L.o.padded_rows(),
                                L.gate_up.padded_rows(), L.down.padded_rows()});
    }
    auto fit = [](auto& v, size_t n) { v.assign(n, {}); };
    fit(item_, C);
    fit(index_, C);
    fit(ids_, C);
    fit(pos_, C);
    fit(kv_, C);
    fit(hidden_out_, C);
    fit(logits_out_, C);
    fit(head_out_, C);
    fit(x_, C * H);
    fit(xn_, C * H);
    fit(ffn_, C * H);
    fit(stage_, C * std::max(QKV + Q, 2 * I));
    qkv_ = stage_.data();
    attn_ = qkv_ + C * QKV;
    gu_ = stage_.data();
    xq_stride_ = static_cast<size_t>((widest + kColGroup - 1) / kColGroup) * kColGroup;
    // The head's two int8 terms need 2 * its padded width (the Q6 head pads to 64 columns),
    // for each of up to kHeadBatch rows at once.
    const size_t head_rows = std::min<size_t>(C, OutputHead::kHeadBatch);
    xq_ = AlignedBuffer(
        std::max(C * xq_stride_ + 64,
                 head_rows * 2 * static_cast<size_t>(model_.head().padded_cols()) + 64));
    std::memset(xq_.data(), 0, xq_.size());
    fit(xs_, C);
    fit(xsum_, C);
    if (!c.linear_norm.empty()) {
        // Up to three parts (q, k, v) per matrix, each with its own quantized row.
        constexpr size_t kMaxParts = 3;
        fit(part_in_, C * xq_stride_);
        part_xq_ = AlignedBuffer(kMaxParts * C * xq_stride_ + 64);
        std::memset(part_xq_.data(), 0, part_xq_.size());
        fit(part_xs_, kMaxParts * C);
        fit(part_xsum_, kMaxParts * C);
    }
    acc_stride_ = widest_rows;
    fit(acc_, std::max(C * acc_stride_, 2 * static_cast<size_t>(model_.head().padded_rows())));
    const ExactLogits& exact = model_.exact_logits();
    fit(top_heap_, exact.heap_scratch(model_.n_threads()));
    fit(top_idx_, exact.top());
    fit(top_row_, exact.row_scratch(model_.n_threads()));
}

size_t BatchStep::count_bytes() const {
    auto of = [](const auto& v) { return v.capacity() * sizeof(v[0]); };
    return of(item_) + of(index_) + of(ids_) + of(pos_) + of(kv_) + of(hidden_out_) +
           of(logits_out_) + of(head_out_) + of(x_) + of(xn_) + of(ffn_) + of(scores_) +
           of(rope_cos_) + of(rope_sin_) + of(stage_) + xq_.size() + of(xs_) + of(xsum_) +
           of(acc_) + of(part_in_) + part_xq_.size() + of(part_xs_) + of(part_xsum_) +
           of(top_heap_) + of(top_idx_) + of(top_row_);
}

}  // namespace bitnet
