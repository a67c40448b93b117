// Validation loss: mean next-token cross-entropy of the main head over fixed validation sequences
// (forward only, no saved activations), and the unigram entropy of a token stream, the loss of the
// best model that ignores context, which a trained model must beat.
#pragma once

#include <cstdint>

#include "core/context.h"
#include "model/config.h"
#include "model/weights/model_weights.h"
#include "train/data.h"

namespace holdfast::train {

struct EvalResult {
  double loss = 0;     // mean CE (nats) over every target
  int64_t tokens = 0;  // targets scored
};

// Sequences 0..n_sequences-1 of `sampler` (the same ones at every evaluation).
EvalResult validation_loss(Context& ctx, const model::DeepSeekConfig& cfg, const model::ModelWeights& w,
                           const SequenceSampler& sampler, int64_t n_sequences);

// −Σ p·ln p (nats) over the token frequencies of the dataset (its first 2^26 tokens when longer).
double unigram_entropy(const TokenDataset& data);

}  // namespace holdfast::train
