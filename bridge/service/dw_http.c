/*
 * HTTP server: sockets, routing, limits, authentication, responses.
 *
 * We create the listening sockets ourselves and hand them to libmicrohttpd:
 * that is how it serves a Unix socket, and it lets us refuse to steal the
 * socket of a running instance, replace a stale one, and set its mode before
 * anyone can connect (umask during bind, then chmod).
 *
 * A request is handled in three steps of libmicrohttpd's access callback:
 * headers (route, method, token, and an announced Content-Length against the
 * limit: too large is answered at once and the connection closed without
 * reading the body; a wrong route, method or token is answered after a small
 * body has been read and dropped, so a keep-alive client keeps its
 * connection), body chunks (appended to the connection's buffer up to the
 * limit, the excess discarded), and the end (dispatch).  Each connection
 * keeps its buffer and its batch arena across keep-alive requests.
 *
 * Every error body has the shape of a verdict, {"status": "rejected" or
 * "unavailable", "message": ...}, so that the hook can decode whatever the
 * bridge answers with the one verdict decoder.
 */
#include "bridge/service/dw_http.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>

#include "bridge/common/dw_buf.h"
#include "bridge/common/dw_json.h"
#include "bridge/common/dw_log.h"
#include "bridge/common/dw_wire.h"
#include "bridge/service/dw_metrics.h"
#include "bridge/service/dw_outcome.h"
#include "bridge/service/dw_settler.h"
#include "bridge/service/dw_pipeline.h"
#include "bridge/service/dw_state.h"
#include "bridge/service/dw_status.h"

#define SMALL_BODY_LIMIT 4096          /* outcome messages and GETs */
#define DISCARD_LIMIT (64u * 1024u)    /* body of a refused request we read and drop */
#define KEEP_BUFFER_BYTES (1u << 20)   /* a connection's body buffer beyond this is freed after use */
#define ARENA_CHUNK (64u * 1024u)
#define CONNECTION_LIMIT 1024
#define TCP_IDLE_TIMEOUT_S 600
#define THREAD_STACK_BYTES (1u << 20)
#define DEFAULT_TCP_HOST "127.0.0.1"

enum route {
    ROUTE_BATCH = 0,
    ROUTE_OUTCOME,
    ROUTE_HEALTH,
    ROUTE_STATUS,
    ROUTE_METRICS
};

struct listener {
    struct dw_http *http;
    bool tcp;                     /* requires the bearer token */
    int fd;                       /* ours to close until the daemon takes it */
    int quiesced_fd;              /* given back by MHD_quiesce_daemon: ours again */
    struct MHD_Daemon *daemon;
};

struct dw_http {
    struct listener unix_l;
    struct listener tcp_l;
    char *unix_path;              /* as configured, NULL when none */
    bool unix_bound;              /* we created the socket file: remove it at stop */
    char *tcp_spec;
    atomic_bool stopping;
};

/* Per connection, kept across keep-alive requests. */
struct conn_ctx {
    struct dw_arena arena;
    struct dw_buf body;
};

/* Per request. */
struct request {
    enum route route;
    size_t limit;
    bool too_large;
    size_t received;
    bool inflight;                /* counted in dw_metrics_inflight until completed */
    char id[200];                 /* outcome: the batch id from the path */
    int refuse_code;              /* answer with this once the body is read (404, 405, 401) */
    char refuse_msg[300];
    const char *refuse_hname;     /* static strings */
    const char *refuse_hval;
};

/* ---- responses ---- */

static enum MHD_Result send_body(struct MHD_Connection *c, int code, struct dw_buf *body, const char *ctype,
                                 bool close_conn, const char *hname, const char *hval)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    size_t len = body ? body->len : 0;
    char *data = NULL;

    if (body && dw_buf_failed(body)) {
        dw_buf_cleanup(body);
        len = 0;
        code = 503;
    }
    if (len)
        data = dw_buf_take(body);
    else if (body)
        dw_buf_cleanup(body);
    resp = MHD_create_response_from_buffer(len, data, data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    if (ctype && len)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (close_conn)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (hname)
        MHD_add_response_header(resp, hname, hval);
    ret = MHD_queue_response(c, (unsigned) code, resp);
    MHD_destroy_response(resp);
    dw_metrics_http(code);
    return ret;
}

