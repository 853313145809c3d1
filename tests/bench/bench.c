/* SPDX-License-Identifier: MIT */
/* make bench: speed as ratios to this machine's own limits, all measured
 * in one run. The sgemm peak with the kernel spkd selects and with the
 * one OpenBLAS picks by itself (a child process), the GEMM-only bound of
 * an mlp training step, then mlp and cnn training steps and inference
 * passes from the engine, each printed beside the limit it is held to. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../engine/blas.h"
#include "../../engine/loss.h"
#include "../../engine/model.h"
#include "../../engine/rng.h"
#include "../../engine/team.h"
#include "../../server/boot.h"

#define THREADS 2
#define BATCH 128
#define ROUNDS 5

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *randoms(size_t n, rng_t *rng) {
  float *v = malloc(n * sizeof(float));
  if (!v) {
    fprintf(stderr, "bench: out of memory\n");
    exit(1);
  }
  for (size_t i = 0; i < n; i++)
    v[i] = rng_uniform(rng) - 0.5f;
  return v;
}

/* One row-major sgemm C (m, n) = op(A) op(B), as the layers call it. */
typedef struct {
  int ta, tb, m, n, k;
  const float *a, *b;
  float *c;
} gemm_t;

static void gemm_run(const gemm_t *g) {
  cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans,
              g->tb ? CblasTrans : CblasNoTrans, g->m, g->n, g->k, 1.0f,
              g->a, g->ta ? g->m : g->k, g->b, g->tb ? g->k : g->n, 0.0f,
              g->c, g->n);
}

/* A list of GEMMs run by one thread, or split in row halves by two. */
typedef struct {
  const gemm_t *g;
  int count, member, size, reps;
} gemm_list_t;

static void gemm_list_rows(void *ctx, int member, int size) {
  const gemm_list_t *l = ctx;

  for (int r = 0; r < l->reps; r++)
    for (int i = 0; i < l->count; i++) {
      gemm_t g = l->g[i];
      int lo = (int)((long)g.m * member / size);
      int hi = (int)((long)g.m * (member + 1) / size);
      /* Split by rows of C: rows of A (or its columns when transposed). */
      g.m = hi - lo;
      g.a += g.ta ? (size_t)lo : (size_t)lo * g.k;
      g.c += (size_t)lo * g.n;
      if (g.m > 0) {
        cblas_sgemm(CblasRowMajor, g.ta ? CblasTrans : CblasNoTrans,
                    g.tb ? CblasTrans : CblasNoTrans, g.m, g.n, g.k, 1.0f,
                    g.a, g.ta ? l->g[i].m : g.k, g.b, g.tb ? g.k : g.n, 0.0f,
                    g.c, g.n);
      }
    }
}

/* Seconds per repetition of the list: the faster of two-thread BLAS and
 * the rows split across a team of single-thread BLAS calls (spkd's way). */
static double gemm_list_time(const gemm_t *g, int count, team_t *team,
                             int reps, double *flops) {
  gemm_list_t l = {g, count, 0, 1, reps};
  double t0, blas2, split;

  *flops = 0;
  for (int i = 0; i < count; i++)
    *flops += 2.0 * g[i].m * g[i].n * g[i].k;
  openblas_set_num_threads(THREADS);
  for (int i = 0; i < count; i++)
    gemm_run(&g[i]);
  t0 = now_s();
  for (int r = 0; r < reps; r++)
    for (int i = 0; i < count; i++)
      gemm_run(&g[i]);
  blas2 = (now_s() - t0) / reps;
  openblas_set_num_threads(1);
  team_run(team, gemm_list_rows, &l);
  t0 = now_s();
  team_run(team, gemm_list_rows, &l);
  split = (now_s() - t0) / reps;
  return blas2 < split ? blas2 : split;
}

static double sgemm_peak(team_t *team) {
  rng_t rng;
  int n = 2048;
  double flops, t;
  float *a, *b, *c;

  rng_init(&rng, 1, 1);
  a = randoms((size_t)n * n, &rng);
  b = randoms((size_t)n * n, &rng);
  c = randoms((size_t)n * n, &rng);
  gemm_t g = {0, 0, n, n, n, a, b, c};
  t = gemm_list_time(&g, 1, team, 3, &flops);
  free(a);
  free(b);
  free(c);
  return flops / t / 1e9;
}

