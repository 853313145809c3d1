/* SPDX-License-Identifier: MIT */
/* The BLAS questions the engine answers (which kernel this processor
 * deserves, which cores are generic fallbacks, whether an sgemm is right)
 * and the team that runs a job's threads. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../engine/blas.h"
#include "../../engine/team.h"

/* The kernel named matches what the processor reports supporting. */
static void test_kernel_for_cpu(void **state) {
  const char *k = blas_kernel_for_cpu();

  (void)state;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
      && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512cd"))
    assert_string_equal(k, "SkylakeX");
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    assert_string_equal(k, "Haswell");
  else
    assert_null(k);
}

static void test_generic_cores(void **state) {
  (void)state;
  assert_true(blas_core_is_generic("Prescott"));
  assert_true(blas_core_is_generic("prescott"));
  assert_true(blas_core_is_generic("Core2"));
  assert_true(blas_core_is_generic("Sandybridge"));
  assert_false(blas_core_is_generic("Haswell"));
  assert_false(blas_core_is_generic("SkylakeX"));
  assert_false(blas_core_is_generic("Cooperlake"));
  assert_false(blas_core_is_generic("Zen"));
}

static void test_check_accepts_openblas(void **state) {
  char err[256] = "";

  (void)state;
  assert_int_equal(blas_check(blas_sgemm_plain, err, sizeof err), 0);
}

/* A kernel that is wrong in one element of larger products, as a broken
 * kernel might be only past some block size. */
static void sgemm_off_by_a_bit(int m, int n, int k, const float *a,
                               const float *b, float *c) {
  blas_sgemm_plain(m, n, k, a, b, c);
  if (m * n > 100)
    c[m * n / 2] += 0.01f;
}

/* A kernel that forgets the last term of every sum. */
static void sgemm_short_k(int m, int n, int k, const float *a,
                          const float *b, float *c) {
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      float s = 0.0f;
      for (int p = 0; p + 1 < k; p++)
        s += a[i * k + p] * b[p * n + j];
      c[i * n + j] = s;
    }
}

static void test_check_rejects_wrong_kernels(void **state) {
  char err[256] = "";

  (void)state;
  assert_int_equal(blas_check(sgemm_off_by_a_bit, err, sizeof err), -EIO);
  assert_non_null(strstr(err, "reference"));
  err[0] = '\0';
  assert_int_equal(blas_check(sgemm_short_k, err, sizeof err), -EIO);
  assert_non_null(strstr(err, "sgemm"));
}

/* Every member runs once per run, with its own number. */
typedef struct {
  atomic_int calls[8];
  atomic_int size_seen;
} tally_t;

static void count_call(void *ctx, int member, int size) {
  tally_t *t = ctx;

  atomic_fetch_add(&t->calls[member], 1);
  atomic_store(&t->size_seen, size);
}

static void test_team_runs_every_member(void **state) {
  for (int threads = 1; threads <= 4; threads++) {
    tally_t t;
    team_t *team;

    (void)state;
    memset(&t, 0, sizeof t);
    assert_int_equal(team_new(threads, &team), 0);
    assert_int_equal(team_size(team), threads);
    for (int r = 0; r < 500; r++)
      team_run(team, count_call, &t);
    for (int m = 0; m < 8; m++)
      assert_int_equal(atomic_load(&t.calls[m]), m < threads ? 500 : 0);
    assert_int_equal(atomic_load(&t.size_seen), threads);
    team_free(team);
  }
  assert_int_equal(team_size(NULL), 1);
  team_free(NULL);
}

static void test_team_refuses_bad_sizes(void **state) {
  team_t *team = (team_t *)&team;

  (void)state;
  assert_int_equal(team_new(0, &team), -EINVAL);
  assert_null(team);
  assert_int_equal(team_new(257, &team), -EINVAL);
}

/* team_run returns only after every member finished: a slow member's
 * write is always visible to the caller. */
static void slow_write(void *ctx, int member, int size) {
  int *out = ctx;
  volatile double x = 0.0;

  (void)size;
  if (member == 1)
    for (int i = 0; i < 200000; i++)
      x += i;
  out[member] = member + 1;
}

static void test_team_waits_for_all(void **state) {
  team_t *team;

  (void)state;
  assert_int_equal(team_new(3, &team), 0);
  for (int r = 0; r < 50; r++) {
    int out[3] = {0, 0, 0};
    team_run(team, slow_write, out);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 2);
    assert_int_equal(out[2], 3);
  }
  team_free(team);
}

/* team_sync: after it every member sees what every other wrote before
 * it, round after round, a slow member included. */
typedef struct {
  team_t *team;
  int rounds;
  int slots[4];
  int bad;
} sync_ctx_t;

static void sync_rounds(void *ctx, int member, int size) {
  sync_ctx_t *c = ctx;
  volatile double x = 0.0;

  for (int r = 1; r <= c->rounds; r++) {
    if (member == r % size)
      for (int i = 0; i < 2000; i++)
        x += i;
    c->slots[member] = r;
    team_sync(c->team);
    for (int k = 0; k < size; k++)
      if (c->slots[k] < r)
        c->bad = 1;
    team_sync(c->team);
  }
}

static void test_team_sync(void **state) {
  (void)state;
  for (int threads = 1; threads <= 4; threads++) {
    sync_ctx_t c = {NULL, 300, {0}, 0};
    assert_int_equal(team_new(threads, &c.team), 0);
    team_run(c.team, sync_rounds, &c);
    assert_int_equal(c.bad, 0);
    for (int k = 0; k < threads; k++)
      assert_int_equal(c.slots[k], 300);
    team_free(c.team);
  }
  team_sync(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kernel_for_cpu),
      cmocka_unit_test(test_generic_cores),
      cmocka_unit_test(test_check_accepts_openblas),
      cmocka_unit_test(test_check_rejects_wrong_kernels),
      cmocka_unit_test(test_team_runs_every_member),
      cmocka_unit_test(test_team_refuses_bad_sizes),
      cmocka_unit_test(test_team_waits_for_all),
      cmocka_unit_test(test_team_sync),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
