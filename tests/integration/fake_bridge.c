/*
 * The fake bridge: one server thread, a poll() loop over the listening
 * socket, a wake-up pipe and up to MAX_CLIENTS keep-alive connections.  Each
 * request is parsed (request line, Content-Length, Authorization), batches are
 * decoded with the real wire decoder and recorded, and the reply follows the
 * programmed behaviour, possibly after a delay (kept per connection so that
 * one slow answer never holds up the others).
 */
#include "tests/integration/fake_bridge.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define MAX_REQUEST (80u * 1024u * 1024u)

struct record {
    struct dw_arena arena;
    struct dw_batch *batch;
    char auth[512];
};

struct outcome {
    char id[128];
    char outcome[32];
};

struct client {
    int fd;             /* -1: free slot */
    char *in;
    size_t len, cap;
    char *out;          /* a reply waiting for send_at */
    size_t outlen;
    long long send_at;  /* ms, monotonic; 0: nothing waiting */
    bool close_after;
};

struct fake_bridge {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int listen_fd;
    int wake[2];
    bool stop;
    char path[256];
    struct fake_behaviour b; /* strings owned */
    struct record **records;
    size_t nrecords, caprecords;
    size_t batches, decode_errors, accepts, open;
    struct outcome *outcomes;
    size_t noutcomes, capoutcomes;
    struct client clients[MAX_CLIENTS];
};

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct fake_behaviour fake_behaviour_ok(void)
{
    struct fake_behaviour b;

    memset(&b, 0, sizeof(b));
    b.mode = FAKE_VERDICT;
    b.status = DW_VERDICT_COMMITTED;
    b.change = -1;
    b.retry_after_s = -1;
    b.keep_bodies = true;
    return b;
}

/* ---- behaviour ---- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void free_behaviour(struct fake_behaviour *b)
{
    free((char *) b->id);
    free((char *) b->stage);
    free((char *) b->map);
    free((char *) b->message);
    free((char *) b->detail);
    free((char *) b->hint);
    free((char *) b->target_sqlstate);
    free((char *) b->raw);
    memset(b, 0, sizeof(*b));
}

static void copy_behaviour(struct fake_behaviour *dst, const struct fake_behaviour *src)
{
    *dst = *src;
    dst->id = dup_or_null(src->id);
    dst->stage = dup_or_null(src->stage);
    dst->map = dup_or_null(src->map);
    dst->message = dup_or_null(src->message);
    dst->detail = dup_or_null(src->detail);
    dst->hint = dup_or_null(src->hint);
    dst->target_sqlstate = dup_or_null(src->target_sqlstate);
    dst->raw = dup_or_null(src->raw);
}

void fake_bridge_set(struct fake_bridge *fb, const struct fake_behaviour *b)
{
    pthread_mutex_lock(&fb->mu);
    free_behaviour(&fb->b);
    copy_behaviour(&fb->b, b);
    pthread_mutex_unlock(&fb->mu);
}

/* ---- records ---- */

static void free_records(struct fake_bridge *fb)
{
    for (size_t i = 0; i < fb->nrecords; i++) {
        dw_arena_cleanup(&fb->records[i]->arena);
        free(fb->records[i]);
    }
    free(fb->records);
    fb->records = NULL;
    fb->nrecords = fb->caprecords = 0;
    free(fb->outcomes);
    fb->outcomes = NULL;
    fb->noutcomes = fb->capoutcomes = 0;
}

void fake_bridge_reset(struct fake_bridge *fb)
{
    pthread_mutex_lock(&fb->mu);
    free_records(fb);
    fb->batches = 0;
    fb->decode_errors = 0;
    pthread_mutex_unlock(&fb->mu);
}

size_t fake_bridge_batch_count(struct fake_bridge *fb)
{
    size_t n;

    pthread_mutex_lock(&fb->mu);
    n = fb->batches;
    pthread_mutex_unlock(&fb->mu);
    return n;
}

const struct dw_batch *fake_bridge_batch(struct fake_bridge *fb, size_t i)
{
    const struct dw_batch *b = NULL;

    pthread_mutex_lock(&fb->mu);
    if (i < fb->nrecords)
        b = fb->records[i]->batch;
    pthread_mutex_unlock(&fb->mu);
    return b;
}

const char *fake_bridge_batch_auth(struct fake_bridge *fb, size_t i)
{
    const char *a = "";

    pthread_mutex_lock(&fb->mu);
    if (i < fb->nrecords)
        a = fb->records[i]->auth;
    pthread_mutex_unlock(&fb->mu);
    return a;
}

