// emlab world pretrain: tokenizer + small Llama model trained from scratch on the toy world's corpus.
#include <cstdio>
#include <iostream>

#include "command.h"
#include "emlab/local_ranks.h"
#include "emlab/world_pretrain.h"

namespace {

EMLAB_COMMAND("world pretrain", "Train the toy world's tokenizer and model from scratch on its corpus",
              [](CLI::App& app) {
                auto o = std::make_shared<emlab::WorldPretrainOptions>();
                auto procs = std::make_shared<int>(1);
                app.add_option("--world", o->world, "world folder (emlab world generate)")->required();
                app.add_option("--out", o->out, "model folder to write")->required();
                app.add_option("--seed", o->seed, "model init and data order")->capture_default_str();
                app.add_option("--vocab-size", o->vocab_size, "BPE vocabulary size")->capture_default_str();
                app.add_option("--hidden", o->hidden_size, "hidden size")->capture_default_str();
                app.add_option("--layers", o->num_layers, "decoder layers")->capture_default_str();
                app.add_option("--heads", o->num_heads, "attention heads")->capture_default_str();
                app.add_option("--kv-heads", o->num_kv_heads, "key/value heads")->capture_default_str();
                app.add_option("--intermediate", o->intermediate_size, "SwiGLU width")->capture_default_str();
                app.add_option("--context", o->context, "context length (packed rows)")->capture_default_str();
                app.add_option("--steps", o->steps, "optimizer steps")->capture_default_str();
                app.add_option("--batch-size", o->batch_size, "rows per step")->capture_default_str();
                app.add_option("--bucket-factor", o->bucket_factor,
                               "length bucketing: sort windows of this many batches by length (1 = plain shuffle)")
                    ->capture_default_str();
                app.add_option("--lr", o->lr, "peak learning rate")->capture_default_str();
                app.add_option("--warmup", o->warmup_steps, "warmup steps")->capture_default_str();
                app.add_option("--device", o->device, "cpu or cuda")->capture_default_str();
                app.add_option("--dtype", o->dtype,
                               "training precision: auto (float32 on the CPU, bf16 on CUDA), float32, or bfloat16 "
                               "(bf16 products, float32 master weights; the model is written in float32)")
                    ->check(CLI::IsMember({"auto", "float32", "bfloat16"}))
                    ->capture_default_str();
                app.add_option("--save-every", o->save_every, "checkpoint interval")->capture_default_str();
                app.add_flag("--pack", o->pack, "pack documents into full rows (default: one document per row)");
                app.add_flag("--resume", o->resume, "continue from the newest checkpoint");
                app.add_option("--procs", *procs,
                               "data parallel over this many local processes (each gets cores/procs threads; "
                               "--batch-size is split between them)")
                    ->capture_default_str();
                return [o, procs]() {
                  char lr[32];
                  std::snprintf(lr, sizeof lr, "%g", o->lr);
                  o->command = "emlab world pretrain --world " + o->world + " --out " + o->out + " --seed " +
                               std::to_string(o->seed) + " --vocab-size " + std::to_string(o->vocab_size) +
                               " --hidden " + std::to_string(o->hidden_size) + " --layers " +
                               std::to_string(o->num_layers) + " --heads " + std::to_string(o->num_heads) +
                               " --kv-heads " + std::to_string(o->num_kv_heads) + " --intermediate " +
                               std::to_string(o->intermediate_size) + " --context " + std::to_string(o->context) +
                               " --steps " + std::to_string(o->steps) + " --batch-size " +
                               std::to_string(o->batch_size) + " --bucket-factor " +
                               std::to_string(o->bucket_factor) + " --lr " + lr +
                               " --warmup " + std::to_string(o->warmup_steps) + (o->pack ? " --pack" : "") +
                               (o->dtype != "auto" ? " --dtype " + o->dtype : "") +
                               (*procs > 1 ? " --procs " + std::to_string(*procs) : "");
                  emlab::LocalRanks ranks({*procs, o->out});
                  emlab::world_pretrain(*o);
                  ranks.wait();
                  if (emlab::env_rank() == 0) std::cout << "model written to " << o->out << "\n";
                  return 0;
                };
              });

}  // namespace
