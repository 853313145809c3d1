/* SPDX-License-Identifier: MIT */
/* SHA-256 (FIPS 180-4), used to record which dataset files a job read. */
#ifndef SPK_SERVER_SHA256_H
#define SPK_SERVER_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint32_t h[8];
  uint64_t length; /* bytes hashed so far */
  uint8_t block[64];
  size_t used;     /* bytes waiting in block */
} sha256_t;

void sha256_init(sha256_t *s);
void sha256_update(sha256_t *s, const void *data, size_t len);
/* Writes the 32-byte digest; s must be initialised again before reuse. */
void sha256_final(sha256_t *s, uint8_t digest[32]);

/* Hashes a whole file into 64 lowercase hex digits and a NUL.
 * Returns 0 or a negative errno code with err naming the file. */
int sha256_file(const char *path, char hex[65], char *err, size_t errlen);

#endif
