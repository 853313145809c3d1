/* SPDX-License-Identifier: MIT */
/* A stage's resumable state as bytes: tagged sections after a magic and a
 * version, closed by a CRC-32. The pipeline decides what the sections
 * hold; this module only frames them and checks frames on the way back.
 * Values are stored in host byte order: a state resumes the run that
 * wrote it, on the same kind of machine, not a portable file format. */
#ifndef SPK_ENGINE_STATE_H
#define SPK_ENGINE_STATE_H

#include <stddef.h>
#include <stdint.h>

#define STATE_TAG(a, b, c, d)                                                  \
  ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 |                  \
   (uint32_t)(d) << 24)

/* Sections are appended to a growing buffer; an allocation failure is
 * remembered and reported by state_writer_finish. */
typedef struct {
  uint8_t *buf;
  size_t len, cap;
  int failed;
} state_writer_t;

/* Starts a state: writes the magic and version. */
void state_writer_init(state_writer_t *w);

/* Appends section tag holding n bytes from p. */
void state_put(state_writer_t *w, uint32_t tag, const void *p, size_t n);

/* Closes the state with its checksum and hands the buffer over: *out
 * (freed by the caller) of *size bytes. Returns 0 or -ENOMEM, after which
 * nothing is handed over and w holds nothing. */
int state_writer_finish(state_writer_t *w, uint8_t **out, size_t *size);

/* Frees an unfinished writer's buffer. */
void state_writer_deinit(state_writer_t *w);

/* A checked state being read; points into the caller's bytes. */
typedef struct {
  const uint8_t *buf;
  size_t size; /* without the checksum */
} state_reader_t;

/* Checks buf[0, size): magic, version, every section's frame and the
 * checksum. Returns 0, or -EINVAL with err naming what is wrong. */
int state_reader_init(state_reader_t *r, const uint8_t *buf, size_t size,
                      char *err, size_t errlen);

/* Finds section tag: *p and *n point at its bytes. Returns 0 or -ENOENT. */
int state_get(const state_reader_t *r, uint32_t tag, const uint8_t **p,
              size_t *n);

/* Finds the index-th section (from 0) of tag, for a tag the writer put
 * several times. Returns 0 or -ENOENT. */
int state_get_nth(const state_reader_t *r, uint32_t tag, int index,
                  const uint8_t **p, size_t *n);

/* Copies section tag, which must hold exactly n bytes, into dst. Returns
 * 0, or -EINVAL with err naming the section when it is missing or has
 * another size. */
int state_get_exact(const state_reader_t *r, uint32_t tag, void *dst,
                    size_t n, char *err, size_t errlen);

#endif
