/*
 * The backend's HTTP/1.1 client to the bridge: one keep-alive connection per
 * backend, over a Unix socket or TCP, used at pre-commit (POST /v1/batches,
 * then wait for the verdict) and at commit/abort (POST .../outcome, best
 * effort, no wait).
 *
 * Everything is non-blocking.  Waiting happens on one WaitEventSet per
 * connection (MyLatch, the socket, postmaster death) with our own deadline and
 * CHECK_FOR_INTERRUPTS after every wake-up, so a cancel or a shutdown request
 * ends the wait at once.  Any ERROR raised while a batch is being exchanged
 * drops the connection: its state is unknown, and the bridge's resolver settles
 * the batch from the source's commit log.  The socket, the wait set and the
 * buffers (malloc'd, reused across transactions) are the only things that
 * outlive a transaction; no thread ever runs in the backend.
 *
 * The reply to an outcome is read (and discarded) before the next request on
 * the same connection; if it does not come promptly the connection is simply
 * replaced.
 */
#include "postgres.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "bridge/hook/dw_hook_int.h"

#define MAX_HEAD_BYTES 8192            /* status line and headers of a reply */
#define MAX_OUTCOME_REPLY_BYTES 4096   /* body of the reply to an outcome */
#define KEEP_BUFFER_BYTES (1024 * 1024) /* larger buffers are freed after use */
#define DRAIN_WAIT_MS 1000              /* how long a pending outcome reply may take */
#define MAX_ADDRESSES 8                 /* TCP: addresses tried per connection */

struct bridge_conn {
    pgsocket sock;          /* PGINVALID_SOCKET when not connected */
    WaitEventSet *wes;      /* MyLatch, postmaster death, sock */
    int sock_pos;
    uint32 sock_events;
    bool tcp;
    bool reply_pending;     /* an outcome reply is still to be read */
    char addr[MAXPGPATH];   /* the dualwrite.bridge this socket reaches */
    struct dw_buf head;     /* request line and headers */
    struct dw_buf body;     /* the batch */
    struct dw_buf in;       /* the reply */
    struct dw_arena arena;  /* the decoded verdict */
    bool arena_ready;
};

static struct bridge_conn conn = {.sock = PGINVALID_SOCKET};

/* What reading one reply came to. */
typedef enum read_result {
    READ_OK = 0,
    READ_TIMEOUT,
    READ_CLOSED_EMPTY,   /* closed before the first byte of a reply */
    READ_CLOSED_PARTIAL, /* closed in the middle of a reply */
    READ_MALFORMED,
    READ_TOO_LARGE
} read_result;

struct http_reply {
    int status;
    size_t head_len;
    size_t body_len;
    bool close;          /* the bridge will close, or the stream is out of step */
    int64 retry_after_s;
    char why[200];       /* READ_MALFORMED, READ_TOO_LARGE, socket errors */
};

/* ---- connection ---- */

void
dw_client_disconnect(void)
{
    if (conn.wes) {
        FreeWaitEventSet(conn.wes);
        conn.wes = NULL;
    }
    if (conn.sock != PGINVALID_SOCKET) {
        close(conn.sock);
        conn.sock = PGINVALID_SOCKET;
    }
    conn.reply_pending = false;
    conn.addr[0] = '\0';
}

const char *
dw_client_address(void)
{
    return conn.addr[0] ? conn.addr : (dw_guc_bridge ? dw_guc_bridge : "");
}

/* strerror, with PostgreSQL's lowercase first letter for message fragments */
static const char *
errno_text(int e, char *buf, size_t size)
{
    strlcpy(buf, strerror(e), size);
    if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
        buf[0] = (char) (buf[0] - 'A' + 'a');
    return buf;
}

bool
dw_client_parse_address(const char *addr, char *host, size_t hostsize, char *port,
                        size_t portsize)
{
    const char *colon;
    size_t hlen;
    long p;
    char *end;

    if (!addr || !addr[0] || addr[0] == '/')
        return false;
    if (addr[0] == '[') {
        const char *close_br = strchr(addr, ']');

        if (!close_br || close_br[1] != ':')
            return false;
        hlen = (size_t) (close_br - addr - 1);
        colon = close_br + 1;
        addr++;
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return false;
        hlen = (size_t) (colon - addr);
    }
    if (hlen == 0 || hlen >= hostsize)
        return false;
    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || p < 1 || p > 65535)
        return false;
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    snprintf(port, portsize, "%ld", p);
    return true;
}

