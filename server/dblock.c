/* SPDX-License-Identifier: MIT */
/* The lock file beside a database, with flock(2): shared while jobs run,
 * exclusive only for the moment a process checks it is alone; and per job
 * a one-byte open-file-description lock (fcntl F_OFD_SETLK), which closing
 * another descriptor of the file does not drop. */
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

/* An open-file-description lock request on byte id. */
static struct flock job_byte(short type, long long id) {
  struct flock fl;

  memset(&fl, 0, sizeof fl);
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = (off_t)id;
  fl.l_len = 1;
  return fl;
}

int dblock_job_claim(int fd, long long id) {
  struct flock fl = job_byte(F_WRLCK, id);

  if (id < 0)
    return -EINVAL;
  if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
    return 0;
  return errno == EACCES || errno == EAGAIN ? -EAGAIN : -errno;
}

void dblock_job_release(int fd, long long id) {
  struct flock fl = job_byte(F_UNLCK, id);

  if (id >= 0)
    (void)fcntl(fd, F_OFD_SETLK, &fl);
}
