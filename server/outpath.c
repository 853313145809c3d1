/* SPDX-License-Identifier: MIT */
/* Output-path checks by trying: a probe file beside the target. */
#include "outpath.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int outpath_check(const char *path, char *err, size_t errlen) {
  char probe[4096];
  struct stat st;
  int fd;

  if (!path[0]) {
    snprintf(err, errlen, "an empty path names no file");
    return -1;
  }
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    snprintf(err, errlen, "%s is a directory", path);
    return -1;
  }
  if (snprintf(probe, sizeof probe, "%s.probe-%ld", path, (long)getpid()) >=
      (int)sizeof probe) {
    snprintf(err, errlen, "%s: path is too long", path);
    return -1;
  }
  fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) {
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    return -1;
  }
  close(fd);
  unlink(probe);
  return 0;
}
