// zflow: train, sample and evaluate normalizing flows from the command line.
//
// Every subcommand lives in its own file and registers itself with add_<name>; the work
// runs in the subcommand's callback, so every error reaches the handlers below, which print
// one line "zflow: error: <message>" on stderr and pick the exit code (docs/cli.md):
// 0 success, 1 runtime error (I/O, data, training), 2 usage error (options, specs).

#include <climits>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <new>
#include <string>

#ifdef __GLIBC__  // defined by the C library's headers above
#include <malloc.h>
#endif

#include <c10/util/Exception.h>

#include "blas_kernels.h"
#include "common.h"
#include "distributed.h"
#include "signals.h"
#include "zflow/core/error.h"
#include "zflow/version.h"

namespace {

/// Error messages must be one line: newlines (c10 messages have some) become "; ".
std::string one_line(std::string message) {
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  std::string out;
  out.reserve(message.size());
  for (size_t i = 0; i < message.size(); ++i) {
    if (message[i] == '\n' || message[i] == '\r') {
      if (!out.empty() && out.back() != ' ') out += "; ";
      while (i + 1 < message.size() && (message[i + 1] == '\n' || message[i + 1] == ' ')) ++i;
    } else {
      out += message[i];
    }
  }
  return out.empty() ? "unknown error" : out;
}

/// Keeps freed memory in the process for the next tensor. By default glibc hands blocks of
/// 128 KiB and more straight back to the kernel, and every new activation of that size
/// then faults its pages in again; on a virtual machine that tripled or quadrupled the
/// time of batched sampling and evaluation (sampling 1000 Fashion-MNIST images with Glow:
/// 13.8 s before, 2.8 s after; docs/benchmarks.md). A command runs once and exits, so
/// holding on to its peak memory costs nothing.
void keep_freed_memory() {
#ifdef __GLIBC__
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
#endif
}

int fail(const std::string& message, int code) {
  std::cout.flush();
  std::cerr << "zflow: error: " << one_line(message) << std::endl;
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  zflow::cli::select_blas_kernels(argv);
  keep_freed_memory();
  zflow::cli::set_program_arguments(argc, argv);
  zflow::cli::remove_temporary_files_on_signals();
  CLI::App app{"zflow: train, sample and evaluate normalizing flows on tabular data and images",
               "zflow"};
  app.set_version_flag("--version", std::string("zflow ") + zflow::kVersion);
  app.require_subcommand(1);
  app.footer(
      "\nExample:\n  zflow train --data 8gaussians --steps 2000 --out model.safetensors\n"
      "  zflow sample --model model.safetensors -n 1000 --out samples.csv\n\n"
      "Run 'zflow <command> --help' for a command's options; docs/cli.md has them all.");

  zflow::cli::add_train(app);
  zflow::cli::add_fit_target(app);
  zflow::cli::add_integrate(app);
  zflow::cli::add_sample(app);
  zflow::cli::add_log_prob(app);
  zflow::cli::add_eval(app);
  zflow::cli::add_encode_decode(app);
  zflow::cli::add_reconstruct(app);
  zflow::cli::add_interpolate(app);
  zflow::cli::add_plot(app);
  zflow::cli::add_report(app);
  zflow::cli::add_bench(app);
  zflow::cli::add_info(app);
  zflow::cli::add_datasets(app);

  // CLI11 answers an unknown command with "A subcommand is required": name it instead.
  if (argc > 1 && argv[1][0] != '-') {
    std::string names;
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
      names += (names.empty() ? "" : ", ") + sub->get_name();
      known |= sub->check_name(argv[1]);
    }
    if (!known) {
      return fail(std::string("unknown command '") + argv[1] + "'; the commands are " + names +
                      " (see 'zflow --help')",
                  2);
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) {
      return app.exit(e);  // --help, --version
    }
    return fail(std::string(e.what()) + " (see 'zflow --help')", 2);
  } catch (const zflow::cli::WorkersFailed& e) {
    return e.code();  // each worker printed its own error line
  } catch (const zflow::cli::Interrupted& e) {
    std::cout.flush();
    std::cerr << "zflow: " << one_line(e.what()) << std::endl;
    return 128 + e.signal();
  } catch (const zflow::ConfigError& e) {
    return fail(e.what(), 2);
  } catch (const zflow::Error& e) {
    return fail(e.what(), 1);
  } catch (const c10::Error& e) {
    return fail(e.what_without_backtrace(), 1);
  } catch (const std::bad_alloc&) {
    return fail("out of memory", 1);
  } catch (const std::exception& e) {
    return fail(e.what(), 1);
  } catch (...) {
    return fail("unexpected failure", 1);
  }
  return 0;
}