/* {"status": "rejected"|"unavailable", "message": ...} */
static enum MHD_Result send_error(struct MHD_Connection *c, int code, const char *message, bool close_conn,
                                  const char *hname, const char *hval)
{
    struct dw_buf b;

    dw_buf_init(&b);
    dw_buf_puts(&b, code >= 500 ? "{\"status\":\"unavailable\",\"message\":" : "{\"status\":\"rejected\",\"message\":");
    dw_wire_put_string(&b, message, strlen(message));
    dw_buf_putc(&b, '}');
    return send_body(c, code, &b, "application/json", close_conn, hname, hval);
}

/* ---- routing ---- */

/* The route for url, or -1 (404).  *allowed is the one method it takes. */
static int match_route(const char *url, const char **allowed, char *id, size_t idsize)
{
    static const char prefix[] = "/v1/batches/";
    static const char suffix[] = "/outcome";
    size_t ulen = strlen(url);

    if (strcmp(url, "/v1/batches") == 0) {
        *allowed = MHD_HTTP_METHOD_POST;
        return ROUTE_BATCH;
    }
    if (strcmp(url, "/v1/health") == 0) {
        *allowed = MHD_HTTP_METHOD_GET;
        return ROUTE_HEALTH;
    }
    if (strcmp(url, "/v1/status") == 0) {
        *allowed = MHD_HTTP_METHOD_GET;
        return ROUTE_STATUS;
    }
    if (strcmp(url, "/metrics") == 0) {
        *allowed = MHD_HTTP_METHOD_GET;
        return ROUTE_METRICS;
    }
    if (ulen > sizeof(prefix) - 1 + sizeof(suffix) - 1 && strncmp(url, prefix, sizeof(prefix) - 1) == 0 &&
        strcmp(url + ulen - (sizeof(suffix) - 1), suffix) == 0) {
        const char *start = url + sizeof(prefix) - 1;
        size_t n = ulen - (sizeof(prefix) - 1) - (sizeof(suffix) - 1);

        if (n == 0 || n >= idsize || memchr(start, '/', n))
            return -1;
        memcpy(id, start, n);
        id[n] = '\0';
        *allowed = MHD_HTTP_METHOD_POST;
        return ROUTE_OUTCOME;
    }
    return -1;
}

/* ---- authentication ---- */

/* Compare without an early exit, so the time does not tell how much matched. */
static bool token_equal(const char *given, size_t glen, const char *expected)
{
    size_t elen = strlen(expected);
    volatile unsigned char diff = (unsigned char) (glen != elen);

    for (size_t i = 0; i < elen; i++)
        diff |= (unsigned char) ((i < glen ? (unsigned char) given[i] : 0) ^ (unsigned char) expected[i]);
    return diff == 0;
}

static bool authorized(struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    struct dw_state *st;
    bool ok = false;

    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    st = dw_state_acquire();
    if (st && st->config->token && st->config->token[0])
        ok = token_equal(h, strlen(h), st->config->token);
    dw_state_release(st);
    return ok;
}

/* ---- handlers ---- */

static size_t body_limit(void)
{
    struct dw_state *st = dw_state_acquire();
    size_t limit = DW_WIRE_MAX_BATCH_BYTES;

    if (st && st->config->max_body_bytes > 0 && (size_t) st->config->max_body_bytes < limit)
        limit = (size_t) st->config->max_body_bytes;
    dw_state_release(st);
    return limit;
}

static enum MHD_Result handle_batch(struct dw_http *http, struct MHD_Connection *c, struct conn_ctx *ctx,
                                    struct request *rq)
{
    struct dw_buf out;
    enum MHD_Result ret;
    int64_t retry_after_s = -1;
    char retry[24];
    int code;

