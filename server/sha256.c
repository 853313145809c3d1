/* SPDX-License-Identifier: MIT */
/* SHA-256 as FIPS 180-4 defines it: 512-bit blocks, big-endian words, a
 * 64-step compression per block. Also hashes whole files for the records
 * of which dataset files a job read; naming those files is the caller's. */
#include "sha256.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* FIPS 180-4 section 4.2.2: the first 32 bits of the fractional parts of
 * the cube roots of the first 64 primes. */
static const uint32_t round_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* Section 5.3.3: the first 32 bits of the fractional parts of the square
 * roots of the first 8 primes. */
static const uint32_t initial_h[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

static uint32_t rotr(uint32_t x, int n) {
  return (x >> n) | (x << (32 - n));
}

/* The six logical functions of section 4.1.2. */
static uint32_t ch(uint32_t x, uint32_t y, uint32_t z) {
  return (x & y) ^ (~x & z);
}

static uint32_t maj(uint32_t x, uint32_t y, uint32_t z) {
  return (x & y) ^ (x & z) ^ (y & z);
}

static uint32_t big_sigma0(uint32_t x) {
  return rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22);
}

static uint32_t big_sigma1(uint32_t x) {
  return rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25);
}

static uint32_t small_sigma0(uint32_t x) {
  return rotr(x, 7) ^ rotr(x, 18) ^ (x >> 3);
}

static uint32_t small_sigma1(uint32_t x) {
  return rotr(x, 17) ^ rotr(x, 19) ^ (x >> 10);
}

static uint32_t load_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

static void store_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* Section 6.2.2: expands one 64-byte block into the message schedule and
 * folds it into the hash state. */
static void compress(uint32_t h[8], const uint8_t block[64]) {
  uint32_t w[64], v[8];

  for (int t = 0; t < 16; t++)
    w[t] = load_be32(block + 4 * t);
  for (int t = 16; t < 64; t++)
    w[t] = small_sigma1(w[t - 2]) + w[t - 7] + small_sigma0(w[t - 15]) +
           w[t - 16];

  memcpy(v, h, sizeof v);
  for (int t = 0; t < 64; t++) {
    uint32_t t1 = v[7] + big_sigma1(v[4]) + ch(v[4], v[5], v[6]) +
                  round_k[t] + w[t];
    uint32_t t2 = big_sigma0(v[0]) + maj(v[0], v[1], v[2]);

    /* h = g, g = f, ..., b = a; then e = d + T1 and a = T1 + T2. */
    memmove(v + 1, v, 7 * sizeof v[0]);
    v[4] += t1;
    v[0] = t1 + t2;
  }
  for (int i = 0; i < 8; i++)
    h[i] += v[i];
}

/* Starts a new message. */
void sha256_init(sha256_t *s) {
  memcpy(s->h, initial_h, sizeof s->h);
  s->length = 0;
  s->used = 0;
}

/* Adds len bytes of the message; any split of a message into calls gives
 * the same digest. */
void sha256_update(sha256_t *s, const void *data, size_t len) {
  const uint8_t *p = data;

  s->length += len;
  if (s->used > 0) {
    size_t take = 64 - s->used;
    if (take > len)
      take = len;
    memcpy(s->block + s->used, p, take);
    s->used += take;
    p += take;
    len -= take;
    if (s->used < 64)
      return;
    compress(s->h, s->block);
    s->used = 0;
  }
  for (; len >= 64; p += 64, len -= 64)
    compress(s->h, p);
  memcpy(s->block, p, len);
  s->used = len;
}

/* Pads the message as section 5.1.1 says (a 1 bit, zeros, the length in
 * bits as a 64-bit big-endian number) and writes the 32-byte digest. */
void sha256_final(sha256_t *s, uint8_t digest[32]) {
  uint64_t bits = s->length * 8;

  s->block[s->used++] = 0x80;
  if (s->used > 56) {
    memset(s->block + s->used, 0, 64 - s->used);
    compress(s->h, s->block);
    s->used = 0;
  }
  memset(s->block + s->used, 0, 56 - s->used);
  store_be32(s->block + 56, (uint32_t)(bits >> 32));
  store_be32(s->block + 60, (uint32_t)bits);
  compress(s->h, s->block);

  for (int i = 0; i < 8; i++)
    store_be32(digest + 4 * i, s->h[i]);
  memset(s, 0, sizeof *s);
}

static void hex_encode(const uint8_t digest[32], char hex[65]) {
  static const char digits[] = "0123456789abcdef";

  for (int i = 0; i < 32; i++) {
    hex[2 * i] = digits[digest[i] >> 4];
    hex[2 * i + 1] = digits[digest[i] & 15];
  }
  hex[64] = '\0';
}

/* Hashes the file at path in 16 KiB reads. Errors: the errno of the failed
 * open or read (e.g. -ENOENT), with err naming the file. */
int sha256_file(const char *path, char hex[65], char *err, size_t errlen) {
  uint8_t buf[16384];
  uint8_t digest[32];
  sha256_t s;
  size_t got;
  FILE *f;
  int r = 0;

  f = fopen(path, "rb");
  if (!f) {
    r = -errno;
    snprintf(err, errlen, "%s: %s", path, strerror(-r));
    return r;
  }

  sha256_init(&s);
  errno = 0;
  while ((got = fread(buf, 1, sizeof buf, f)) > 0)
    sha256_update(&s, buf, got);
  if (ferror(f)) {
    r = errno ? -errno : -EIO;
    snprintf(err, errlen, "%s: read failed: %s", path, strerror(-r));
    goto out;
  }
  sha256_final(&s, digest);
  hex_encode(digest, hex);

out:
  fclose(f);
  return r;
}
