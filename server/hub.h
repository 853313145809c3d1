/* SPDX-License-Identifier: MIT */
/* Wakes the readers of live events: each stored batch of writes
 * publishes, and every event stream waiting for news looks again. The
 * streams themselves (Server-Sent Events) live in events.c. */
#ifndef SPK_SERVER_HUB_H
#define SPK_SERVER_HUB_H

typedef struct hub hub_t;

/* Creates a hub with no waiters. Returns 0 or -ENOMEM. */
int hub_new(hub_t **out);

/* Frees a hub that no stream waits on any more; accepts NULL. */
void hub_free(hub_t *h);

/* Thread-safe: something new was committed; wakes every waiter. */
void hub_publish(hub_t *h);

/* Thread-safe: the server is stopping; wakes every waiter for the last
 * time and lets none wait again, so their streams end. */
void hub_close(hub_t *h);

#endif