static void
attach_socket(pgsocket sock)
{
    conn.sock = sock;
    conn.wes = CreateWaitEventSet(TopMemoryContext, 3);
    AddWaitEventToSet(conn.wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
    AddWaitEventToSet(conn.wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
    conn.sock_events = WL_SOCKET_WRITEABLE;
    conn.sock_pos = AddWaitEventToSet(conn.wes, conn.sock_events, sock, NULL, NULL);
}

/* close the socket of a failed attempt, keep the address */
static void
detach_socket(void)
{
    char addr[MAXPGPATH];

    strlcpy(addr, conn.addr, sizeof(addr));
    dw_client_disconnect();
    strlcpy(conn.addr, addr, sizeof(conn.addr));
}

/*
 * Wait until the socket is ready for events.  Returns false when the
 * deadline passes; interrupts (cancel, terminate) raise their ERROR/FATAL.
 */
static bool
wait_socket(uint32 events, TimestampTz deadline)
{
    for (;;) {
        WaitEvent ev;
        long timeout;
        int n;

        CHECK_FOR_INTERRUPTS();
        timeout = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
        if (timeout <= 0)
            return false;
        if (conn.sock_events != events) {
            ModifyWaitEvent(conn.wes, conn.sock_pos, events, NULL);
            conn.sock_events = events;
        }
        n = WaitEventSetWait(conn.wes, timeout, &ev, 1, PG_WAIT_EXTENSION);
        if (n == 0)
            continue;
        if (ev.events & WL_LATCH_SET) {
            ResetLatch(MyLatch);
            continue;
        }
        if (ev.events & events)
            return true;
    }
}

static void
report_unreachable(const char *why, int err) pg_attribute_noreturn();

/* err: the errno behind why, or 0 */
static void
report_unreachable(const char *why, int err)
{
    char addr[MAXPGPATH];

    strlcpy(addr, dw_client_address(), sizeof(addr));
    dw_client_disconnect();
    ereport(ERROR,
            (errcode(ERRCODE_DW_BRIDGE_UNREACHABLE),
             errmsg("dualwrite: could not reach the bridge at \"%s\": %s", addr, why),
             errdetail("The transaction was rolled back; nothing reached the target."),
             err == EACCES
                 ? errhint("The server's operating system user may not use the bridge's socket; "
                           "add it to the socket's group.")
                 : errhint("Check that dualwrited is running and that dualwrite.bridge names its "
                           "address.")));
}

static void
connect_unix(const char *path, TimestampTz deadline)
{
    struct sockaddr_un sa;
    pgsocket sock;
    char ebuf[128];

    if (strlen(path) >= sizeof(sa.sun_path))
        report_unreachable("the socket path is too long", 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    sock = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        int e = errno;

        report_unreachable(errno_text(e, ebuf, sizeof(ebuf)), e);
    }
    attach_socket(sock);
    for (;;) {
        if (connect(sock, (struct sockaddr *) &sa, sizeof(sa)) == 0)
            return;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            int e = errno;

            report_unreachable(errno_text(e, ebuf, sizeof(ebuf)), e);
        }
        /* the bridge's listen queue is full: try again shortly */
        if (TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline) <= 0)
            report_unreachable("its listen queue stayed full", 0);
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10,
                         PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
}

static void
connect_tcp(const char *addr, TimestampTz deadline)
{
    char host[256], port[16], ebuf[128];
    struct addrinfo hints, *res = NULL;
    struct sockaddr_storage addrs[MAX_ADDRESSES];
    socklen_t addrlens[MAX_ADDRESSES];
    int families[MAX_ADDRESSES];
    int naddrs = 0, rc, last_errno = ECONNREFUSED;

    if (!dw_client_parse_address(addr, host, sizeof(host), port, sizeof(port)))
        report_unreachable("not a Unix socket path or host:port", 0);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        report_unreachable(gai_strerror(rc), 0);
    /* copy, so that no ERROR below can leak the list */
    for (struct addrinfo *ai = res; ai && naddrs < MAX_ADDRESSES; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(addrs[0]))
            continue;
        memcpy(&addrs[naddrs], ai->ai_addr, ai->ai_addrlen);
        addrlens[naddrs] = ai->ai_addrlen;
        families[naddrs] = ai->ai_family;
        naddrs++;
    }
    freeaddrinfo(res);

    for (int i = 0; i < naddrs; i++) {
        pgsocket sock = socket(families[i], SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;

        if (sock < 0) {
            last_errno = errno;
            continue;
        }
        attach_socket(sock);
        rc = connect(sock, (struct sockaddr *) &addrs[i], addrlens[i]);
        if (rc != 0 && errno == EINPROGRESS) {
            int soerr = 0;
            socklen_t len = sizeof(soerr);

            if (!wait_socket(WL_SOCKET_CONNECTED, deadline))
                report_unreachable("connection timed out", 0);
            if (getsockopt(sock, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
                soerr = errno;
            rc = soerr == 0 ? 0 : -1;
            errno = soerr;
        }
        if (rc == 0) {
            (void) setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            return;
        }
        last_errno = errno;
        detach_socket();
    }
    report_unreachable(errno_text(last_errno, ebuf, sizeof(ebuf)), last_errno);
}

static void
open_connection(TimestampTz deadline)
{
    const char *addr = dw_guc_bridge;

    if (!addr || !addr[0])
        ereport(ERROR,
                (errcode(ERRCODE_DW_BRIDGE_UNREACHABLE),
                 errmsg("dualwrite: dualwrite.bridge is not set"),
                 errhint("Set it to the bridge's Unix socket path or host:port.")));
    strlcpy(conn.addr, addr, sizeof(conn.addr));
    conn.tcp = addr[0] != '/';
    conn.reply_pending = false;
    if (conn.tcp)
        connect_tcp(addr, deadline);
    else
        connect_unix(addr, deadline);
}

/* A kept-alive connection the bridge closed while we were idle is not reused. */
static bool
still_open(void)
{
    char c;
    ssize_t n = recv(conn.sock, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    return false; /* closed (0), or bytes nobody asked for (> 0) */
}

/* ---- writing ---- */

/* Returns 0, or the errno that stopped it (ETIMEDOUT when the deadline passed). */
static int
write_all(struct iovec *iov, int iovcnt, TimestampTz deadline)
{
    while (iovcnt > 0) {
        struct msghdr msg;
        ssize_t n;

        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t) iovcnt;
        n = sendmsg(conn.sock, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return errno;
            if (!wait_socket(WL_SOCKET_WRITEABLE, deadline))
                return ETIMEDOUT;
            continue;
        }
        while (iovcnt > 0 && (size_t) n >= iov->iov_len) {
            n -= (ssize_t) iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *) iov->iov_base + n;
            iov->iov_len -= (size_t) n;
        }
    }
    return 0;
}

/* request line and headers for a POST of body_len bytes */
static void
format_head(const char *path, size_t body_len)
{
    dw_buf_reset(&conn.head);
    dw_buf_printf(&conn.head,
                  "POST %s HTTP/1.1\r\n"
                  "Host: %s\r\n"
                  "User-Agent: dualwrite-hook/0.1\r\n"
                  "Content-Type: application/json\r\n"
                  "Content-Length: %zu\r\n"
                  "Connection: keep-alive\r\n",
                  path, conn.tcp ? conn.addr : "localhost", body_len);
    if (conn.tcp && dw_guc_token && dw_guc_token[0])
        dw_buf_printf(&conn.head, "Authorization: Bearer %s\r\n", dw_guc_token);
    dw_buf_puts(&conn.head, "\r\n");
}

/* ---- reading ---- */

static bool
header_is(const char *line, size_t len, const char *name, const char **value)
{
    size_t nlen = strlen(name);

    if (len <= nlen || pg_strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
        return false;
    line += nlen + 1;
    while (*line == ' ' || *line == '\t')
        line++;
    *value = line;
    return true;
}

/* digits up to CR; false when anything else is there or it overflows */
static bool
parse_decimal(const char *s, uint64 *out)
{
    uint64 v = 0;

    if (*s < '0' || *s > '9')
        return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (PG_UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64) (*s - '0');
    }
    while (*s == ' ' || *s == '\t')
        s++;
    *out = v;
    return *s == '\r';
}

/*
 * Parse the status line and headers in data[0..head_len) (which ends with
 * the blank line).  Fills r; false with r->why on a malformed head.
 */
static bool
parse_head(const char *data, size_t head_len, struct http_reply *r)
{
    const char *p = data, *end = data + head_len;
    bool have_length = false;
    uint64 length = 0;

    if (head_len < 14 || strncmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') ||
        p[8] != ' ' || p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' ||
        p[11] > '9' || (p[12] != ' ' && p[12] != '\r')) {
        snprintf(r->why, sizeof(r->why), "the reply does not start with an HTTP/1.x status line");
        return false;
    }
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    r->close = p[7] == '0';
    r->retry_after_s = -1;
    p = strstr(p, "\r\n") + 2;
    while (p < end) {
        const char *eol = strstr(p, "\r\n");
        const char *value;
        size_t len;

        if (!eol || eol >= end) {
            snprintf(r->why, sizeof(r->why), "a header line does not end with CRLF");
            return false;
        }
        len = (size_t) (eol - p);
        if (len == 0)
            break;
        if (header_is(p, len, "Content-Length", &value)) {
            uint64 v;

            if (!parse_decimal(value, &v) || (have_length && v != length)) {
                snprintf(r->why, sizeof(r->why), "invalid Content-Length header");
                return false;
            }
            length = v;
            have_length = true;
        } else if (header_is(p, len, "Transfer-Encoding", &value)) {
            snprintf(r->why, sizeof(r->why), "Transfer-Encoding is not supported");
            return false;
        } else if (header_is(p, len, "Connection", &value)) {
            for (const char *q = value; q + 5 <= eol; q++) {
                if (pg_strncasecmp(q, "close", 5) == 0)
                    r->close = true;
            }
        } else if (header_is(p, len, "Retry-After", &value)) {
            uint64 v;

            if (parse_decimal(value, &v) && v < PG_INT32_MAX)
                r->retry_after_s = (int64) v;
        }
        p = eol + 2;
    }
    if (!have_length) {
        if (r->status == 204 || r->status == 304 || r->status < 200) {
            length = 0;
        } else {
            snprintf(r->why, sizeof(r->why), "the reply has no Content-Length header");
            return false;
        }
    }
    if (length > PG_INT32_MAX) {
        snprintf(r->why, sizeof(r->why), "Content-Length " UINT64_FORMAT " is too large", length);
        return false;
    }
    r->head_len = head_len;
    r->body_len = (size_t) length;
    return true;
}

/* Find the blank line ending the head; returns its length (0: not yet). */
static size_t
head_length(const struct dw_buf *b)
{
    const char *e;

    if (b->len < 4)
        return 0;
    e = strstr(b->data, "\r\n\r\n");
    return e ? (size_t) (e - b->data) + 4 : 0;
}

/*
 * Read one complete reply into conn.in (skipping interim 1xx replies).  The
 * body is NUL-terminated in place.
 */
static read_result
read_reply(struct http_reply *r, TimestampTz deadline, size_t max_body)
{
    bool have_head = false;
    char ebuf[128];

    memset(r, 0, sizeof(*r));
    r->retry_after_s = -1;
    dw_buf_reset(&conn.in);
    for (;;) {
        ssize_t n;

        if (!have_head) {
            size_t hl = head_length(&conn.in);

            if (hl == 0 && conn.in.len > 0 &&
                (conn.in.len > MAX_HEAD_BYTES || memchr(conn.in.data, '\0', conn.in.len))) {
                snprintf(r->why, sizeof(r->why),
                         "the reply's headers are malformed or longer than %d bytes",
                         MAX_HEAD_BYTES);
                return READ_MALFORMED;
            }
            if (hl > 0) {
                if (!parse_head(conn.in.data, hl, r))
                    return READ_MALFORMED;
                if (r->status < 200) {
                    /* interim reply: drop it and read on */
                    memmove(conn.in.data, conn.in.data + hl, conn.in.len - hl + 1);
                    conn.in.len -= hl;
                    continue;
                }
                if (r->body_len > max_body) {
                    snprintf(r->why, sizeof(r->why),
                             "the reply's body of %zu bytes exceeds the limit of %zu bytes",
                             r->body_len, max_body);
                    return READ_TOO_LARGE;
                }
                have_head = true;
            }
        }
        if (have_head && conn.in.len >= r->head_len + r->body_len) {
            if (conn.in.len > r->head_len + r->body_len)
                r->close = true; /* bytes nobody asked for: the stream is out of step */
            conn.in.data[r->head_len + r->body_len] = '\0';
            return READ_OK;
        }
        if (!dw_buf_reserve(&conn.in, 16384))
            ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
        n = recv(conn.sock, conn.in.data + conn.in.len, conn.in.cap - conn.in.len - 1, 0);
        if (n > 0) {
            conn.in.len += (size_t) n;
            conn.in.data[conn.in.len] = '\0';
            continue;
        }
        if (n == 0)
            return conn.in.len == 0 ? READ_CLOSED_EMPTY : READ_CLOSED_PARTIAL;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (!wait_socket(WL_SOCKET_READABLE, deadline))
                return READ_TIMEOUT;
            continue;
        }
        snprintf(r->why, sizeof(r->why), "%s", errno_text(errno, ebuf, sizeof(ebuf)));
        return conn.in.len == 0 ? READ_CLOSED_EMPTY : READ_CLOSED_PARTIAL;
    }
}

/*
 * Read and discard the reply to the outcome sent at the end of the previous
 * transaction.  Anything unusual (slow, closed, malformed) just replaces the
 * connection: the outcome itself was delivered, and the resolver covers the
 * rest.
 */
static void
drain_pending(TimestampTz deadline)
{
    struct http_reply r;
    TimestampTz soon = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), DRAIN_WAIT_MS);
    read_result rr;

    conn.reply_pending = false;
    rr = read_reply(&r, soon < deadline ? soon : deadline, MAX_OUTCOME_REPLY_BYTES);
    if (rr != READ_OK || r.close) {
        elog(DEBUG1, "dualwrite: dropping the connection to the bridge (outcome reply: %d)",
             (int) rr);
        dw_client_disconnect();
    } else if (r.status / 100 != 2) {
        elog(DEBUG1, "dualwrite: the bridge answered an outcome with HTTP %d", r.status);
    }
}

