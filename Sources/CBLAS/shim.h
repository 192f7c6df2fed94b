// Debian's libopenblas-dev puts cblas.h under the pthread variant's include folder.
#include "/usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h"
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
// Debian's OpenBLAS (pthreads build) exports these; used once at start to shorten the idle
// workers' spin (see Parallel.swift).
void openblas_read_env(void);
int blas_thread_shutdown_(void);
int blas_thread_init(void);
