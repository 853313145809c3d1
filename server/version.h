/* SPDX-License-Identifier: MIT */
/* The version spkd reports in provenance and /healthz. */
#ifndef SPK_SERVER_VERSION_H
#define SPK_SERVER_VERSION_H

#define SPK_VERSION "0.1.0"

#endif