#define COUNTER(name, field)                      \
    size_t name(struct fake_bridge *fb)           \
    {                                             \
        size_t n;                                 \
        pthread_mutex_lock(&fb->mu);              \
        n = fb->field;                            \
        pthread_mutex_unlock(&fb->mu);            \
        return n;                                 \
    }

COUNTER(fake_bridge_decode_errors, decode_errors)
COUNTER(fake_bridge_accepts, accepts)
COUNTER(fake_bridge_open_connections, open)
COUNTER(fake_bridge_outcome_count, noutcomes)

static bool timed_wait(struct fake_bridge *fb, long long deadline)
{
    struct timespec ts;
    long long left = deadline - now_ms();

    if (left <= 0)
        return false;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += left / 1000;
    ts.tv_nsec += (left % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&fb->cond, &fb->mu, &ts);
    return true;
}

bool fake_bridge_wait_batches(struct fake_bridge *fb, size_t n, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    bool ok;

    pthread_mutex_lock(&fb->mu);
    while (fb->batches < n && timed_wait(fb, deadline)) {
    }
    ok = fb->batches >= n;
    pthread_mutex_unlock(&fb->mu);
    return ok;
}

bool fake_bridge_wait_outcome(struct fake_bridge *fb, const char *id, int timeout_ms, char *out,
                              size_t outsize)
{
    long long deadline = now_ms() + timeout_ms;
    bool found = false;

    pthread_mutex_lock(&fb->mu);
    for (;;) {
        for (size_t i = 0; i < fb->noutcomes && !found; i++) {
            if (strcmp(fb->outcomes[i].id, id) == 0) {
                snprintf(out, outsize, "%s", fb->outcomes[i].outcome);
                found = true;
            }
        }
        if (found || !timed_wait(fb, deadline))
            break;
    }
    pthread_mutex_unlock(&fb->mu);
    return found;
}

/* ---- connections ---- */

static void close_client(struct fake_bridge *fb, struct client *c)
{
    if (c->fd < 0)
        return;
    close(c->fd);
    free(c->in);
    free(c->out);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    pthread_mutex_lock(&fb->mu);
    fb->open--;
    pthread_mutex_unlock(&fb->mu);
}

static void send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

        if (n > 0) {
            data += n;
            len -= (size_t) n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};

            if (poll(&p, 1, 2000) <= 0)
                return;
        } else {
            return; /* the peer went away: nothing to do */
        }
    }
}

/* Queue a reply (sent at once when delay_ms is 0). */
static void reply(struct client *c, const char *data, size_t len, int delay_ms, bool close_after)
{
    free(c->out);
    c->out = malloc(len ? len : 1);
    memcpy(c->out, data, len);
    c->outlen = len;
    c->send_at = now_ms() + delay_ms;
    if (c->send_at == 0)
        c->send_at = 1;
    c->close_after = close_after;
}

static void flush_due(struct fake_bridge *fb, struct client *c)
{
    if (c->fd < 0 || c->send_at == 0 || now_ms() < c->send_at)
        return;
    send_all(c->fd, c->out, c->outlen);
    free(c->out);
    c->out = NULL;
    c->outlen = 0;
    c->send_at = 0;
    if (c->close_after)
        close_client(fb, c);
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 409: return "Conflict";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
}

static void reply_json(struct client *c, int status, const char *body, const char *extra_headers,
                       int delay_ms, bool close_after)
{
    char *msg = NULL;
    int n = asprintf(&msg,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "%s\r\n%s",
                     status, reason(status), strlen(body), extra_headers ? extra_headers : "", body);

    if (n >= 0)
        reply(c, msg, (size_t) n, delay_ms, close_after);
    free(msg);
}

/* raw with every "{id}" replaced by id, and "{clen}" by the body's length */
static char *substitute_id(const char *raw, const char *id, size_t *outlen)
{
    struct dw_buf b;
    const char *p = raw, *q;

    dw_buf_init(&b);
    while ((q = strstr(p, "{id}")) != NULL) {
        dw_buf_append(&b, p, (size_t) (q - p));
        dw_buf_puts(&b, id);
        p = q + 4;
    }
    dw_buf_puts(&b, p);
    /* "{clen}" in the head: the length of what follows the blank line */
    q = strstr(b.data, "{clen}");
    if (q && strstr(b.data, "\r\n\r\n")) {
        size_t body = b.len - (size_t) (strstr(b.data, "\r\n\r\n") + 4 - b.data);
        struct dw_buf c;

        dw_buf_init(&c);
        dw_buf_append(&c, b.data, (size_t) (q - b.data));
        dw_buf_printf(&c, "%zu", body);
        dw_buf_puts(&c, q + 6);
        dw_buf_cleanup(&b);
        b = c;
    }
    *outlen = b.len;
    return dw_buf_take(&b);
}

