/* SPDX-License-Identifier: MIT */
/* Queries across a stage's samples: which samples changed between easy
 * and hard from one epoch to another (from db_epoch_set's sets, never the
 * stored arrays themselves), and a stage's training dynamics sorted by
 * one statistic, a page at a time. The arrays' layout is db_dynamics.c's
 * (five columns of 4-byte little-endian values in position order). */
#include "db_internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- Samples that changed between two epochs. ---- */

/* Walks the two ascending easy sets together and keeps the indices in
 * exactly one of them, up to limit, into out. */
static int changes_merge(const int32_t *a, int na, const int32_t *b, int nb,
                         int limit, db_easy_change_t *out) {
  int i = 0, j = 0, n = 0;

  while (n < limit && (i < na || j < nb)) {
    if (j == nb || (i < na && a[i] < b[j])) {
      out[n].index = a[i++];
      out[n++].became_easy = 0;
    } else if (i == na || b[j] < a[i]) {
      out[n].index = b[j++];
      out[n++].became_easy = 1;
    } else {
      i++;
      j++;
    }
  }
  return n;
}

int db_epoch_changes(db_t *db, int64_t job, const db_change_query_t *q,
                     db_easy_change_t **out, int *count, char *err,
                     size_t errlen) {
  int32_t *a = NULL, *b = NULL;
  db_easy_change_t *list = NULL;
  int na = 0, nb = 0, cap, r;

  *out = NULL;
  *count = 0;
  if (!q || q->limit < 0)
    return db_msg(-EINVAL, err, errlen, "negative limit %d", q ? q->limit : -1);

  /* Both epochs' whole easy sets from after on: a sample missing from
   * one of them is hard there. */
  r = db_epoch_set(db, job, q->stage, q->epoch_a, 1, q->after, INT_MAX, &a, &na,
                   err, errlen);
  if (!r)
    r = db_epoch_set(db, job, q->stage, q->epoch_b, 1, q->after, INT_MAX, &b,
                     &nb, err, errlen);
  if (r)
    goto out;
  cap = na + nb < q->limit ? na + nb : q->limit;
  list = malloc((size_t)cap * sizeof *list + 1);
  if (!list) {
    r = db_msg(-ENOMEM, err, errlen, "out of memory for %d changes", cap);
    goto out;
  }
  *count = changes_merge(a, na, b, nb, q->limit, list);
  *out = list;

out:
  free(a);
  free(b);
  return r;
}

/* ---- A stage's dynamics, sorted. ---- */

enum { DYN_COLUMNS = 5 };
static const char *const stat_name[DYN_COLUMNS] = {
    "confidence", "variability", "correctness", "forgetting", "aum"};

int db_dyn_stat_parse(const char *name) {
  for (int i = 0; name && i < DYN_COLUMNS; i++)
    if (strcmp(name, stat_name[i]) == 0)
      return i;
  return -EINVAL;
}

/* A stage's stored dynamics: DYN_COLUMNS arrays of n values, pointing
 * into the row the statement rests on, and per position the sample's
 * index and labels. */
typedef struct {
  sqlite3_stmt *st;
  int n;
  const uint8_t *col[DYN_COLUMNS];
  int32_t *index;
  uint8_t *observed, *clean;
} dyn_table_t;

static void dyn_table_deinit(dyn_table_t *t) {
  sqlite3_finalize(t->st);
  free(t->index);
  free(t->observed);
  free(t->clean);
  memset(t, 0, sizeof *t);
}

/* Value at position pos of column c, as a double (forgetting exactly). */
static double dyn_value(const dyn_table_t *t, int c, int pos) {
  const uint8_t *p = t->col[c] + 4 * (size_t)pos;

  if (c == DB_DYN_FORGETTING)
    return (double)db_i32_unpack(p);
  return (double)db_f32_unpack(p);
}

/* Says which of job or stage dynamics is missing. */
static int dyn_missing(db_t *db, int64_t job, const char *stage, char *err,
                       size_t errlen) {
  int r = db_row_exists(db, "SELECT 1 FROM jobs WHERE id = ?", job, "find job",
                        err, errlen);

  if (r < 0)
    return r;
  if (r == 0)
    return db_msg(-ENOENT, err, errlen, "no job %lld", (long long)job);
  return db_msg(-ENOENT, err, errlen, "job %lld has no dynamics of stage %s",
                (long long)job, stage);
}

