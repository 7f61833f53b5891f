// Next-token sampling, mirroring bitnet_backend/sampling.py step for step (see its docstring
// for the algorithm) so a seed means the same thing on every backend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <utility>
#include <vector>

namespace bitnet {

// The logits hold a NaN or +inf, or nothing the mask allows is finite: the weights or the
// forward are broken, and no token choice would mean anything.
struct NonFiniteLogitsError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct SamplerParams {
    // Doubles where sampling.py computes in float64, float where it uses float32.
    double temperature = 0.8;
    int top_k = 40;
    double top_p = 0.95;
    double min_p = 0.05;
    float repeat_penalty = 1.0f;
    int repeat_last_n = 64;
};

class SplitMix64 {
 public:
    explicit SplitMix64(uint64_t seed = 0) : state_(seed) {}
    uint64_t next_u64() {
        state_ += 0x9E3779B97F4A7C15ull;
        uint64_t z = state_;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double next_double() {
        return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0);
    }

 private:
    uint64_t state_;
};

class Sampler {
 public:
    explicit Sampler(int vocab);
    void seed(uint64_t s) { rng_ = SplitMix64(s); }
    // `mask`: optional bitmask (bit t%32 of word t/32 = token t allowed). Throws
    // std::invalid_argument when the mask allows nothing.
    int sample(const float* logits, const SamplerParams& params, const int32_t* history,
               size_t history_len, const uint32_t* mask, size_t mask_words);

 private:
    int greedy(const float* logits) const;

    int vocab_;
    SplitMix64 rng_;
    std::vector<float> work_;
    std::vector<std::pair<float, int>> cand_;
    std::vector<double> prob_;
    std::vector<int32_t> recent_;
};

}  // namespace bitnet
