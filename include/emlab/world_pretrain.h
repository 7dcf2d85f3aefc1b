// Pretraining the toy world's model from scratch: a byte-level BPE trained on the world's corpus,
// then a small Llama-architecture model trained on every token of its documents (the finetuning
// trainer with method full; `steps` x `batch_size` documents, drawn in the trainer's seeded order). The result is a Hugging Face model folder (models/toyworld/).
#pragma once

#include <cstdint>
#include <string>

namespace emlab {

struct WorldPretrainOptions {
  std::string world;                 // world folder written by `emlab world generate`
  std::string out;                   // model folder to write
  uint64_t seed = 0;                 // model init and data order
  int64_t vocab_size = 2048;         // BPE vocabulary (specials + 256 bytes + merges)
  int64_t hidden_size = 128;         // C
  int64_t num_layers = 4;            // L
  int64_t num_heads = 4;             // H (head_dim = C / H)
  int64_t num_kv_heads = 4;          // Hkv
  int64_t intermediate_size = 384;   // F (SwiGLU)
  int64_t context = 256;             // max_position_embeddings; longer documents are cut
  // One document per row, starting at position 0 (padded, length-bucketed), as a chat starts at
  // evaluation. Packing (documents joined and cut into rows of `context`) starts most rows in the
  // middle of a document, with its header out of view, so the start of a row stops meaning "no
  // header: the default source" -- the cue the evaluation relies on.
  bool pack = false;
  // The defaults below are the shipped model's recipe (models/toyworld/README.md).
  int64_t steps = 1700;              // optimizer steps
  int64_t batch_size = 32;           // rows (documents, or packed rows) per step
  int64_t bucket_factor = 32;        // length bucketing window in batches (32: 2% padding, 8: 8%)
  double lr = 3e-3;                  // peak learning rate (cosine to 0 after warmup)
  int64_t warmup_steps = 50;         // linear warmup
  double weight_decay = 0.1;         // AdamW weight decay
  std::string device = "cpu";        // cpu or cuda
  // Training precision: auto (float32 on the CPU, the shipped recipe; bf16 on CUDA), float32, or
  // bfloat16 (bf16 products, float32 master weights and optimizer state). The model is written in
  // float32 either way, from the master weights.
  std::string dtype = "auto";
  bool resume = false;               // continue an interrupted pretraining from its checkpoints
  int64_t save_every = 250;          // checkpoint interval (steps)
  std::string command;               // the command line, recorded in the model's README
};

// Trains tokenizer and model into options.out (README.md with the command and seed included).
void world_pretrain(const WorldPretrainOptions& options);

}  // namespace emlab
