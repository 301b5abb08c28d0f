#pragma once
// OpenBLAS picks its matrix-product kernels from the CPU model when it is loaded. Debian 12's
// OpenBLAS 0.3.21 does not know some newer CPUs (seen: an AVX-512 Xeon under a hypervisor)
// and then falls back to its generic SSE3 "Prescott" kernels, 4 to 5 times slower than its
// AVX-512 ones on the same core (docs/benchmarks.md, "OpenBLAS's kernels").

#include <string>

namespace zflow::cli {

/// When the process's OpenBLAS chose its generic kernels on a CPU with AVX2 or AVX-512, and
/// the user did not choose with OPENBLAS_CORETYPE, restarts this program (same arguments,
/// same process id) with OPENBLAS_CORETYPE set to the kernels the CPU supports (Haswell or
/// SkylakeX). Returns when there is nothing to do or the restart failed.
void select_blas_kernels(char** argv);

/// The kernels of the process's OpenBLAS ("SkylakeX"), empty when the BLAS is not OpenBLAS.
std::string openblas_kernels();

}  // namespace zflow::cli
