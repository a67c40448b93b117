// Each holdfast subcommand registers itself on the root CLI11 app. Commands throw holdfast::Error;
// main() is the one place that turns an exception into a message and an exit code.
#pragma once

#include <CLI/CLI.hpp>

namespace holdfast::cli {

void add_init_command(CLI::App& app);
void add_logits_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_tokenizer_command(CLI::App& app);  // `tokenizer train`
void add_bench_command(CLI::App& app);
// `bench serve`, registered by add_bench_command on its `bench` subcommand.
void add_bench_serve_command(CLI::App& bench);
void add_serve_command(CLI::App& app);
void add_grads_command(CLI::App& app);
void add_data_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_report_command(CLI::App& app);
void add_quantize_command(CLI::App& app);
void add_export_command(CLI::App& app);  // `export gguf`
void add_worker_command(CLI::App& app);
void add_dist_toy_command(CLI::App& app);
void add_chaos_command(CLI::App& app);
void add_status_command(CLI::App& app);

}  // namespace holdfast::cli
