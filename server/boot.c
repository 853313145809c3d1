/* SPDX-License-Identifier: MIT */
/* Kernel selection by re-execution. OpenBLAS reads OPENBLAS_CORETYPE and
 * OPENBLAS_NUM_THREADS once, when it loads, so the only way to change
 * them for this process is to set them and execute it again. The marker
 * variable SPKD_BLAS_BOOT says a re-execution happened and what OpenBLAS
 * had picked before it, so that it happens at most twice (select, then
 * fall back). */
#include "boot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../engine/blas.h"

#define BOOT_MARK "SPKD_BLAS_BOOT"

static void reexec(char **argv, const log_t *log) {
  execv("/proc/self/exe", argv);
  LOG(log, LOG_WARN, "blas", "cannot re-execute to set up OpenBLAS; "
      "continuing with its own choice");
}

/* After a re-execution that chose a kernel: keep it if sgemm is right. */
static void boot_verify(char **argv, const log_t *log, const char *mark) {
  char core[64], err[256];

  blas_corename(core, sizeof core);
  if (blas_check(blas_sgemm_plain, err, sizeof err) == 0) {
    LOG(log, LOG_INFO, "blas", "kernel selected core=%s openblas_choice=%s",
        core, mark);
    return;
  }
  LOG(log, LOG_WARN, "blas", "kernel fails the sgemm check, falling back "
      "core=%s openblas_choice=%s error=\"%s\"", core, mark, err);
  setenv("OPENBLAS_CORETYPE", mark, 1);
  setenv(BOOT_MARK, "fallback", 1);
  reexec(argv, log);
}

void boot_blas(char **argv, const log_t *log) {
  const char *mark = getenv(BOOT_MARK), *want = blas_kernel_for_cpu();
  char core[64];
  int again = 0;

  blas_corename(core, sizeof core);
  if (mark && strcmp(mark, "fallback") != 0 && strcmp(mark, "-") != 0) {
    boot_verify(argv, log, mark);
    return;
  }
  if (mark) {
    LOG(log, LOG_DEBUG, "blas", "kernel core=%s", core);
    return;
  }
  setenv(BOOT_MARK, "-", 1);
  if (!getenv("OPENBLAS_CORETYPE") && want && blas_core_is_generic(core)) {
    setenv("OPENBLAS_CORETYPE", want, 1);
    setenv(BOOT_MARK, core, 1);
    again = 1;
  }
  if (!getenv("OPENBLAS_NUM_THREADS")) {
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    again = 1;
  }
  if (again)
    reexec(argv, log);
}