    /* Count first, then look at the flag: the drain reads them in the other order. */
    dw_metrics_inflight_add(1);
    if (atomic_load(&http->stopping)) {
        dw_metrics_inflight_add(-1);
        dw_buf_init(&out);
        /* stage "shutdown": the hook tells this apart from a target that is down */
        code = dw_pipeline_refuse(503, "shutdown", "the bridge is shutting down; retry the transaction "
                                                   "when it is back", &out);
        return send_body(c, code, &out, "application/json", true, NULL, NULL);
    }
    /* in flight until the response is sent (completed_cb), so the drain does not cut it off */
    rq->inflight = true;
    dw_buf_init(&out);
    code = dw_pipeline_batch(ctx->body.data ? ctx->body.data : "", ctx->body.len, &ctx->arena, &out,
                             &retry_after_s);
    dw_arena_reset(&ctx->arena);
    snprintf(retry, sizeof(retry), "%lld", (long long) retry_after_s);
    ret = send_body(c, code, &out, "application/json", false,
                    retry_after_s >= 0 ? MHD_HTTP_HEADER_RETRY_AFTER : NULL, retry);
    return ret;
}

static enum MHD_Result handle_outcome(struct MHD_Connection *c, struct conn_ctx *ctx, const char *id)
{
    struct dw_json *root = NULL;
    const struct dw_json *v;
    struct dw_json_limits limits = {SMALL_BODY_LIMIT, 4};
    struct dw_error err;
    dw_decision d, previous = DW_DECISION_NONE;
    char msg[512], quoted[256];
    enum MHD_Result ret;

    dw_error_clear(&err);
    if (dw_json_parse(ctx->body.data ? ctx->body.data : "", ctx->body.len, &limits, &ctx->arena, &root,
                      &err) != DW_OK) {
        snprintf(msg, sizeof(msg), "malformed outcome: %s", err.message);
        dw_arena_reset(&ctx->arena);
        return send_error(c, 400, msg, false, NULL, NULL);
    }
    if (root->type != DW_JSON_OBJECT) {
        dw_arena_reset(&ctx->arena);
        return send_error(c, 400, "malformed outcome: expected an object {\"outcome\": ...}", false, NULL, NULL);
    }
    for (size_t i = 0; i < root->len; i++) {
        if (strcmp(root->u.members[i].name, "outcome") != 0) {
            char q[96];

            dw_json_quote(q, sizeof(q), root->u.members[i].name, root->u.members[i].name_len);
            snprintf(msg, sizeof(msg), "malformed outcome: unknown key %s (valid: outcome)", q);
            dw_arena_reset(&ctx->arena);
            return send_error(c, 400, msg, false, NULL, NULL);
        }
    }
    v = dw_json_find(root, "outcome");
    if (v && v->type == DW_JSON_STRING && strcmp(v->u.string, "committed") == 0) {
        d = DW_DECISION_COMMIT;
    } else if (v && v->type == DW_JSON_STRING && strcmp(v->u.string, "aborted") == 0) {
        d = DW_DECISION_ROLLBACK;
    } else {
        dw_arena_reset(&ctx->arena);
        return send_error(c, 400, "malformed outcome: /outcome: expected \"committed\" or \"aborted\"", false,
                          NULL, NULL);
    }
    dw_arena_reset(&ctx->arena);

    /* the path is client input: quoted, it is one line of valid UTF-8 */
    dw_json_quote(quoted, sizeof(quoted), id, strlen(id));
    switch (dw_outcome_decide(id, d, &previous)) {
    case DW_DECIDE_UNKNOWN:
        snprintf(msg, sizeof(msg), "batch %s is not in doubt here (unknown, or already settled)", quoted);
        dw_info("outcome %s for batch %s: not in doubt", d == DW_DECISION_COMMIT ? "committed" : "aborted",
                quoted);
        return send_error(c, 404, msg, false, NULL, NULL);
    case DW_DECIDE_CONFLICT:
        snprintf(msg, sizeof(msg), "batch %s was already decided: %s", quoted, dw_decision_name(previous));
        dw_logerr("outcome %s for batch %s contradicts the earlier decision (%s); keeping the earlier one",
                  d == DW_DECISION_COMMIT ? "committed" : "aborted", quoted, dw_decision_name(previous));
        return send_error(c, 409, msg, false, NULL, NULL);
    case DW_DECIDE_OK:
        break;
    }
    /*
     * Applied in the background: the answer does not wait for the target.
     * The session's next batch may reach the target first; see dw_settler.c
     * for why the order of rows is kept all the same.
     */
    (void) dw_settler_submit(id);
    ret = send_body(c, 204, NULL, NULL, false, NULL, NULL);
    return ret;
}

