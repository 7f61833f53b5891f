#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace bitnet {

// The scratch is sized on first use: a greedy sequence without mask or penalty never needs
// it (a few MB per session of a large vocabulary that many running sessions would hold).
Sampler::Sampler(int vocab) : vocab_(vocab) {}

// The first of the largest logits. NaN fails every comparison, so without these checks greedy
// would keep token 0 and sampling would silently skip the broken logits. -inf is a masked
// token, not an error.
int Sampler::greedy(const float* l) const {
    int best = 0;
    bool broken = false;
    for (int t = 0; t < vocab_; ++t) {
        broken |= !(l[t] < INFINITY);
        if (l[t] > l[best]) best = t;
    }
    if (broken) throw NonFiniteLogitsError("the model produced NaN or infinite logits");
    if (l[best] == -INFINITY) throw NonFiniteLogitsError("no finite logit to sample from");
    return best;
}

int Sampler::sample(const float* logits, const SamplerParams& params, const int32_t* history,
                    size_t history_len, const uint32_t* mask, size_t mask_words) {
    const bool penalize =
        params.repeat_penalty != 1.0f && params.repeat_last_n > 0 && history_len > 0;
    if (params.temperature <= 0.0 && mask == nullptr && !penalize) return greedy(logits);
    work_.resize(vocab_);
    float* l = work_.data();
    std::copy(logits, logits + vocab_, l);
    if (mask != nullptr) {
        if (mask_words * 32 < static_cast<size_t>(vocab_)) {
            throw std::invalid_argument("the token mask is shorter than the vocabulary");
        }
        bool any = false;
        for (int t = 0; t < vocab_; ++t) {
            if ((mask[t >> 5] >> (t & 31)) & 1u) {
                any = true;
            } else {
                l[t] = -INFINITY;
            }
        }
        if (!any) throw std::invalid_argument("the token mask allows no token");
    }
    if (penalize) {
        const size_t n = std::min(history_len, static_cast<size_t>(params.repeat_last_n));
        recent_.assign(history + history_len - n, history + history_len);
        std::sort(recent_.begin(), recent_.end());
        recent_.erase(std::unique(recent_.begin(), recent_.end()), recent_.end());
        for (int32_t t : recent_) {
            if (t < 0 || t >= vocab_) continue;
            l[t] = l[t] > 0.0f ? l[t] / params.repeat_penalty : l[t] * params.repeat_penalty;
        }
    }
    if (params.temperature <= 0.0) return greedy(l);
    cand_.clear();
    bool broken = false;
    for (int t = 0; t < vocab_; ++t) {
        if (std::isfinite(l[t])) {
            cand_.emplace_back(l[t], t);
        } else {
            broken |= !(l[t] < INFINITY);
        }
    }
    if (broken) throw NonFiniteLogitsError("the model produced NaN or infinite logits");
    if (cand_.empty()) throw NonFiniteLogitsError("no finite logit to sample from");
    const auto by_logit = [](const std::pair<float, int>& a, const std::pair<float, int>& b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    size_t keep = cand_.size();
    if (params.top_k > 0 && static_cast<size_t>(params.top_k) < keep) {
        keep = params.top_k;
        std::partial_sort(cand_.begin(), cand_.begin() + keep, cand_.end(), by_logit);
    } else {
        std::sort(cand_.begin(), cand_.end(), by_logit);
    }
    const double lmax = cand_[0].first;
    prob_.resize(keep);
    double total = 0.0;
    for (size_t i = 0; i < keep; ++i) {
        prob_[i] = std::exp(static_cast<double>(cand_[i].first) - lmax);
        total += prob_[i];
    }
    for (size_t i = 0; i < keep; ++i) prob_[i] /= total;
    if (params.top_p < 1.0) {
        double cum = 0.0;
        size_t i = 0;
        for (; i < keep; ++i) {
            cum += prob_[i];
            if (cum >= params.top_p) break;
        }
        keep = std::min(keep, i + 1);
    }
    if (params.min_p > 0.0) {
        const double floor = params.min_p * prob_[0];
        size_t n = 0;
        while (n < keep && prob_[n] >= floor) ++n;
        keep = std::max<size_t>(1, n);
    }
    double cum_w = 0.0;
    for (size_t i = 0; i < keep; ++i) {
        cum_w += std::exp((static_cast<double>(cand_[i].first) - lmax) / params.temperature);
        prob_[i] = cum_w;
    }
    const double u = rng_.next_double() * cum_w;
    for (size_t i = 0; i < keep; ++i) {
        if (prob_[i] > u) return cand_[i].second;
    }
    return cand_[keep - 1].second;
}

}  // namespace bitnet