static int default_status(dw_verdict_status s)
{
    switch (s) {
    case DW_VERDICT_PREPARED:
    case DW_VERDICT_COMMITTED: return 200;
    case DW_VERDICT_REJECTED: return 409;
    case DW_VERDICT_THROTTLED: return 429;
    case DW_VERDICT_UNAVAILABLE: return 503;
    }
    return 500;
}

static void handle_batch(struct fake_bridge *fb, struct client *c, const char *body, size_t len,
                         const char *auth)
{
    struct fake_behaviour b;
    struct record *rec = calloc(1, sizeof(*rec));
    struct dw_error err;
    char id[128];

    pthread_mutex_lock(&fb->mu);
    copy_behaviour(&b, &fb->b);
    pthread_mutex_unlock(&fb->mu);

    dw_arena_init(&rec->arena, 2048);
    dw_error_clear(&err);
    if (dw_wire_decode_batch(body, len, &rec->arena, &rec->batch, &err) != DW_OK) {
        char *msg = NULL;
        struct dw_buf q;

        dw_buf_init(&q);
        dw_wire_put_string(&q, err.message, strlen(err.message));
        if (asprintf(&msg, "{\"status\":400,\"message\":%s}", q.data) < 0)
            msg = NULL;
        fprintf(stderr, "fake bridge: batch does not decode: %s\n", err.message);
        pthread_mutex_lock(&fb->mu);
        fb->decode_errors++;
        pthread_cond_broadcast(&fb->cond);
        pthread_mutex_unlock(&fb->mu);
        reply_json(c, 400, msg ? msg : "{}", NULL, 0, false);
        free(msg);
        dw_buf_cleanup(&q);
        dw_arena_cleanup(&rec->arena);
        free(rec);
        free_behaviour(&b);
        return;
    }
    snprintf(id, sizeof(id), "%s", rec->batch->id);
    snprintf(rec->auth, sizeof(rec->auth), "%s", auth);

    pthread_mutex_lock(&fb->mu);
    fb->batches++;
    if (b.keep_bodies) {
        if (fb->nrecords == fb->caprecords) {
            fb->caprecords = fb->caprecords ? fb->caprecords * 2 : 64;
            fb->records = realloc(fb->records, fb->caprecords * sizeof(*fb->records));
        }
        fb->records[fb->nrecords++] = rec;
        rec = NULL;
    }
    pthread_cond_broadcast(&fb->cond);
    pthread_mutex_unlock(&fb->mu);
    if (rec) {
        dw_arena_cleanup(&rec->arena);
        free(rec);
    }

    switch (b.mode) {
    case FAKE_VERDICT: {
        struct dw_verdict v;
        struct dw_buf out;
        char headers[64] = "";

        dw_verdict_init(&v, b.id ? b.id : id, b.status);
        v.stage = b.stage;
        v.map = b.map;
        v.change = b.change;
        v.message = b.message;
        v.detail = b.detail;
        v.hint = b.hint;
        v.target_sqlstate = b.target_sqlstate;
        v.retry_after_s = b.retry_after_s;
        v.elapsed_ms = 1;
        dw_buf_init(&out);
        dw_error_clear(&err);
        if (dw_wire_encode_verdict(&v, &out, &err) != DW_OK) {
            fprintf(stderr, "fake bridge: cannot encode the verdict: %s\n", err.message);
            abort();
        }
        if (b.status == DW_VERDICT_THROTTLED && b.retry_after_s >= 0)
            snprintf(headers, sizeof(headers), "Retry-After: %lld\r\n",
                     (long long) b.retry_after_s);
        reply_json(c, b.http_status ? b.http_status : default_status(b.status), out.data,
                   headers, b.delay_ms, b.close_after);
        dw_buf_cleanup(&out);
        break;
    }
    case FAKE_RAW: {
        size_t n;
        char *raw = substitute_id(b.raw ? b.raw : "", id, &n);

        reply(c, raw, n, b.delay_ms, b.close_after);
        free(raw);
        break;
    }
    case FAKE_SILENT:
        break;
    case FAKE_CLOSE:
        close_client(fb, c);
        break;
    }
    free_behaviour(&b);
}

