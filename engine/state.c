/* SPDX-License-Identifier: MIT */
/* Framing of resumable states: "SPKSTATE", a version, sections of
 * (tag u32, length u64, bytes), and a CRC-32 (zlib's) of everything
 * before it. */
#include "state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define STATE_VERSION 1u
#define STATE_HEADER 12 /* magic and version */
#define SECTION_HEADER 12

static const uint8_t state_magic[8] = {'S', 'P', 'K', 'S',
                                       'T', 'A', 'T', 'E'};

/* Makes room for n more bytes; remembers a failure. */
static int writer_reserve(state_writer_t *w, size_t n) {
  size_t cap = w->cap ? w->cap : 4096;
  uint8_t *buf;

  if (w->failed)
    return -ENOMEM;
  if (w->len + n <= w->cap)
    return 0;
  while (cap < w->len + n)
    cap *= 2;
  buf = realloc(w->buf, cap);
  if (!buf) {
    w->failed = 1;
    return -ENOMEM;
  }
  w->buf = buf;
  w->cap = cap;
  return 0;
}

static void writer_bytes(state_writer_t *w, const void *p, size_t n) {
  if (n == 0 || writer_reserve(w, n) != 0)
    return;
  memcpy(w->buf + w->len, p, n);
  w->len += n;
}

void state_writer_init(state_writer_t *w) {
  uint32_t version = STATE_VERSION;

  memset(w, 0, sizeof *w);
  writer_bytes(w, state_magic, sizeof state_magic);
  writer_bytes(w, &version, sizeof version);
}

void state_put(state_writer_t *w, uint32_t tag, const void *p, size_t n) {
  uint64_t len = n;

  writer_bytes(w, &tag, sizeof tag);
  writer_bytes(w, &len, sizeof len);
  writer_bytes(w, p, n);
}

int state_writer_finish(state_writer_t *w, uint8_t **out, size_t *size) {
  uint32_t crc;

  *out = NULL;
  *size = 0;
  if (w->failed || !w->buf) {
    state_writer_deinit(w);
    return -ENOMEM;
  }
  crc = (uint32_t)crc32(0L, w->buf, (uInt)w->len);
  writer_bytes(w, &crc, sizeof crc);
  if (w->failed) {
    state_writer_deinit(w);
    return -ENOMEM;
  }
  *out = w->buf;
  *size = w->len;
  memset(w, 0, sizeof *w);
  return 0;
}

void state_writer_deinit(state_writer_t *w) {
  free(w->buf);
  memset(w, 0, sizeof *w);
}

static int bad(char *err, size_t errlen, const char *what) {
  snprintf(err, errlen, "resume state: %s", what);
  return -EINVAL;
}

/* Walks the sections of r; with want set stops at the skip-th section
 * of that tag (from 0). Returns 0 when the walk ends exactly at the
 * checksum (or the section was found), -EINVAL for a frame that
 * overruns, -ENOENT when the section is absent. */
static int sections_walk(const state_reader_t *r, uint32_t want, int skip,
                         const uint8_t **p, size_t *n) {
  size_t pos = STATE_HEADER;

  while (pos < r->size) {
    uint32_t tag;
    uint64_t len;
    if (r->size - pos < SECTION_HEADER)
      return -EINVAL;
    memcpy(&tag, r->buf + pos, sizeof tag);
    memcpy(&len, r->buf + pos + 4, sizeof len);
    pos += SECTION_HEADER;
    if (len > r->size - pos)
      return -EINVAL;
    if (want && tag == want && skip-- == 0) {
      *p = r->buf + pos;
      *n = (size_t)len;
      return 0;
    }
    pos += (size_t)len;
  }
  return want ? -ENOENT : 0;
}

int state_reader_init(state_reader_t *r, const uint8_t *buf, size_t size,
                      char *err, size_t errlen) {
  uint32_t version, crc;

  r->buf = buf;
  r->size = 0;
  if (!buf || size < STATE_HEADER + 4)
    return bad(err, errlen, "truncated (too short for a header)");
  if (memcmp(buf, state_magic, sizeof state_magic) != 0)
    return bad(err, errlen, "not a resume state (bad magic)");
  memcpy(&version, buf + 8, sizeof version);
  if (version != STATE_VERSION)
    return bad(err, errlen, "written by another version of spkd");
  memcpy(&crc, buf + size - 4, sizeof crc);
  if (crc != (uint32_t)crc32(0L, buf, (uInt)(size - 4)))
    return bad(err, errlen, "checksum mismatch (corrupt or truncated)");
  r->size = size - 4;
  if (sections_walk(r, 0, 0, NULL, NULL) != 0) {
    r->size = 0;
    return bad(err, errlen, "a section runs past the end");
  }
  return 0;
}

int state_get(const state_reader_t *r, uint32_t tag, const uint8_t **p,
              size_t *n) {
  return sections_walk(r, tag, 0, p, n);
}

int state_get_nth(const state_reader_t *r, uint32_t tag, int index,
                  const uint8_t **p, size_t *n) {
  return index < 0 ? -ENOENT : sections_walk(r, tag, index, p, n);
}

int state_get_exact(const state_reader_t *r, uint32_t tag, void *dst,
                    size_t n, char *err, size_t errlen) {
  const uint8_t *p = NULL;
  size_t got = 0;
  char what[80], name[5];

  memcpy(name, &tag, 4);
  name[4] = '\0';
  if (state_get(r, tag, &p, &got) != 0) {
    snprintf(what, sizeof what, "section %s is missing", name);
    return bad(err, errlen, what);
  }
  if (got != n) {
    snprintf(what, sizeof what, "section %s holds %zu bytes, not %zu", name,
             got, n);
    return bad(err, errlen, what);
  }
  memcpy(dst, p, n);
  return 0;
}
