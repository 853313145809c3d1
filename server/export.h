/* SPDX-License-Identifier: MIT */
/* A job's training dynamics as text, per epoch and sample (JSON Lines) or
 * per finished stage and sample (CSV), for analysis outside spkd: the
 * `spkd export` subcommand writes it to standard output, the HTTP API
 * streams it to a client, both through one export stream. */
#ifndef SPK_SERVER_EXPORT_H
#define SPK_SERVER_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "../storage/db.h"

/* Runs the subcommand with its own arguments (argv[0] is "export").
 * Returns the process exit code: 0 when everything was written (or the
 * reader closed the pipe early: EPIPE ends the export quietly with 0), 1
 * for a runtime error (no such job, a database that cannot be read, a
 * failed write), 2 for bad options. Messages are one line on stderr. */
int export_main(int argc, char **argv);

typedef enum { EXPORT_JSONL, EXPORT_CSV } export_format_t;

/* An export being produced a piece at a time. */
typedef struct export_stream export_stream_t;

/* Starts exporting job from db in format: reads the job's training
 * samples and the list of what follows (its records rows, or its
 * finished stages), nothing more yet. db stays the caller's, must stay
 * open until export_stream_free and serve no other thread meanwhile.
 * For one consistent view of a running job, wrap the whole export in
 * db_snapshot_begin / db_snapshot_end. *out is freed with
 * export_stream_free. -ENOENT when there is no such job, -EIO for
 * samples that do not fit their arrays, -ENOMEM, or storage's error. */
int export_stream_new(db_t *db, int64_t job, export_format_t format,
                      export_stream_t **out, char *err, size_t errlen);

/* Writes the next bytes of the export into buf, at most max (lines may
 * be cut between calls), reading one records row of the database at a
 * time. Returns how many it wrote (fewer than max only at the end), 0
 * once everything was written, or a negative errno code with err set
 * when storage fails: -EIO for a row whose length does not fit, or
 * storage's error. Everything before a failure has been returned by
 * earlier calls; the failure is returned by the first call that has
 * nothing else to give. */
long export_stream_read(export_stream_t *s, char *buf, size_t max, char *err,
                        size_t errlen);

/* Frees a stream; accepts NULL. The database is left as it is. */
void export_stream_free(export_stream_t *s);

#endif
