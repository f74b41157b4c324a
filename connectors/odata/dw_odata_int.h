/*
 * Inside the odata connector: the session struct and what its files share.
 * dw_odata.c holds settings, sessions, the shared $metadata cache and the
 * catalog checks; dw_odata_http.c the HTTP exchange (libcurl), the bearer
 * token and the mapping of HTTP failures onto dw_error; dw_odata_batch.c
 * builds the $batch request and reads its answer.
 */
#ifndef DW_ODATA_INT_H
#define DW_ODATA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <curl/curl.h>

#include "bridge/common/dw_buf.h"
#include "connectors/dw_connector.h"
#include "connectors/odata/dw_odata_metadata.h"

/* Caps on what the service may send back. */
#define ODATA_MAX_RESPONSE (64u * 1024 * 1024)
#define ODATA_MAX_METADATA (256u * 1024 * 1024)
/* A token file is a secret of at most this many bytes. */
#define ODATA_MAX_TOKEN 65536

/* A parsed $metadata shared by the sessions of one service root. */
struct odata_model {
    struct dw_odata_metadata *meta;
    int64_t fetched_ms;      /* monotonic */
    long refs;               /* under the cache's lock */
};

/* One operation of the batch in progress, already rendered. */
struct odata_op {
    size_t off, len;         /* its MIME part in s->parts */
    const char *table;       /* borrowed until the batch ends, for messages */
    bool del;
    bool dropped;            /* a DELETE of an entity that was not there: left out on resend */
};

/* What the last HTTP exchange brought back. */
struct odata_response {
    long status;
    char content_type[256];
    char retry_after[64];
    char location[512];
    char www_authenticate[256];
    struct dw_buf body;
    size_t max_body;
    bool too_large;
};

struct odata_session {
    struct dw_session base;
    CURL *curl;
    long timeout_ms;         /* the timeout curl has now (0: none), for messages */
    char *root;              /* the service root, ending in '/' */
    char errbuf[CURL_ERROR_SIZE];
    /* bearer token: fixed, or from a file read again when it changes */
    char *token;
    const char *token_file;  /* borrowed from the config */
    struct timespec token_mtime;
    dev_t token_dev;
    ino_t token_ino;
    off_t token_size;
    bool token_read;
    /* the service's data model (shared) */
    struct odata_model *model;
    /* the batch in progress */
    bool in_batch;
    char batch_id[256];
    struct dw_buf parts;
    struct odata_op *ops;
    size_t nops, opcap;
    unsigned long seq;       /* makes boundaries unique per request */
    /* scratch */
    struct dw_buf req;
    struct odata_response resp;
    struct dw_arena arena;
};

/* dw_odata.c */

/*
 * The session's model of the service, fetching $metadata (once per service
 * root and process) when there is none.  With refresh, a model older than a
 * minute is fetched again: the caller looked for a name the model lacks.
 */
dw_errcode dw_odata_model(struct odata_session *s, bool refresh, struct dw_error *err);

/* dw_odata_http.c */

/* Set up s->curl and the options every request shares. */
dw_errcode dw_odata_http_init(struct odata_session *s, struct dw_error *err);

/*
 * One HTTP request: GET when body is NULL, else POST of body[0..len) as
 * content_type.  accept and batch_id (X-Dualwrite-Batch) may be NULL.  The
 * answer is in s->resp (any status); a transport failure, a timeout or an
 * answer over max_response is an error (DW_ERR_CONNECT, DW_ERR_TIMEOUT,
 * DW_ERR_PROTOCOL) that marks the session broken.  what names the exchange
 * for messages ("sending the batch").
 */
dw_errcode dw_odata_http(struct odata_session *s, const char *url, const char *content_type,
                         const char *body, size_t len, const char *accept, const char *batch_id,
                         size_t max_response, const char *what, struct dw_error *err);

/*
 * Fill err from a failed HTTP answer (status not 2xx): its status, its
 * Retry-After, its OData JSON error body (code, message, target, details).
 * 401/403 and other 4xx: DW_ERR_TARGET; 429, and 503 with Retry-After:
 * DW_ERR_THROTTLED with s->base.retry_after_ms; 408 and 5xx: DW_ERR_CONNECT.
 * When the body carries "@Core.ContentID", *content_id gets it (else "").
 */
dw_errcode dw_odata_status_error(struct odata_session *s, long status, const char *retry_after,
                                 const char *body, size_t len, char *content_id, size_t idsize,
                                 struct dw_error *err);

/* Retry-After (delta-seconds or an HTTP-date) in ms from now; 0 when absent or invalid. */
long dw_odata_retry_after_ms(const char *value);

/* dw_odata_batch.c */
dw_errcode dw_odata_begin(struct dw_session *s, const char *batch_id, struct dw_error *err);
dw_errcode dw_odata_apply(struct dw_session *s, const struct dw_target_op *ops, size_t nops,
                          struct dw_error *err);
dw_errcode dw_odata_commit(struct dw_session *s, struct dw_error *err);
void dw_odata_rollback(struct dw_session *s);
void dw_odata_batch_cleanup(struct odata_session *s);

/*
 * The key predicate of op on set: "(v)" for the entity's single key,
 * "(k1=v1,k2=v2)" for a composite or an alternate key.  DW_ERR_TARGET when the
 * op's key is neither, or a value cannot be written.
 */
dw_errcode dw_odata_key_predicate(struct dw_buf *b, const struct dw_odata_set *set,
                                  const struct dw_target_op *op, struct dw_error *err);

/* Which key of set the names match (in any order): 0 none, 1 the key, 2 an alternate key. */
int dw_odata_key_match(const struct dw_odata_set *set, const char *const *names, size_t n,
                       const struct dw_odata_altkey **alt);

#endif