static enum MHD_Result handle_get(struct dw_http *http, struct MHD_Connection *c, enum route route)
{
    struct dw_buf out;
    int code = 200;

    dw_buf_init(&out);
    switch (route) {
    case ROUTE_HEALTH:
        code = dw_status_health(&out, atomic_load(&http->stopping));
        break;
    case ROUTE_STATUS:
        dw_status_render(&out, atomic_load(&http->stopping));
        break;
    case ROUTE_METRICS:
        dw_metrics_render(&out);
        return send_body(c, 200, &out, "text/plain; version=0.0.4; charset=utf-8", false, NULL, NULL);
    default:
        break;
    }
    return send_body(c, code, &out, "application/json", false, NULL, NULL);
}

/* ---- the access callback ---- */

/* The request's announced body length, or -1 when none (chunked, or no body). */
static long long content_length(struct MHD_Connection *c)
{
    const char *clen = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long n;
    char *end;

    if (!clen)
        return -1;
    errno = 0;
    n = strtoull(clen, &end, 10);
    if (errno != 0 || end == clen || n > (unsigned long long) LLONG_MAX)
        return LLONG_MAX;
    return (long long) n;
}

/*
 * Remember an error to answer once the body is read: answering before it
 * would make the server close the connection with unread input, which can
 * destroy the response on its way (and a keep-alive client would lose its
 * connection for a mere 404).  Bodies of refused requests are read and
 * dropped, up to DISCARD_LIMIT; beyond it the connection is closed.
 */
static void refuse_later(struct request *rq, int code, const char *msg, const char *hname, const char *hval)
{
    rq->refuse_code = code;
    snprintf(rq->refuse_msg, sizeof(rq->refuse_msg), "%s", msg);
    rq->refuse_hname = hname;
    rq->refuse_hval = hval;
}

static enum MHD_Result first_call(struct listener *l, struct MHD_Connection *c, const char *url,
                                  const char *method, void **req_cls)
{
    struct request *rq = calloc(1, sizeof(*rq));
    const char *allowed = NULL;
    long long clen = content_length(c);
    int route;
    char msg[300];

    if (!rq)
        return MHD_NO;
    *req_cls = rq;
    route = match_route(url, &allowed, rq->id, sizeof(rq->id));
    if (route < 0) {
        char q[128];

        dw_json_quote(q, sizeof(q), url, strlen(url));
        snprintf(msg, sizeof(msg), "no such resource: %s", q);
        refuse_later(rq, 404, msg, NULL, NULL);
    } else if (strcmp(method, allowed) != 0) {
        snprintf(msg, sizeof(msg), "method %.20s is not allowed here (allowed: %s)", method, allowed);
        refuse_later(rq, 405, msg, MHD_HTTP_HEADER_ALLOW, allowed);
    } else if (l->tcp && !authorized(c)) {
        refuse_later(rq, 401, "missing or wrong bearer token", MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                     "Bearer realm=\"dualwrite\"");
    }
    if (rq->refuse_code) {
        /* a refused request with a large body: answer now and close rather than read it */
        if (clen > (long long) DISCARD_LIMIT)
            return send_error(c, rq->refuse_code, rq->refuse_msg, true, rq->refuse_hname, rq->refuse_hval);
        return MHD_YES;
    }
    rq->route = (enum route) route;
    rq->limit = route == ROUTE_BATCH ? body_limit() : SMALL_BODY_LIMIT;
    if (clen >= 0 && (unsigned long long) clen > rq->limit) {
        /* announced too large: refuse without reading it, and close */
        snprintf(msg, sizeof(msg), "request body of %lld bytes exceeds the limit of %zu bytes", clen, rq->limit);
        if (route == ROUTE_BATCH) {
            struct dw_buf out;

            dw_buf_init(&out);
            dw_pipeline_refuse(413, "decode", msg, &out);
            return send_body(c, 413, &out, "application/json", true, NULL, NULL);
        }
        return send_error(c, 413, msg, true, NULL, NULL);
    }
    return MHD_YES;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **req_cls)
{
    struct listener *l = cls;
    struct request *rq = *req_cls;
    const union MHD_ConnectionInfo *ci;
    struct conn_ctx *ctx;

    (void) version;
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    ctx = ci ? ci->socket_context : NULL;
    if (!ctx)
        return MHD_NO;
    if (!rq) {
        dw_buf_reset(&ctx->body);
        return first_call(l, c, url, method, req_cls);
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;

        rq->received += n;
        *upload_data_size = 0;
        if (rq->refuse_code)
            return rq->received > DISCARD_LIMIT ? MHD_NO : MHD_YES;
        if (!rq->too_large) {
            if (ctx->body.len + n > rq->limit) {
                rq->too_large = true;
                dw_buf_cleanup(&ctx->body);
            } else {
                dw_buf_append(&ctx->body, upload_data, n);
            }
        }
        return MHD_YES;
    }

    /* The whole request is here. */
    if (rq->refuse_code)
        return send_error(c, rq->refuse_code, rq->refuse_msg, false, rq->refuse_hname, rq->refuse_hval);
    if (rq->too_large || dw_buf_failed(&ctx->body)) {
        char msg[200];

        snprintf(msg, sizeof(msg), "request body of %zu bytes exceeds the limit of %zu bytes", rq->received,
                 rq->limit);
        if (dw_buf_failed(&ctx->body) && !rq->too_large)
            return send_error(c, 503, "out of memory while reading the request", true, NULL, NULL);
        if (rq->route == ROUTE_BATCH) {
            struct dw_buf out;

            dw_buf_init(&out);
            dw_pipeline_refuse(413, "decode", msg, &out);
            return send_body(c, 413, &out, "application/json", false, NULL, NULL);
        }
        return send_error(c, 413, msg, false, NULL, NULL);
    }
    switch (rq->route) {
    case ROUTE_BATCH:
        return handle_batch(l->http, c, ctx, rq);
    case ROUTE_OUTCOME:
        return handle_outcome(c, ctx, rq->id);
    default:
        return handle_get(l->http, c, rq->route);
    }
}