static void handle_outcome(struct fake_bridge *fb, struct client *c, const char *path,
                           const char *body)
{
    const char *start = path + strlen("/v1/batches/");
    const char *end = strstr(start, "/outcome");
    struct outcome o;

    memset(&o, 0, sizeof(o));
    if (end && (size_t) (end - start) < sizeof(o.id))
        memcpy(o.id, start, (size_t) (end - start));
    snprintf(o.outcome, sizeof(o.outcome), "%s",
             strstr(body, "\"committed\"") ? "committed"
             : strstr(body, "\"aborted\"") ? "aborted"
                                           : "?");
    pthread_mutex_lock(&fb->mu);
    if (fb->noutcomes == fb->capoutcomes) {
        fb->capoutcomes = fb->capoutcomes ? fb->capoutcomes * 2 : 64;
        fb->outcomes = realloc(fb->outcomes, fb->capoutcomes * sizeof(*fb->outcomes));
    }
    fb->outcomes[fb->noutcomes++] = o;
    pthread_cond_broadcast(&fb->cond);
    pthread_mutex_unlock(&fb->mu);
    reply(c, "HTTP/1.1 204 No Content\r\n\r\n", 27, 0, false);
    flush_due(fb, c);
}

/* Find a header's value in the head (case-insensitive name). */
static bool header_value(const char *head, const char *name, char *out, size_t outsize)
{
    size_t nlen = strlen(name);
    const char *p = strstr(head, "\r\n");

    while (p && p[2] != '\r') {
        p += 2;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1, *e;

            while (*v == ' ')
                v++;
            e = strstr(v, "\r\n");
            snprintf(out, outsize, "%.*s", (int) (e ? e - v : (long) strlen(v)), v);
            return true;
        }
        p = strstr(p, "\r\n");
    }
    return false;
}

/* Handle every complete request in the client's buffer. */
static void process_input(struct fake_bridge *fb, struct client *c)
{
    while (c->fd >= 0 && c->len > 0) {
        char *end = strstr(c->in, "\r\n\r\n");
        char method[16], path[512], value[512];
        size_t head_len, body_len = 0;
        char *body;

        if (!end)
            return;
        head_len = (size_t) (end - c->in) + 4;
        if (sscanf(c->in, "%15s %511s", method, path) != 2) {
            close_client(fb, c);
            return;
        }
        if (header_value(c->in, "Content-Length", value, sizeof(value)))
            body_len = strtoul(value, NULL, 10);
        if (body_len > MAX_REQUEST) {
            close_client(fb, c);
            return;
        }
        if (c->len < head_len + body_len)
            return;
        body = malloc(body_len + 1);
        memcpy(body, c->in + head_len, body_len);
        body[body_len] = '\0';
        if (!header_value(c->in, "Authorization", value, sizeof(value)))
            value[0] = '\0';

        memmove(c->in, c->in + head_len + body_len, c->len - head_len - body_len + 1);
        c->len -= head_len + body_len;

        if (strcmp(method, "POST") == 0 && strcmp(path, "/v1/batches") == 0)
            handle_batch(fb, c, body, body_len, value);
        else if (strcmp(method, "POST") == 0 && strncmp(path, "/v1/batches/", 12) == 0 &&
                 strstr(path, "/outcome"))
            handle_outcome(fb, c, path, body);
        else
            reply_json(c, 404, "{\"status\":404,\"message\":\"no such resource\"}", NULL, 0,
                       false);
        free(body);
        if (c->fd >= 0)
            flush_due(fb, c);
    }
}

static void read_client(struct fake_bridge *fb, struct client *c)
{
    for (;;) {
        ssize_t n;

        if (c->cap - c->len < 65536) {
            c->cap = c->cap ? c->cap * 2 : 131072;
            c->in = realloc(c->in, c->cap);
        }
        n = recv(c->fd, c->in + c->len, c->cap - c->len - 1, MSG_DONTWAIT);
        if (n > 0) {
            c->len += (size_t) n;
            c->in[c->len] = '\0';
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            process_input(fb, c);
            return;
        }
        if (n < 0 && errno == EINTR)
            continue;
        close_client(fb, c); /* EOF or error */
        return;
    }
}