/* The eight GEMMs of an mlp step at batch 128, weights (out, in). */
static double mlp_gemm_bound(team_t *team, double *gflop_per_step) {
  static const int dims[4] = {784, 512, 256, 10};
  float *x[4], *w[3], *dx[4], *dw[3];
  gemm_t g[8];
  int n = 0;
  rng_t rng;
  double t;

  rng_init(&rng, 2, 1);
  for (int i = 0; i < 4; i++) {
    x[i] = randoms((size_t)BATCH * dims[i], &rng);
    dx[i] = randoms((size_t)BATCH * dims[i], &rng);
  }
  for (int i = 0; i < 3; i++) {
    w[i] = randoms((size_t)dims[i] * dims[i + 1], &rng);
    dw[i] = randoms((size_t)dims[i] * dims[i + 1], &rng);
  }
  for (int i = 0; i < 3; i++) /* forward: y = x w^T */
    g[n++] = (gemm_t){0, 1, BATCH, dims[i + 1], dims[i], x[i], w[i],
                      x[i + 1]};
  for (int i = 0; i < 3; i++) /* weight gradients: dw = dy^T x */
    g[n++] = (gemm_t){1, 0, dims[i + 1], dims[i], BATCH, dx[i + 1], x[i],
                      dw[i]};
  for (int i = 2; i >= 1; i--) /* input gradients but the first layer's */
    g[n++] = (gemm_t){0, 0, BATCH, dims[i], dims[i + 1], dx[i + 1], w[i],
                      dx[i]};
  t = gemm_list_time(g, n, team, 200, gflop_per_step);
  *gflop_per_step /= 1e9;
  for (int i = 0; i < 4; i++) {
    free(x[i]);
    free(dx[i]);
  }
  for (int i = 0; i < 3; i++) {
    free(w[i]);
    free(dw[i]);
  }
  return t;
}

/* Seconds per training step of model preset name, as the pipeline
 * steps: forward, cross-entropy, backward, SGD update. */
static double train_step_time(const char *name, team_t *team, int steps) {
  optim_config_t cfg = {.kind = OPTIM_SGD, .lr = 0.01, .momentum = 0.9,
                        .weight_decay = 5e-4, .batch_size = BATCH,
                        .schedule = OPTIM_SCHEDULE_CONSTANT};
  model_desc_t d;
  model_t *m;
  rng_t rng;
  uint8_t y[BATCH];
  float *x, *dl = malloc(sizeof(float) * BATCH * 10);
  char err[256];
  double t0 = 0.0;
  model_env_t env = {{1, 28, 28}, 10, BATCH, team_size(team), &rng, 7};

  rng_init(&rng, 3, 1);
  model_preset(name, &d);
  if (!dl || model_new(&d, &env, &m, err, sizeof err) ||
      model_optim_prepare(m, &cfg)) {
    fprintf(stderr, "bench: %s: %s\n", name, err);
    exit(1);
  }
  x = randoms((size_t)BATCH * 784, &rng);
  for (int i = 0; i < BATCH; i++)
    y[i] = (uint8_t)rng_below(&rng, 10);
  for (int s = -3; s < steps; s++) {
    const float *logits;
    if (s == 0)
      t0 = now_s();
    logits = model_forward(m, team, x, BATCH, 1);
    loss_ce_backward(logits, y, NULL, BATCH, 10, dl);
    model_step(m, team, dl, &cfg, 0.01, s + 4);
  }
  t0 = (now_s() - t0) / steps;
  model_free(m);
  free(x);
  free(dl);
  return t0;
}

/* Seconds per sample of a forward-only pass over n samples in batches of
 * 256, as the pipeline scores every training sample each epoch. */
static double score_time(const char *name, team_t *team, int n) {
  model_desc_t d;
  model_t *m;
  rng_t rng;
  float *x;
  char err[256];
  double t0;
  model_env_t env = {{1, 28, 28}, 10, 256, team_size(team), &rng, 7};

  rng_init(&rng, 4, 1);
  model_preset(name, &d);
  if (model_new(&d, &env, &m, err, sizeof err)) {
    fprintf(stderr, "bench: %s: %s\n", name, err);
    exit(1);
  }
  x = randoms((size_t)256 * 784, &rng);
  model_forward(m, team, x, 256, 0);
  t0 = now_s();
  for (int done = 0; done < n; done += 256)
    model_forward(m, team, x, n - done < 256 ? n - done : 256, 0);
  t0 = (now_s() - t0) / n;
  model_free(m);
  free(x);
  return t0;
}