static void completed_cb(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode toe)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn_ctx *ctx = ci ? ci->socket_context : NULL;

    struct request *rq = *req_cls;

    (void) cls;
    (void) toe;
    if (rq && rq->inflight)
        dw_metrics_inflight_add(-1);
    free(rq);
    *req_cls = NULL;
    if (ctx) {
        if (ctx->body.cap > KEEP_BUFFER_BYTES)
            dw_buf_cleanup(&ctx->body);
        else
            dw_buf_reset(&ctx->body);
    }
}

static void connection_cb(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct conn_ctx *ctx;

    (void) cls;
    (void) c;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        ctx = calloc(1, sizeof(*ctx));
        if (ctx) {
            dw_arena_init(&ctx->arena, ARENA_CHUNK);
            dw_buf_init(&ctx->body);
        }
        *socket_context = ctx;
        return;
    }
    ctx = *socket_context;
    if (ctx) {
        dw_arena_cleanup(&ctx->arena);
        dw_buf_cleanup(&ctx->body);
        free(ctx);
    }
    *socket_context = NULL;
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    size_t n;

    (void) cls;
    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    dw_warn("http: %s", line);
}

/* ---- sockets ---- */

static dw_errcode unix_socket(const char *path, long gid, int *out, struct dw_error *err)
{
    struct sockaddr_un addr;
    struct stat stbuf;
    mode_t old;
    int fd;

    *out = -1;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr.sun_path))
        return dw_error_set(err, DW_ERR_CONFIG, "Unix socket path \"%s\" is longer than %zu bytes", path,
                            sizeof(addr.sun_path) - 1);
    memcpy(addr.sun_path, path, strlen(path));

    if (lstat(path, &stbuf) == 0) {
        int probe;

        if (!S_ISSOCK(stbuf.st_mode))
            return dw_error_set(err, DW_ERR_CONFIG, "cannot listen on \"%s\": a file that is not a socket is "
                                                    "in the way", path);
        /* A socket file: live if someone accepts on it, stale otherwise. */
        probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *) &addr, sizeof(addr)) == 0) {
            close(probe);
            return dw_error_set(err, DW_ERR_CONFIG, "cannot listen on \"%s\": another process (a running "
                                                    "dualwrited?) is listening there", path);
        }
        if (probe >= 0)
            close(probe);
        if (unlink(path) != 0 && errno != ENOENT)
            return dw_error_set(err, DW_ERR_CONFIG, "could not remove the stale socket \"%s\": %s", path,
                                strerror(errno));
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return dw_error_set(err, DW_ERR_INTERNAL, "could not create a Unix socket: %s", strerror(errno));
    /* Never let the socket exist with a wider mode than 0660, not even between bind and chmod. */
    old = umask(0117);
    if (bind(fd, (struct sockaddr *) &addr, sizeof(addr)) != 0) {
        int e = errno;

        umask(old);
        close(fd);
        return dw_error_set(err, DW_ERR_CONFIG, "could not bind the Unix socket \"%s\": %s", path, strerror(e));
    }
    umask(old);
    if ((gid >= 0 && chown(path, (uid_t) -1, (gid_t) gid) != 0) || chmod(path, 0660) != 0 ||
        listen(fd, SOMAXCONN) != 0) {
        int e = errno;

        close(fd);
        unlink(path);
        return dw_error_set(err, DW_ERR_CONFIG, "could not listen on the Unix socket \"%s\": %s", path,
                            strerror(e));
    }
    *out = fd;
    return DW_OK;
}

