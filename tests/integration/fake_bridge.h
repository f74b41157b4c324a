/*
 * A test double of the bridge (our own component) for the hook's integration
 * tests: an HTTP/1.1 server on a thread, listening on a Unix socket or on
 * 127.0.0.1, that decodes every batch with dw_wire_decode_batch, records it,
 * and answers the way the test programmed it: a verdict, raw bytes (malformed,
 * truncated, oversized replies), silence, or a closed connection.  Outcomes
 * (POST /v1/batches/{id}/outcome) are recorded and answered with 204.
 *
 * Every function is safe to call while the server thread runs.
 */
#ifndef FAKE_BRIDGE_H
#define FAKE_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge/common/dw_wire.h"

enum fake_mode {
    FAKE_VERDICT = 0, /* answer with a verdict built from the fields below */
    FAKE_RAW,         /* answer with raw bytes; "{id}" is replaced by the batch id and
                         "{clen}" by the length of what follows the blank line */
    FAKE_SILENT,      /* read the batch, never answer */
    FAKE_CLOSE        /* read the batch, close the connection without a word */
};

struct fake_behaviour {
    enum fake_mode mode;
    /* FAKE_VERDICT */
    int http_status;              /* 0: 200/409/422/429/503 from the status */
    dw_verdict_status status;
    const char *id;               /* NULL: the batch's own id */
    const char *stage, *map, *message, *detail, *hint, *target_sqlstate;
    long change;                  /* -1: absent */
    int64_t retry_after_s;        /* -1: absent */
    /* FAKE_RAW */
    const char *raw;
    bool close_after;             /* close the connection after the reply */
    int delay_ms;                 /* wait before answering */
    bool keep_bodies;             /* record the batch (default true via fake_behaviour_ok) */
};

/* A committed verdict, records kept: the usual behaviour. */
struct fake_behaviour fake_behaviour_ok(void);

struct fake_bridge;

/* Listen on a Unix socket (made connectable by any user) or on 127.0.0.1:*port (0: pick). */
struct fake_bridge *fake_bridge_start_unix(const char *path);
struct fake_bridge *fake_bridge_start_tcp(int *port);
void fake_bridge_stop(struct fake_bridge *fb);

/* Strings are copied. */
void fake_bridge_set(struct fake_bridge *fb, const struct fake_behaviour *b);
/* Forget recorded batches and outcomes (counters too). */
void fake_bridge_reset(struct fake_bridge *fb);

size_t fake_bridge_batch_count(struct fake_bridge *fb);
/* Decoded batch i (valid until reset/stop), or NULL. */
const struct dw_batch *fake_bridge_batch(struct fake_bridge *fb, size_t i);
/* The Authorization header that came with batch i ("" when none). */
const char *fake_bridge_batch_auth(struct fake_bridge *fb, size_t i);
/* Batches that did not decode (answered 400). */
size_t fake_bridge_decode_errors(struct fake_bridge *fb);
/* Connections accepted since start. */
size_t fake_bridge_accepts(struct fake_bridge *fb);
/* Connections currently open. */
size_t fake_bridge_open_connections(struct fake_bridge *fb);

/* Wait until at least n batches arrived; false on timeout. */
bool fake_bridge_wait_batches(struct fake_bridge *fb, size_t n, int timeout_ms);
/*
 * Wait for the outcome of batch id; copies "committed"/"aborted" into out.
 * False when none came within timeout_ms.
 */
bool fake_bridge_wait_outcome(struct fake_bridge *fb, const char *id, int timeout_ms, char *out,
                              size_t outsize);
size_t fake_bridge_outcome_count(struct fake_bridge *fb);

#endif
