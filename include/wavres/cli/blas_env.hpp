// Also sets OMP_PROC_BIND, OMP_WAIT_POLICY and GLIBC_TUNABLES when unset (see blas_env.cpp), and never
// narrows the CPUs the process started with (libgomp may have bound the initial thread to one place before
// main). OpenBLAS 0.3.21 mis-detects this project's CPUs (AVX-512 Xeons) as Prescott and runs 5-7x slower.
// The core type is read from OPENBLAS_CORETYPE when libopenblas loads, i.e. before main, so the only reliable
// fix from inside the program is to set it and re-execute once. Call first thing in main().
#pragma once

namespace wavres {
// If OPENBLAS_CORETYPE is unset and the CPU supports AVX-512F, sets it to SkylakeX and re-executes argv
// (/proc/self/exe). Does nothing otherwise, or if WAVRES_NO_REEXEC is set.
void ensure_blas_coretype(int argc, char** argv);
}  // namespace wavres