/* "host:port", "[v6]:port" or ":port" / "port" (loopback). */
static dw_errcode tcp_socket(const char *spec, int *out, struct dw_error *err)
{
    struct addrinfo hints, *res = NULL, *ai;
    char host[256], port[16];
    const char *colon;
    int fd = -1, e = 0, one = 1, rc;

    *out = -1;
    if (spec[0] == '[') {
        const char *close_b = strchr(spec, ']');

        if (!close_b || close_b[1] != ':')
            return dw_error_set(err, DW_ERR_CONFIG, "listen address \"%s\": expected \"[address]:port\"", spec);
        snprintf(host, sizeof(host), "%.*s", (int) (close_b - spec - 1), spec + 1);
        colon = close_b + 1;
    } else {
        colon = strrchr(spec, ':');
        if (!colon) {
            snprintf(host, sizeof(host), "%s", DEFAULT_TCP_HOST);
            colon = spec - 1;
        } else {
            snprintf(host, sizeof(host), "%.*s", (int) (colon - spec), spec);
        }
    }
    snprintf(port, sizeof(port), "%s", colon + 1);
    if (!host[0])
        snprintf(host, sizeof(host), "%s", DEFAULT_TCP_HOST);
    if (!port[0] || strspn(port, "0123456789") != strlen(port))
        return dw_error_set(err, DW_ERR_CONFIG, "listen address \"%s\": the port must be a number", spec);

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        return dw_error_set(err, DW_ERR_CONFIG, "listen address \"%s\": %s", spec, gai_strerror(rc));
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
            break;
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return dw_error_set(err, DW_ERR_CONFIG, "could not listen on \"%s\": %s", spec, strerror(e));
    *out = fd;
    return DW_OK;
}

static dw_errcode start_daemon(struct listener *l, struct dw_error *err)
{
    unsigned timeout = l->tcp ? TCP_IDLE_TIMEOUT_S : 0;

    l->daemon = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                     MHD_USE_AUTO | MHD_USE_ITC | MHD_USE_ERROR_LOG,
                                 0, NULL, NULL, access_cb, l,
                                 MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, (void *) NULL,
                                 MHD_OPTION_LISTEN_SOCKET, (MHD_socket) l->fd,
                                 MHD_OPTION_CONNECTION_TIMEOUT, timeout,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned) CONNECTION_LIMIT,
                                 MHD_OPTION_THREAD_STACK_SIZE, (size_t) THREAD_STACK_BYTES,
                                 MHD_OPTION_NOTIFY_COMPLETED, completed_cb, (void *) NULL,
                                 MHD_OPTION_NOTIFY_CONNECTION, connection_cb, (void *) NULL,
                                 MHD_OPTION_END);
    if (!l->daemon)
        return dw_error_set(err, DW_ERR_INTERNAL, "could not start the HTTP server on the %s socket",
                            l->tcp ? "TCP" : "Unix");
    l->fd = -1;   /* MHD_stop_daemon closes it now */
    return DW_OK;
}

