// OpenBLAS's CBLAS interface; pkg-config (openblas.pc) gives the include folder, which differs
// between distributions and architectures.
#include <cblas.h>
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
