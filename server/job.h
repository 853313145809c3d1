/* SPDX-License-Identifier: MIT */
/* Running one stored job: read its spec, load its dataset, record its
 * provenance, run the pipeline and store every epoch through the job's own
 * database connection, then record how it ended. The caller decides when;
 * the daemon's runner calls this from a worker thread. */
#ifndef SPK_SERVER_JOB_H
#define SPK_SERVER_JOB_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../engine/dataset.h"
#include "../engine/pipeline.h"
#include "../storage/db.h"
#include "log.h"
#include "metrics.h"
#include "spec.h"

/* Why a job is asked to stop: a user cancelled it, or the process that
 * runs it is stopping. */
enum { JOB_STOP_NONE, JOB_STOP_CANCEL, JOB_STOP_SHUTDOWN };

#define JOB_SHUTDOWN_ERROR "daemon stopped while the job was running"

typedef struct {
  const char *db_path; /* the job reads through its own connection */
  db_writer_t *writer; /* and writes through the process's writer */
  const char *data_root;
  const log_t *log;
  int64_t id;
  const atomic_int *stop; /* JOB_STOP_*, read between batches */
  int echo; /* 1: also print each epoch as a key=value line on stdout */
  double *estimated_noise_rate; /* receives the spl stage's estimate of
                                 * the noise rate; may be NULL */
  /* Threads for a spec that names none, and the most any job gets; 0:
   * the spec's own (default 2). */
  int threads_max;
  metrics_t *metrics; /* counts trained epochs; may be NULL */
} job_run_t;

/* Runs job->id, which must already be in state running, to its end and
 * records its final state: succeeded, cancelled (stop = JOB_STOP_CANCEL),
 * or failed with an error naming the cause. Every epoch is stored with
 * its stage's resume state, and a job run again continues after its last
 * stored epoch. Stopped with JOB_STOP_SHUTDOWN the job stays running,
 * to be resumed, and state_out says "interrupted". Writes the state into
 * state_out (16 bytes). A job that fails before any stage trains because
 * a teacher's checkpoint cannot be used shows that teacher's stage.
 * Returns 0 when the final state was recorded, err then holding the
 * job's error when the state is "failed", or a negative errno code when
 * even that failed (err says why). */
int job_run(const job_run_t *job, char state_out[16], char *err,
            size_t errlen);

/* Finds the file of each teacher that spec loads from a checkpoint
 * inside data_root and writes its full path, symbolic links resolved,
 * into that teacher's path. Returns 0, or -ENOENT for a missing file,
 * -EPERM for a file leading outside the data root, -EINVAL for one that
 * is not a regular file, another negative errno code for a data root
 * that cannot be read; err then names the field (teachers[k].checkpoint)
 * and its message the file. */
int job_checkpoints_find(const char *data_root, pipeline_spec_t *spec,
                         spec_error_t *err);

/* Checks each teacher's checkpoint that job_checkpoints_find found: the
 * file is a whole checkpoint with finite weights (checkpoint_verify) and,
 * with shape given, its model takes the dataset's samples (channels,
 * height, width) and classes, fields of shape that are 0 being unknown
 * and not checked; the first teacher's model also has the layer the
 * student's hint names. Returns 0, or a negative errno code with *teacher
 * set to the teacher at fault and err naming the field
 * (teachers[k].checkpoint, or student.representation.teacher_layer) and
 * the problem. */
int job_checkpoints_check(const pipeline_spec_t *spec,
                          const dataset_shape_t *shape, int *teacher,
                          spec_error_t *err);

/* Writes the provenance of a run as a JSON object into a new string the
 * caller frees: spkd version, BLAS configuration and kernel, threads,
 * host, dataset name and the SHA-256 of each dataset file. */
int job_provenance(const char *data_root, const char *dataset, int threads,
                   char **out, char *err, size_t errlen);

#endif