/* ---- requests ---- */

struct dw_buf *
dw_client_batch_buffer(void)
{
    if (conn.body.cap > KEEP_BUFFER_BYTES)
        dw_buf_cleanup(&conn.body);
    dw_buf_reset(&conn.body);
    return &conn.body;
}

static void
report_lost(const char *batch_id, const char *what, const char *why) pg_attribute_noreturn();

/* The batch went out and no usable verdict came back: its state is unknown. */
static void
report_lost(const char *batch_id, const char *what, const char *why)
{
    dw_client_disconnect();
    ereport(ERROR,
            (errcode(ERRCODE_DW_PROTOCOL),
             errmsg("dualwrite: %s", what),
             why && why[0] ? errdetail_internal("%s. The state of batch \"%s\" is unknown; the "
                                                "bridge settles it from this server's commit log.",
                                                why, batch_id)
                           : errdetail("The state of batch \"%s\" is unknown; the bridge settles "
                                       "it from this server's commit log.",
                                       batch_id),
             errhint("The transaction was rolled back; retry it.")));
}

static void
post_batch_guts(const char *batch_id, TimestampTz deadline, struct dw_bridge_reply *reply)
{
    struct http_reply r;
    struct dw_error err;
    read_result rr;
    bool reused;

    if (conn.sock != PGINVALID_SOCKET && dw_guc_bridge && strcmp(conn.addr, dw_guc_bridge) != 0)
        dw_client_disconnect(); /* dualwrite.bridge changed */
    if (conn.sock != PGINVALID_SOCKET && conn.reply_pending)
        drain_pending(deadline);
    if (conn.sock != PGINVALID_SOCKET && !still_open())
        dw_client_disconnect();
    reused = conn.sock != PGINVALID_SOCKET;

    for (;;) {
        struct iovec iov[2];
        int rc;
        char ebuf[128];

        if (conn.sock == PGINVALID_SOCKET)
            open_connection(deadline);
        format_head("/v1/batches", conn.body.len);
        if (dw_buf_failed(&conn.head))
            ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
        iov[0].iov_base = conn.head.data;
        iov[0].iov_len = conn.head.len;
        iov[1].iov_base = conn.body.data;
        iov[1].iov_len = conn.body.len;
        rc = write_all(iov, 2, deadline);
        if (rc == 0)
            break;
        if (rc == ETIMEDOUT) {
            dw_client_disconnect();
            ereport(ERROR,
                    (errcode(ERRCODE_DW_COMMIT_TIMEOUT),
                     errmsg("dualwrite: the bridge did not take the batch within "
                            "dualwrite.commit_timeout (%d ms)",
                            dw_guc_commit_timeout_ms),
                     errdetail("The transaction was rolled back; the bridge never received the "
                               "whole batch."),
                     errhint("Check the bridge's health; raise dualwrite.commit_timeout for very "
                             "large transactions.")));
        }
        if (reused) {
            /* a kept-alive connection the bridge had just closed: once more, fresh */
            reused = false;
            dw_client_disconnect();
            continue;
        }
        report_unreachable(errno_text(rc, ebuf, sizeof(ebuf)), rc);
    }

    rr = read_reply(&r, deadline, DW_WIRE_MAX_VERDICT_BYTES);
    switch (rr) {
    case READ_OK:
        break;
    case READ_TIMEOUT:
        dw_client_disconnect();
        ereport(ERROR,
                (errcode(ERRCODE_DW_COMMIT_TIMEOUT),
                 errmsg("dualwrite: the bridge did not answer within dualwrite.commit_timeout "
                        "(%d ms)",
                        dw_guc_commit_timeout_ms),
                 errdetail("The transaction was rolled back. The state of batch \"%s\" is "
                           "unknown; the bridge settles it from this server's commit log.",
                           batch_id),
                 errhint("Check the target's and the bridge's health; raise "
                         "dualwrite.commit_timeout if the target is just slow.")));
        break;
    case READ_CLOSED_EMPTY:
        report_lost(batch_id, "the bridge closed the connection without answering (state unknown)",
                    r.why);
        break;
    case READ_CLOSED_PARTIAL:
        report_lost(batch_id, "the bridge closed the connection in the middle of its reply (state unknown)",
                    r.why);
        break;
    case READ_MALFORMED:
        report_lost(batch_id, "malformed reply from the bridge (state unknown)", r.why);
        break;
    case READ_TOO_LARGE:
        report_lost(batch_id, "oversized reply from the bridge (state unknown)", r.why);
        break;
    }

    reply->http_status = r.status;
    reply->retry_after_s = r.retry_after_s;
    reply->body = conn.in.data + r.head_len;
    reply->body_len = r.body_len;
    if (r.close)
        dw_client_disconnect();
    if (r.body_len > 0) {
        if (!conn.arena_ready) {
            dw_arena_init(&conn.arena, 4096);
            conn.arena_ready = true;
        }
        dw_arena_reset(&conn.arena);
        dw_error_clear(&err);
        if (dw_wire_decode_verdict(reply->body, reply->body_len, &conn.arena, &reply->verdict,
                                   &err) != DW_OK) {
            reply->verdict = NULL;
            strlcpy(reply->decode_error, err.message[0] ? err.message : "not a verdict",
                    sizeof(reply->decode_error));
        }
    } else {
        strlcpy(reply->decode_error, "the reply has no body", sizeof(reply->decode_error));
    }
}

