// Logits, greedy tokens and load time from llama.cpp for a GGUF, driven by token ids.
//
// Built by benchmarks/llamacpp.py against the libllama it builds from the PyPI sdist.
//   llama-logits --model M.gguf --ids 1,2,3 [--gen N] [--logits-out F] [--threads T] [--kv-f32]
//                [--no-flash-attn]
//   llama-logits --model M.gguf --load-only [--ctx N] [--threads T]
// Prints one JSON object on stdout. --logits-out writes float32 [n_ids, n_vocab], row-major.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "llama.h"

static void quiet_log(enum ggml_log_level level, const char* text, void*) {
    if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

int main(int argc, char** argv) {
    std::string model_path, ids_arg, logits_out;
    int n_gen = 0, n_threads = 1, n_ctx = 0;
    bool load_only = false, kv_f32 = false, no_flash = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                fprintf(stderr, "missing value for %s\n", a.c_str());
                exit(2);
            }
            return argv[++i];
        };
        if (a == "--model") model_path = next();
        else if (a == "--ids") ids_arg = next();
        else if (a == "--gen") n_gen = std::atoi(next().c_str());
        else if (a == "--threads") n_threads = std::atoi(next().c_str());
        else if (a == "--ctx") n_ctx = std::atoi(next().c_str());
        else if (a == "--logits-out") logits_out = next();
        else if (a == "--load-only") load_only = true;
        else if (a == "--kv-f32") kv_f32 = true;
        else if (a == "--no-flash-attn") no_flash = true;
        else {
            fprintf(stderr, "unknown argument %s\n", a.c_str());
            return 2;
        }
    }
    std::vector<llama_token> ids;
    std::stringstream ss(ids_arg);
    for (std::string tok; std::getline(ss, tok, ',');) {
        if (!tok.empty()) ids.push_back(std::atoi(tok.c_str()));
    }
    if (model_path.empty() || (!load_only && ids.empty())) {
        fprintf(stderr, "need --model and --ids (or --load-only)\n");
        return 2;
    }
    if (n_ctx == 0) n_ctx = static_cast<int>(ids.size()) + n_gen + 8;

    llama_log_set(quiet_log, nullptr);
    llama_backend_init();
    const auto t0 = std::chrono::steady_clock::now();
    llama_model_params mp = llama_model_default_params();
    llama_model* model = llama_model_load_from_file(model_path.c_str(), mp);
    if (!model) {
        fprintf(stderr, "failed to load %s\n", model_path.c_str());
        return 1;
    }
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = cp.n_ubatch = std::max<uint32_t>(n_ctx, 32);
    cp.n_threads = cp.n_threads_batch = n_threads;
    cp.no_perf = true;
    if (kv_f32) {
        // f16 K/V would add rounding that our comparison is not about.
        cp.type_k = cp.type_v = GGML_TYPE_F32;
    }
    if (no_flash) cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    llama_context* ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "failed to create a context\n");
        return 1;
    }
    const double load_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const llama_vocab* vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    if (load_only) {
        printf("{\"load_s\": %.6f, \"n_vocab\": %d}\n", load_s, n_vocab);
        llama_free(ctx);
        llama_model_free(model);
        return 0;
    }

    const int n = static_cast<int>(ids.size());
    llama_batch batch = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; ++i) {
        batch.token[i] = ids[i];
        batch.pos[i] = i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = 1;  // every position: the comparison uses all of them
    }
    batch.n_tokens = n;
    if (llama_decode(ctx, batch) != 0) {
        fprintf(stderr, "llama_decode failed on the prompt\n");
        return 1;
    }
    std::vector<float> all(static_cast<size_t>(n) * n_vocab);
    for (int i = 0; i < n; ++i) {
        std::memcpy(&all[static_cast<size_t>(i) * n_vocab], llama_get_logits_ith(ctx, i),
                    n_vocab * sizeof(float));
    }
    if (!logits_out.empty()) {
        FILE* f = fopen(logits_out.c_str(), "wb");
        if (!f || fwrite(all.data(), sizeof(float), all.size(), f) != all.size()) {
            fprintf(stderr, "cannot write %s\n", logits_out.c_str());
            return 1;
        }
        fclose(f);
    }
    auto argmax = [&](const float* row) {
        int best = 0;
        for (int v = 1; v < n_vocab; ++v) {
            if (row[v] > row[best]) best = v;
        }
        return best;
    };
    std::vector<int> generated;
    int tok = argmax(&all[static_cast<size_t>(n - 1) * n_vocab]);
    for (int g = 0; g < n_gen; ++g) {
        generated.push_back(tok);
        if (g + 1 == n_gen) break;
        llama_batch one = llama_batch_get_one(&tok, 1);
        if (llama_decode(ctx, one) != 0) {
            fprintf(stderr, "llama_decode failed while generating\n");
            return 1;
        }
        tok = argmax(llama_get_logits_ith(ctx, -1));
    }
    printf("{\"load_s\": %.6f, \"n_vocab\": %d, \"generated\": [", load_s, n_vocab);
    for (size_t i = 0; i < generated.size(); ++i) printf(i ? ", %d" : "%d", generated[i]);
    printf("]}\n");
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