dw_errcode dw_http_start(const struct dw_config *cfg, struct dw_http **out, struct dw_error *err)
{
    struct dw_http *h = calloc(1, sizeof(*h));
    dw_errcode rc;

    *out = NULL;
    if (!h)
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    h->unix_l.http = h;
    h->unix_l.fd = -1;
    h->unix_l.quiesced_fd = -1;
    h->tcp_l.http = h;
    h->tcp_l.fd = -1;
    h->tcp_l.quiesced_fd = -1;
    h->tcp_l.tcp = true;
    atomic_init(&h->stopping, false);
    if (!cfg->listen_unix && !cfg->listen_tcp) {
        free(h);
        return dw_error_set(err, DW_ERR_CONFIG, "nothing to listen on: set listen.unix or listen.tcp");
    }
    if (cfg->listen_tcp && (!cfg->token || !cfg->token[0])) {
        free(h);
        return dw_error_set(err, DW_ERR_CONFIG, "listen.tcp needs a bearer token (listen.token_file)");
    }
    if (cfg->listen_unix) {
        h->unix_path = strdup(cfg->listen_unix);
        rc = unix_socket(cfg->listen_unix, cfg->listen_gid, &h->unix_l.fd, err);
        if (rc == DW_OK) {
            h->unix_bound = true;
            rc = start_daemon(&h->unix_l, err);
        }
        if (rc != DW_OK) {
            dw_http_stop(h);
            return rc;
        }
        dw_info("listening on Unix socket \"%s\" (mode 0660%s%s)", cfg->listen_unix,
                cfg->listen_group ? ", group " : "", cfg->listen_group ? cfg->listen_group : "");
    }
    if (cfg->listen_tcp) {
        h->tcp_spec = strdup(cfg->listen_tcp);
        rc = tcp_socket(cfg->listen_tcp, &h->tcp_l.fd, err);
        if (rc == DW_OK)
            rc = start_daemon(&h->tcp_l, err);
        if (rc != DW_OK) {
            dw_http_stop(h);
            return rc;
        }
        dw_info("listening on TCP \"%s\" (bearer token required)", cfg->listen_tcp);
    }
    *out = h;
    return DW_OK;
}

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

bool dw_http_listen_changed(const struct dw_http *http, const struct dw_config *cfg)
{
    return !same(http->unix_path, cfg->listen_unix) || !same(http->tcp_spec, cfg->listen_tcp);
}

void dw_http_quiesce(struct dw_http *http)
{
    if (!http)
        return;
    atomic_store(&http->stopping, true);
    /*
     * Remove the socket file now: a hook that tries to connect during the
     * drain fails at once ("could not reach the bridge") instead of waiting
     * in the backlog, and a new instance may already bind the path.
     */
    if (http->unix_bound && unlink(http->unix_path) != 0 && errno != ENOENT)
        dw_warn("could not remove the socket \"%s\": %s", http->unix_path, strerror(errno));
    http->unix_bound = false;
    /* The returned sockets are ours again, to close after MHD_stop_daemon. */
    if (http->unix_l.daemon && http->unix_l.quiesced_fd < 0)
        http->unix_l.quiesced_fd = (int) MHD_quiesce_daemon(http->unix_l.daemon);
    if (http->tcp_l.daemon && http->tcp_l.quiesced_fd < 0)
        http->tcp_l.quiesced_fd = (int) MHD_quiesce_daemon(http->tcp_l.daemon);
}

void dw_http_stop(struct dw_http *http)
{
    struct listener *ls[2];

    if (!http)
        return;
    ls[0] = &http->unix_l;
    ls[1] = &http->tcp_l;
    atomic_store(&http->stopping, true);
    for (int i = 0; i < 2; i++) {
        if (ls[i]->daemon)
            MHD_stop_daemon(ls[i]->daemon);
        ls[i]->daemon = NULL;
        if (ls[i]->fd >= 0)
            close(ls[i]->fd);
        if (ls[i]->quiesced_fd >= 0)
            close(ls[i]->quiesced_fd);
        ls[i]->fd = ls[i]->quiesced_fd = -1;
    }
    if (http->unix_bound)
        unlink(http->unix_path);
    free(http->unix_path);
    free(http->tcp_spec);
    free(http);
}
