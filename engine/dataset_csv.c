/* SPDX-License-Identifier: MIT */
/* CSV files of tabular data: numeric feature cells, then a label cell
 * holding a class (an integer from 0 to 255). The whole file is read,
 * scanned once for its shape (header, columns, data lines) and parsed
 * once into floats. Errors name the file, line and column. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset_io.h"

#define CSV_MAX_BYTES (256ll << 20)
#define CSV_MAX_COLUMNS 65536
#define CSV_CELL_MAX 64

/* One file in memory and the shape its scan found. */
typedef struct {
  const char *path;
  char *buf; /* the whole file, NUL-terminated, byte-order mark skipped */
  const char *text;
  size_t len;
  int cols;   /* cells per line, the label's included */
  int header; /* 1 when line 1 names the columns */
  int rows;   /* data lines */
} csv_t;

/* One line of text without its LF or CRLF; number counts from 1. */
typedef struct {
  const char *p;
  size_t n;
  int number;
} csv_line_t;

/* Reads the whole file, refusing one larger than CSV_MAX_BYTES. */
static int csv_slurp(csv_t *c, char *err, size_t errlen) {
  FILE *f = fopen(c->path, "rb");
  struct stat st;
  int rc = 0;

  if (!f) {
    snprintf(err, errlen, "%s: %s", c->path, strerror(errno));
    return -ENOENT;
  }
  if (fstat(fileno(f), &st) != 0) {
    snprintf(err, errlen, "%s: %s", c->path, strerror(errno));
    rc = -EIO;
    goto out;
  }
  if (st.st_size > CSV_MAX_BYTES) {
    snprintf(err, errlen, "%s: larger than the %lld MiB a CSV file may have",
             c->path, CSV_MAX_BYTES >> 20);
    rc = -EINVAL;
    goto out;
  }
  c->len = (size_t)st.st_size;
  c->buf = malloc(c->len + 1);
  if (!c->buf) {
    rc = dataset_nomem(c->path, c->len + 1, err, errlen);
    goto out;
  }
  if (fread(c->buf, 1, c->len, f) != c->len || fgetc(f) != EOF) {
    snprintf(err, errlen, "%s: changed size while it was read", c->path);
    rc = -EINVAL;
    goto out;
  }
  c->buf[c->len] = '\0';
  c->text = c->buf;
  if (c->len >= 3 && memcmp(c->buf, "\xef\xbb\xbf", 3) == 0) {
    c->text += 3;
    c->len -= 3;
  }

out:
  fclose(f);
  return rc;
}

/* Takes the line at *pos; returns 0 when there is none left. */
static int line_next(const csv_t *c, size_t *pos, csv_line_t *line) {
  const char *start = c->text + *pos, *nl;

  if (*pos >= c->len)
    return 0;
  nl = memchr(start, '\n', c->len - *pos);
  line->p = start;
  line->n = nl ? (size_t)(nl - start) : c->len - *pos;
  line->number++;
  *pos += line->n + (nl != NULL);
  if (line->n > 0 && start[line->n - 1] == '\r')
    line->n--;
  return 1;
}

static int is_space(char ch) {
  return ch == ' ' || ch == '\t';
}

static int line_blank(const csv_line_t *line) {
  for (size_t i = 0; i < line->n; i++)
    if (!is_space(line->p[i]))
      return 0;
  return 1;
}

static long line_columns(const csv_line_t *line) {
  long cols = 1;

  for (size_t i = 0; i < line->n; i++)
    cols += line->p[i] == ',';
  return cols;
}

/* Parses a cell holding one finite number, spaces around it allowed.
 * Returns 1 and sets *v, or 0. */
static int cell_number(const char *p, size_t n, double *v) {
  char text[CSV_CELL_MAX], *end;

  while (n > 0 && is_space(*p))
    p++, n--;
  while (n > 0 && is_space(p[n - 1]))
    n--;
  if (n == 0 || n >= sizeof text)
    return 0;
  memcpy(text, p, n);
  text[n] = '\0';
  *v = strtod(text, &end);
  return end == text + n && isfinite(*v) && fabs(*v) <= FLT_MAX;
}

/* One cell's text, spaces and all. */
typedef struct {
  const char *p;
  size_t n;
} csv_cell_t;

/* Takes the cell at *at of a line ending at end; moves *at past it and
 * the comma after it. */
static csv_cell_t cell_next(const char **at, const char *end) {
  const char *comma = memchr(*at, ',', (size_t)(end - *at));
  csv_cell_t cell = {*at, (size_t)((comma ? comma : end) - *at)};

  *at = comma ? comma + 1 : end;
  return cell;
}

/* A first line with a cell that is not a number among its feature
 * columns names the columns. */
static int line_is_header(const csv_t *c, const csv_line_t *line) {
  const char *at = line->p, *end = line->p + line->n;

  for (int col = 0; col < c->cols - 1; col++) {
    csv_cell_t cell = cell_next(&at, end);
    double v;
    if (!cell_number(cell.p, cell.n, &v))
      return 1;
  }
  return 0;
}

/* Checks line 1's column count: features and a label, within bounds. */
static int csv_columns_check(csv_t *c, long cols, char *err, size_t errlen) {
  if (cols >= 2 && cols <= CSV_MAX_COLUMNS) {
    c->cols = (int)cols;
    return 0;
  }
  snprintf(err, errlen,
           "%s: line 1 has %ld column%s; a CSV dataset needs feature "
           "columns and a label column, at most %d in all",
           c->path, cols, cols == 1 ? "" : "s", CSV_MAX_COLUMNS);
  return -EINVAL;
}

/* Checks the lines' shape: every non-blank line has as many columns as the
 * first, blank lines only trail. Sets cols and counts the non-blank lines
 * into rows. */