static void *serve(void *arg)
{
    struct fake_bridge *fb = arg;

    for (;;) {
        struct pollfd p[MAX_CLIENTS + 2];
        int idx[MAX_CLIENTS + 2];
        int np = 0, timeout = -1;
        long long now = now_ms();

        p[np].fd = fb->wake[0];
        p[np++].events = POLLIN;
        p[np].fd = fb->listen_fd;
        p[np++].events = POLLIN;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &fb->clients[i];

            if (c->fd < 0)
                continue;
            idx[np] = i;
            p[np].fd = c->fd;
            p[np++].events = POLLIN;
            if (c->send_at) {
                long long left = c->send_at - now;

                if (left < 0)
                    left = 0;
                if (timeout < 0 || left < timeout)
                    timeout = (int) left;
            }
        }
        if (poll(p, (nfds_t) np, timeout) < 0 && errno != EINTR)
            break;
        if (p[0].revents) {
            char buf[16];
            bool stop;

            if (read(fb->wake[0], buf, sizeof(buf)) < 0) {
                /* nothing: the flag decides */
            }
            pthread_mutex_lock(&fb->mu);
            stop = fb->stop;
            pthread_mutex_unlock(&fb->mu);
            if (stop)
                break;
        }
        if (p[1].revents & POLLIN) {
            int fd = accept4(fb->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

            if (fd >= 0) {
                int slot = -1;

                for (int i = 0; i < MAX_CLIENTS && slot < 0; i++) {
                    if (fb->clients[i].fd < 0)
                        slot = i;
                }
                if (slot < 0) {
                    close(fd);
                } else {
                    fb->clients[slot].fd = fd;
                    pthread_mutex_lock(&fb->mu);
                    fb->accepts++;
                    fb->open++;
                    pthread_mutex_unlock(&fb->mu);
                }
            }
        }
        for (int k = 2; k < np; k++) {
            struct client *c = &fb->clients[idx[k]];

            if (c->fd == p[k].fd && (p[k].revents & (POLLIN | POLLHUP | POLLERR)))
                read_client(fb, c);
        }
        for (int i = 0; i < MAX_CLIENTS; i++)
            flush_due(fb, &fb->clients[i]);
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        close_client(fb, &fb->clients[i]);
    return NULL;
}

static struct fake_bridge *start(int listen_fd, const char *path)
{
    struct fake_bridge *fb = calloc(1, sizeof(*fb));

    pthread_mutex_init(&fb->mu, NULL);
    pthread_cond_init(&fb->cond, NULL);
    fb->listen_fd = listen_fd;
    snprintf(fb->path, sizeof(fb->path), "%s", path ? path : "");
    for (int i = 0; i < MAX_CLIENTS; i++)
        fb->clients[i].fd = -1;
    {
        struct fake_behaviour ok = fake_behaviour_ok();

        copy_behaviour(&fb->b, &ok);
    }
    if (pipe2(fb->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        perror("pipe2");
        exit(1);
    }
    if (pthread_create(&fb->thread, NULL, serve, fb) != 0) {
        perror("pthread_create");
        exit(1);
    }
    return fb;
}

struct fake_bridge *fake_bridge_start_unix(const char *path)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    unlink(path);
    if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0 || listen(fd, 64) != 0 ||
        chmod(path, 0777) != 0) {
        perror("fake bridge: unix socket");
        exit(1);
    }
    return start(fd, path);
}

struct fake_bridge *fake_bridge_start_tcp(int *port)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t) *port);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *) &sa, &len) != 0) {
        perror("fake bridge: tcp socket");
        exit(1);
    }
    *port = ntohs(sa.sin_port);
    return start(fd, NULL);
}

void fake_bridge_stop(struct fake_bridge *fb)
{
    if (!fb)
        return;
    pthread_mutex_lock(&fb->mu);
    fb->stop = true;
    pthread_mutex_unlock(&fb->mu);
    if (write(fb->wake[1], "x", 1) < 0)
        perror("fake bridge: wake");
    pthread_join(fb->thread, NULL);
    close(fb->listen_fd);
    close(fb->wake[0]);
    close(fb->wake[1]);
    if (fb->path[0])
        unlink(fb->path);
    free_records(fb);
    free_behaviour(&fb->b);
    pthread_mutex_destroy(&fb->mu);
    pthread_cond_destroy(&fb->cond);
    free(fb);
}