void
dw_client_post_batch(const char *batch_id, TimestampTz deadline, struct dw_bridge_reply *reply)
{
    memset(reply, 0, sizeof(*reply));
    reply->retry_after_s = -1;
    reply->body = "";
    PG_TRY();
    {
        post_batch_guts(batch_id, deadline, reply);
    }
    PG_CATCH();
    {
        /* cancel, timeout, shutdown, protocol error: the connection's state is unknown */
        dw_client_disconnect();
        PG_RE_THROW();
    }
    PG_END_TRY();
    if (conn.body.cap > KEEP_BUFFER_BYTES)
        dw_buf_cleanup(&conn.body);
}

void
dw_client_send_outcome(const char *batch_id, bool committed)
{
    const char *body = committed ? "{\"outcome\":\"committed\"}" : "{\"outcome\":\"aborted\"}";
    char path[128];
    ssize_t n;
    size_t total;

    if (conn.sock == PGINVALID_SOCKET || conn.reply_pending)
        return;
    snprintf(path, sizeof(path), "/v1/batches/%s/outcome", batch_id);
    format_head(path, strlen(body));
    dw_buf_puts(&conn.head, body);
    if (dw_buf_failed(&conn.head)) {
        dw_client_disconnect();
        return;
    }
    total = conn.head.len;
    n = send(conn.sock, conn.head.data, total, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0 && (size_t) n == total)
        conn.reply_pending = true;
    else
        dw_client_disconnect(); /* half a request, or none: start afresh next time */
}