static int csv_scan(csv_t *c, char *err, size_t errlen) {
  csv_line_t line = {0};
  size_t pos = 0;
  int blank_at = 0, rc = 0;

  while (rc == 0 && line_next(c, &pos, &line)) {
    long cols = line_columns(&line);
    if (line_blank(&line)) {
      blank_at = blank_at ? blank_at : line.number;
      continue;
    }
    if (blank_at) {
      snprintf(err, errlen, "%s: line %d is blank but line %d holds data",
               c->path, blank_at, line.number);
      return -EINVAL;
    }
    if (line.number == 1) {
      rc = csv_columns_check(c, cols, err, errlen);
    } else if (cols != c->cols) {
      snprintf(err, errlen, "%s: line %d has %ld columns, line 1 has %d",
               c->path, line.number, cols, c->cols);
      rc = -EINVAL;
    } else if (c->rows > DATASET_MAX_SAMPLES) {
      snprintf(err, errlen, "%s: more than %d data lines", c->path,
               DATASET_MAX_SAMPLES);
      rc = -EINVAL;
    }
    c->rows++;
  }
  return rc;
}

/* Tells whether line 1 is a header; refuses no data or too much. */
static int csv_rows_check(csv_t *c, char *err, size_t errlen) {
  csv_line_t first = {0};
  size_t pos = 0;

  if (c->rows > 0 && line_next(c, &pos, &first))
    c->header = line_is_header(c, &first);
  c->rows -= c->header;
  if (c->rows == 0 || c->rows > DATASET_MAX_SAMPLES) {
    snprintf(err, errlen, "%s: %s data lines", c->path,
             c->rows == 0 ? "no" : "too many");
    return -EINVAL;
  }
  return 0;
}

/* Reads and scans a file; on success the caller frees c->buf. */
static int csv_open(csv_t *c, const char *path, char *err, size_t errlen) {
  int rc;

  memset(c, 0, sizeof *c);
  c->path = path;
  rc = csv_slurp(c, err, errlen);
  if (rc == 0)
    rc = csv_scan(c, err, errlen);
  if (rc == 0)
    rc = csv_rows_check(c, err, errlen);
  if (rc < 0) {
    free(c->buf);
    c->buf = NULL;
  }
  return rc;
}

/* Describes a cell for a message: printable ASCII kept, at most 24
 * characters, anything else shown as '?'. */
static void cell_show(const char *p, size_t n, char *out, size_t outlen) {
  size_t k = 0;

  for (; k < n && k < 24 && k + 1 < outlen; k++)
    out[k] = p[k] >= 0x20 && p[k] < 0x7f ? p[k] : '?';
  out[k] = '\0';
}

static int cell_error(const csv_t *c, const csv_line_t *line, int col,
                      csv_cell_t cell, char *err, size_t errlen) {
  char shown[32];
  int label = col == c->cols - 1;

  cell_show(cell.p, cell.n, shown, sizeof shown);
  snprintf(err, errlen, "%s: line %d, column %d: '%s%s' is not %s", c->path,
           line->number, col + 1, shown, cell.n > 24 ? "..." : "",
           label ? "a class label (an integer from 0 to 255)" : "a number");
  return -EINVAL;
}

/* Parses one data line into x (cols - 1) and its label into *y. */
static int line_parse(const csv_t *c, const csv_line_t *line, float *x,
                      uint8_t *y, char *err, size_t errlen) {
  const char *at = line->p, *end = line->p + line->n;

  for (int col = 0; col < c->cols; col++) {
    csv_cell_t cell = cell_next(&at, end);
    double v;
    if (!cell_number(cell.p, cell.n, &v))
      return cell_error(c, line, col, cell, err, errlen);
    if (col < c->cols - 1)
      x[col] = (float)v;
    else if (v >= 0.0 && v <= 255.0 && v == floor(v))
      *y = (uint8_t)v;
    else
      return cell_error(c, line, col, cell, err, errlen);
  }
  return 0;
}

/* Parses every data line of a scanned file into ds. */
static int csv_parse(const csv_t *c, dataset_t *ds, char *err, size_t errlen) {
  size_t dim = (size_t)c->cols - 1, pos = 0;
  csv_line_t line = {0};
  int rc = 0, i = 0;

  ds->features = malloc(sizeof(float) * dim * (size_t)c->rows);
  ds->y = malloc((size_t)c->rows);
  if (!ds->features || !ds->y)
    return dataset_nomem(c->path, sizeof(float) * dim * (size_t)c->rows, err,
                         errlen);
  while (rc == 0 && i < c->rows && line_next(c, &pos, &line)) {
    if (line.number == 1 && c->header)
      continue;
    rc = line_parse(c, &line, ds->features + dim * (size_t)i, ds->y + i, err,
                    errlen);
    i++;
  }
  return rc;
}

int dataset_csv_read(const dataset_files_t *files, int test, dataset_t *ds,
                     char *err, size_t errlen) {
  csv_t c;
  int rc = csv_open(&c, files->path[test ? 1 : 0], err, errlen);

  if (rc < 0)
    return rc;
  rc = csv_parse(&c, ds, err, errlen);
  if (rc == 0) {
    ds->n = c.rows;
    ds->dim = c.cols - 1;
    ds->channels = ds->height = 1;
    ds->width = ds->dim;
    dataset_classes_set(ds);
  }
  free(c.buf);
  return rc;
}

int dataset_csv_count(const dataset_files_t *files, int test, int *n, char *err,
                      size_t errlen) {
  csv_t c;
  int rc = csv_open(&c, files->path[test ? 1 : 0], err, errlen);

  if (rc == 0)
    *n = c.rows;
  free(c.buf);
  return rc;
}