/* Steps t->st to the stage's dynamics row and points the columns at its
 * arrays, checking their lengths. */
static int dyn_row_find(db_t *db, int64_t job, const char *stage,
                        dyn_table_t *t, char *err, size_t errlen) {
  int r, rc;

  r = db_prepare(db,
                 "SELECT n, confidence, variability, correctness, "
                 "forgetting, aum FROM stage_dynamics "
                 "WHERE job_id = ? AND stage = ?",
                 &t->st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_bind_int64(t->st, 1, job);
  rc = rc ? rc : sqlite3_bind_text(t->st, 2, stage, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_step(t->st);
  if (rc == SQLITE_DONE)
    return dyn_missing(db, job, stage, err, errlen);
  if (rc != SQLITE_ROW)
    return db_fail(db, rc, "read stage dynamics", err, errlen);
  t->n = sqlite3_column_int(t->st, 0);
  for (int c = 0; c < DYN_COLUMNS; c++) {
    t->col[c] = sqlite3_column_blob(t->st, 1 + c);
    if (sqlite3_column_bytes(t->st, 1 + c) != 4 * t->n ||
        (t->n > 0 && !t->col[c]))
      return db_msg(-EIO, err, errlen, "stage %s %s array unreadable", stage,
                    stat_name[c]);
  }
  return 0;
}

/* Stores the current job_samples row (idx, pos, observed, clean) at its
 * position; every position must come exactly once. */
static int dyn_sample_place(sqlite3_stmt *st, dyn_table_t *t, char *err,
                            size_t errlen) {
  int32_t idx = (int32_t)sqlite3_column_int(st, 0);
  int pos = sqlite3_column_int(st, 1);

  if (pos < 0 || pos >= t->n || t->index[pos] >= 0)
    return db_msg(-EIO, err, errlen,
                  "sample %d at position %d does not fit %d dynamics", (int)idx,
                  pos, t->n);
  t->index[pos] = idx;
  t->observed[pos] = (uint8_t)sqlite3_column_int(st, 2);
  t->clean[pos] = (uint8_t)sqlite3_column_int(st, 3);
  return 0;
}

/* Reads the job's training samples into t's per-position arrays. */
static int dyn_samples_read(db_t *db, int64_t job, dyn_table_t *t, char *err,
                            size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc, seen = 0;

  t->index = malloc((size_t)t->n * sizeof *t->index + 1);
  t->observed = malloc((size_t)t->n + 1);
  t->clean = malloc((size_t)t->n + 1);
  if (!t->index || !t->observed || !t->clean)
    return db_msg(-ENOMEM, err, errlen, "out of memory for %d samples", t->n);
  memset(t->index, 0xff, (size_t)t->n * sizeof *t->index); /* -1: none */
  r = db_prepare(db,
                 "SELECT idx, pos, observed, clean FROM job_samples "
                 "WHERE job_id = ? AND split = 0",
                 &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_bind_int64(st, 1, job);
  while (!r && rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    r = dyn_sample_place(st, t, err, errlen);
    seen++;
    rc = SQLITE_OK;
  }
  if (!r && rc != SQLITE_DONE)
    r = db_fail(db, rc, "read job samples", err, errlen);
  if (!r && seen != t->n)
    r = db_msg(-EIO, err, errlen, "%d dynamics for %d training samples", t->n,
               seen);
  sqlite3_finalize(st);
  return r;
}

/* A position with its sort key: the statistic, negated for a descending
 * order, so that one ascending comparison serves both. */
typedef struct {
  double key;
  int32_t index;
  int pos;
} dyn_key_t;

/* Ascending keys, NaN after every number, ties by ascending index. */
static int dyn_key_cmp(const void *pa, const void *pb) {
  const dyn_key_t *a = pa, *b = pb;
  int na = isnan(a->key), nb = isnan(b->key);

  if (na != nb)
    return na - nb;
  if (!na && a->key != b->key)
    return a->key < b->key ? -1 : 1;
  return (a->index > b->index) - (a->index < b->index);
}

/* Sorts every position of t as q says into a heap array *keys. */
static int dyn_sort(const dyn_table_t *t, const db_dynamics_query_t *q,
                    dyn_key_t **keys, char *err, size_t errlen) {
  dyn_key_t *k = malloc((size_t)t->n * sizeof *k + 1);

  if (!k)
    return db_msg(-ENOMEM, err, errlen, "out of memory sorting %d samples",
                  t->n);
  for (int p = 0; p < t->n; p++) {
    double v = dyn_value(t, (int)q->stat, p);
    k[p].key = q->descending ? -v : v;
    k[p].index = t->index[p];
    k[p].pos = p;
  }
  qsort(k, (size_t)t->n, sizeof *k, dyn_key_cmp);
  *keys = k;
  return 0;
}

/* Fills row from position pos of t. */
static void dyn_row_fill(const dyn_table_t *t, int pos,
                         db_dynamics_row_t *row) {
  row->index = t->index[pos];
  row->observed = t->observed[pos];
  row->clean = t->clean[pos];
  row->confidence = (float)dyn_value(t, DB_DYN_CONFIDENCE, pos);
  row->variability = (float)dyn_value(t, DB_DYN_VARIABILITY, pos);
  row->correctness = (float)dyn_value(t, DB_DYN_CORRECTNESS, pos);
  row->forgetting = (int)dyn_value(t, DB_DYN_FORGETTING, pos);
  row->aum = (float)dyn_value(t, DB_DYN_AUM, pos);
}

/* Copies the rows offset to offset + limit of the sorted keys. */
static int dyn_page_fill(const dyn_table_t *t, const dyn_key_t *keys,
                         const db_dynamics_query_t *q, db_dynamics_page_t *page,
                         char *err, size_t errlen) {
  int count = t->n - q->offset < q->limit ? t->n - q->offset : q->limit;

  page->rows = malloc((size_t)count * sizeof *page->rows + 1);
  if (!page->rows)
    return db_msg(-ENOMEM, err, errlen, "out of memory for %d rows", count);
  for (int i = 0; i < count; i++)
    dyn_row_fill(t, keys[q->offset + i].pos, &page->rows[i]);
  page->count = count;
  page->total = t->n;
  return 0;
}

void db_dynamics_page_deinit(db_dynamics_page_t *page) {
  if (!page)
    return;
  free(page->rows);
  memset(page, 0, sizeof *page);
}

static int dyn_query_check(const db_dynamics_query_t *q, char *err,
                           size_t errlen) {
  if (!q)
    return db_msg(-EINVAL, err, errlen, "no dynamics query");
  if (!db_stage_valid(q->stage))
    return db_msg(-ENOENT, err, errlen, "unknown stage '%s'",
                  q->stage ? q->stage : "(null)");
  if ((int)q->stat < 0 || (int)q->stat >= DYN_COLUMNS)
    return db_msg(-EINVAL, err, errlen, "unknown statistic %d", (int)q->stat);
  if (q->offset < 0 || q->limit < 0)
    return db_msg(-EINVAL, err, errlen, "negative %s",
                  q->offset < 0 ? "offset" : "limit");
  return 0;
}

int db_dynamics_list(db_t *db, int64_t job, const db_dynamics_query_t *q,
                     db_dynamics_page_t *page, char *err, size_t errlen) {
  dyn_table_t t = {0};
  dyn_key_t *keys = NULL;
  int r;

  memset(page, 0, sizeof *page);
  r = dyn_query_check(q, err, errlen);
  if (r)
    return r;

  /* The row stays under t.st while the samples are read: one snapshot. */
  r = dyn_row_find(db, job, q->stage, &t, err, errlen);
  if (!r && q->offset > t.n)
    r = db_msg(-ERANGE, err, errlen, "offset %d is beyond the %d samples",
               q->offset, t.n);
  if (!r)
    r = dyn_samples_read(db, job, &t, err, errlen);
  if (!r)
    r = dyn_sort(&t, q, &keys, err, errlen);
  if (!r)
    r = dyn_page_fill(&t, keys, q, page, err, errlen);
  free(keys);
  dyn_table_deinit(&t);
  return r;
}
