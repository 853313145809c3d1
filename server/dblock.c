/* SPDX-License-Identifier: MIT */
/* The lock file beside a database, with flock(2): shared while jobs run,
 * exclusive only for the moment a process checks it is alone. */
#include "dblock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int dblock_take(const char *db_path, int *alone, char *err, size_t errlen) {
  char path[4096];
  int fd;

  if (snprintf(path, sizeof path, "%s.lock", db_path) >= (int)sizeof path) {
    snprintf(err, errlen, "database path is too long");
    return -1;
  }
  fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  *alone = flock(fd, LOCK_EX | LOCK_NB) == 0;
  if (!*alone && flock(fd, LOCK_SH) != 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

void dblock_share(int fd) {
  flock(fd, LOCK_SH);
}