/* Runs this program again with OpenBLAS left to its own choice of kernel
 * and reads the peak it prints. */
static double peak_of_openblas_choice(const char *self, char *core,
                                      size_t len) {
  char cmd[4096];
  double gf = 0.0;
  FILE *p;

  snprintf(cmd, sizeof cmd,
           "env -u OPENBLAS_CORETYPE SPKD_BLAS_BOOT=- OPENBLAS_NUM_THREADS=%d "
           "'%s' --peak-only",
           THREADS, self);
  p = popen(cmd, "r");
  if (!p || fscanf(p, "%63s %lf", core, &gf) != 2)
    snprintf(core, len, "unknown");
  if (p)
    pclose(p);
  return gf;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The median of n values (sorts them). */
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Leaves the limits where the PyTorch comparison reads them. */
static void limits_save(double peak, double bound) {
  FILE *f = fopen("build/bench-limits.txt", "w");

  if (!f)
    return;
  fprintf(f, "peak_gflops=%.3f\nmlp_bound_seconds=%.6f\n", peak, bound);
  fclose(f);
}

static void report(const char *what, double value, const char *unit,
                   double ratio, const char *limit, double target) {
  printf("%-44s %10.1f %-10s %6.1f %% of %s (target %.0f %%)%s\n", what,
         value, unit, 100.0 * ratio, limit, 100.0 * target,
         ratio >= target ? "" : "  MISSED");
}

int main(int argc, char **argv) {
  log_t log = {LOG_WARN};
  team_t *team;
  char core[64], own_core[64];
  double peak, own_peak, bound, gflop, t, bounds[ROUNDS], steps[ROUNDS];

  boot_blas(argv, &log);
  if (team_new(THREADS, &team) != 0)
    return 1;
  blas_corename(core, sizeof core);
  if (argc > 1 && strcmp(argv[1], "--peak-only") == 0) {
    printf("%s %.2f\n", core, sgemm_peak(team));
    team_free(team);
    return 0;
  }
  peak = sgemm_peak(team);
  own_peak = peak_of_openblas_choice(argv[0], own_core, sizeof own_core);
  printf("threads %d, batch %d\n", THREADS, BATCH);
  printf("sgemm peak, kernel spkd runs (%s): %.1f GF/s\n", core, peak);
  printf("sgemm peak, kernel OpenBLAS picks (%s): %.1f GF/s\n", own_core,
         own_peak);

  /* The bound and the step alternate, five times each, and the medians
   * are compared: on a shared machine whose speed drifts, a ratio of two
   * single measurements taken a second apart mostly measures the drift. */
  for (int i = 0; i < ROUNDS; i++) {
    bounds[i] = mlp_gemm_bound(team, &gflop);
    steps[i] = train_step_time("mlp", team, 200);
  }
  bound = median(bounds, ROUNDS);
  t = median(steps, ROUNDS);
  printf("mlp step GEMM-only bound: %.3f ms (%.3f GFLOP, %.1f GF/s; "
         "medians of %d alternating rounds)\n",
         bound * 1e3, gflop, gflop / bound, ROUNDS);
  report("mlp training (samples/s)", BATCH / t, "", bound / t,
         "the GEMM-only bound", 0.80);
  t = train_step_time("cnn", team, 40);
  report("cnn training (samples/s)", BATCH / t, "",
         BATCH * 22.3e-3 / t / peak, "sgemm peak at 22.3 MFLOP/sample",
         0.50);
  t = score_time("mlp", team, 60000);
  report("mlp scoring pass, 60 000 samples (samples/s)", 1.0 / t, "",
         1.07e-3 / t / peak, "sgemm peak at 1.07 MFLOP/sample", 0.80);
  t = score_time("cnn", team, 60000);
  report("cnn scoring pass, 60 000 samples (samples/s)", 1.0 / t, "",
         7.74e-3 / t / peak, "sgemm peak at 7.74 MFLOP/sample", 0.50);
  limits_save(peak, bound);
  team_free(team);
  return 0;
}
