// A batched step: one forward over the new tokens of several sequences at once (a decode
// token each, or a prefill chunk of any length), so one pass over the weights serves them all.
#pragma once

#include <cstdint>

namespace bitnet {

class Session;

// What a forward writes for its tokens. None and LastLogits both keep the last position's
// logits for sampling; AllLogits also writes every position's, Hidden only final-normed states.
enum class Output { None, LastLogits, AllLogits, Hidden };

// One sequence's part of a batched step: `n` >= 1 tokens appended to `session` at its next
// positions. `out` receives [n][vocab] logits (AllLogits) or [n][hidden] states (Hidden).
struct BatchItem {
    Session* session;
    const int32_t* ids;
    int n;
    Output output;
    float* out;
};

// The most rows (tokens of all items) one step runs: a longer batch runs as several steps,
// cut anywhere (within an item too), which gives the same bits. Scratch memory stays bounded
// for long prompts (~0.14 MB per row for the 2B-4T shape, held for the model's lifetime) while
// each weight block is still reused across many rows: at 32 rows a prefill step streams the
// weights at a small fraction of the memory bandwidth, so more rows buy no speed.
constexpr int kMaxStepRows = 32;

}  // namespace bitnet
