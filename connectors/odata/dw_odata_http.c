/*
 * The odata connector's HTTP exchange: one libcurl easy handle per session,
 * reused so the connection stays open between batches; the bearer token,
 * read again from its file whenever the file changes (a token refresher
 * replaces it in place); and the mapping of what can go wrong onto dw_error.
 *
 * TLS verification is always on: no setting turns off peer or host checks,
 * "ca_file" can only add trust anchors.  Redirects are not followed (a POST
 * must not move silently).  Every request is bounded by the connector's
 * timeout_ms, and an answer by a size cap.
 *
 * What a failure means for a batch: a transport failure or a timeout after
 * the request left us leaves its fate unknown (the service may have applied
 * the changeset), so the session is marked broken and the message says so;
 * an HTTP error status means the changeset was not applied.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bridge/common/dw_json.h"
#include "bridge/common/dw_utf8.h"
#include "connectors/odata/dw_odata_int.h"

/* The longest Retry-After we take literally: a day. */
#define MAX_RETRY_AFTER_MS (24L * 3600 * 1000)

static const char *conn_name(const struct odata_session *s)
{
    return s->base.config && s->base.config->name ? s->base.config->name : "?";
}

/* ---------------------------------------------------------------- curl callbacks */

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct odata_response *r = arg;
    size_t len = size * n;

    if (r->body.len + len > r->max_body) {
        r->too_large = true;
        return 0;   /* makes curl fail with CURLE_WRITE_ERROR */
    }
    dw_buf_append(&r->body, data, len);
    return dw_buf_failed(&r->body) ? 0 : len;
}

/* Copy a header's value (trimmed, control characters dropped) if the line is that header. */
static void take_header(const char *line, size_t len, const char *name, char *out, size_t size)
{
    size_t n = strlen(name), o = 0;

    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return;
    line += n + 1;
    len -= n + 1;
    while (len > 0 && (*line == ' ' || *line == '\t')) {
        line++;
        len--;
    }
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n' || line[len - 1] == ' '))
        len--;
    for (size_t i = 0; i < len && o + 1 < size; i++)
        if ((unsigned char) line[i] >= 0x20 && line[i] != 0x7f)
            out[o++] = line[i];
    out[o] = '\0';
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct odata_response *r = arg;
    size_t len = size * n;

    /* a new status line (after a 1xx, say) starts a new set of headers */
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        r->content_type[0] = r->retry_after[0] = r->location[0] = r->www_authenticate[0] = '\0';
        return len;
    }
    take_header(data, len, "Content-Type", r->content_type, sizeof(r->content_type));
    take_header(data, len, "Retry-After", r->retry_after, sizeof(r->retry_after));
    take_header(data, len, "Location", r->location, sizeof(r->location));
    take_header(data, len, "WWW-Authenticate", r->www_authenticate, sizeof(r->www_authenticate));
    return len;
}

/* ---------------------------------------------------------------- setup */

static long long now_monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void init_curl(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

dw_errcode dw_odata_http_init(struct odata_session *s, struct dw_error *err)
{
    const struct dw_connector_config *cfg = s->base.config;
    const char *ca = dw_connector_setting(cfg, "ca_file");
    CURL *c;
    CURLcode rc = CURLE_OK;

    pthread_once(&curl_once, init_curl);
    if (curl_init_rc != CURLE_OK)
        return dw_error_set(err, DW_ERR_INTERNAL, "could not initialize libcurl: %s",
                            curl_easy_strerror(curl_init_rc));
    c = curl_easy_init();
    if (!c)
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    s->curl = c;
#define SET(opt, val) \
    if (rc == CURLE_OK) \
        rc = curl_easy_setopt(c, opt, val)
    SET(CURLOPT_NOSIGNAL, 1L);               /* threads: no SIGALRM for timeouts */
    SET(CURLOPT_ERRORBUFFER, s->errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, &s->resp);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, &s->resp);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);         /* always: no setting turns these off */
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_ACCEPT_ENCODING, "");        /* whatever this libcurl can decode ($metadata is big) */
    SET(CURLOPT_USERAGENT, "dualwrited");
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (ca)
        SET(CURLOPT_CAINFO, ca);
    if (cfg->timeout_ms > 0) {
        SET(CURLOPT_TIMEOUT_MS, cfg->timeout_ms);
        SET(CURLOPT_CONNECTTIMEOUT_MS, cfg->timeout_ms);
    }
    s->timeout_ms = cfg->timeout_ms;
#undef SET
    if (rc != CURLE_OK)
        return dw_error_set(err, DW_ERR_INTERNAL, "could not set up libcurl: %s",
                            curl_easy_strerror(rc));
    return DW_OK;
}

/* ---------------------------------------------------------------- token */

static bool token_chars_ok(const char *t)
{
    for (; *t; t++)
        if ((unsigned char) *t < 0x21 || (unsigned char) *t > 0x7e)
            return false;
    return true;
}

/* Read the token file again if it changed since we last read it. */
static dw_errcode refresh_token(struct odata_session *s, struct dw_error *err)
{
    struct stat st;
    char *data;
    ssize_t got;
    size_t len = 0;
    int fd;

    if (!s->token_file)
        return DW_OK;
    if (stat(s->token_file, &st) != 0)
        return dw_error_set(err, DW_ERR_CONFIG, "could not read token file \"%s\": %s",
                            s->token_file, strerror(errno));
    if (s->token_read && st.st_mtim.tv_sec == s->token_mtime.tv_sec &&
        st.st_mtim.tv_nsec == s->token_mtime.tv_nsec && st.st_ino == s->token_ino &&
        st.st_dev == s->token_dev && st.st_size == s->token_size)
        return DW_OK;
    fd = open(s->token_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dw_error_set(err, DW_ERR_CONFIG, "could not read token file \"%s\": %s",
                            s->token_file, strerror(errno));
    /* what we read must match what we stat'ed: fstat the open file */
    if (fstat(fd, &st) != 0) {
        close(fd);
        return dw_error_set(err, DW_ERR_CONFIG, "could not read token file \"%s\": %s",
                            s->token_file, strerror(errno));
    }
    data = malloc(ODATA_MAX_TOKEN + 1);
    if (!data) {
        close(fd);
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
    while ((got = read(fd, data + len, ODATA_MAX_TOKEN + 1 - len)) > 0) {
        len += (size_t) got;
        if (len > ODATA_MAX_TOKEN)
            break;
    }
    close(fd);
    if (got < 0 || len > ODATA_MAX_TOKEN) {
        free(data);
        if (got < 0)
            return dw_error_set(err, DW_ERR_CONFIG, "could not read token file \"%s\": %s",
                                s->token_file, strerror(errno));
        return dw_error_set(err, DW_ERR_CONFIG, "token file \"%s\" is larger than %d bytes",
                            s->token_file, ODATA_MAX_TOKEN);
    }
    data[len] = '\0';
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        data[--len] = '\0';
    if (len == 0 || strlen(data) != len || !token_chars_ok(data)) {
        free(data);
        /* a refresher may be halfway through writing it: keep the old one if we have it */
        if (s->token)
            return DW_OK;
        return dw_error_set(err, DW_ERR_CONFIG, "token file \"%s\" does not hold a bearer token "
                            "(it is empty or has characters a token cannot have)", s->token_file);
    }
    free(s->token);
    s->token = data;
    s->token_mtime = st.st_mtim;
    s->token_ino = st.st_ino;
    s->token_dev = st.st_dev;
    s->token_size = st.st_size;
    s->token_read = true;
    return DW_OK;
}

/* ---------------------------------------------------------------- the exchange */

static bool add_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *n = curl_slist_append(*list, line);

    if (!n)
        return false;
    *list = n;
    return true;
}

static dw_errcode transport_error(struct odata_session *s, CURLcode rc, const char *what,
                                  struct dw_error *err)
{
    const char *why = s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc);
    curl_off_t sent = 0;

    s->base.broken = true;
    curl_easy_getinfo(s->curl, CURLINFO_SIZE_UPLOAD_T, &sent);
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        dw_error_set(err, DW_ERR_TIMEOUT, "the OData service did not answer within %ld ms while %s",
                     s->timeout_ms, what);
        if (sent > 0)
            dw_error_detail(err, "The request was sent: the service may have applied it.");
        return DW_ERR_TIMEOUT;
    case CURLE_WRITE_ERROR:
        if (s->resp.too_large) {
            dw_error_set(err, DW_ERR_PROTOCOL, "the OData service's answer is larger than %zu "
                         "bytes while %s", s->resp.max_body, what);
            return DW_ERR_PROTOCOL;
        }
        if (dw_buf_failed(&s->resp.body))
            return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
        dw_error_set(err, DW_ERR_CONNECT, "could not verify the OData service's TLS certificate: %s",
                     why);
        dw_error_hint(err, "Give the certificate authority that signed it in \"ca_file\" of "
                      "connector \"%s\".", conn_name(s));
        return DW_ERR_CONNECT;
    default:
        break;
    }
    if (sent > 0) {
        dw_error_set(err, DW_ERR_CONNECT, "lost the connection to the OData service while %s: %s",
                     what, why);
        dw_error_detail(err, "The request was sent: the service may have applied it.");
    } else {
        dw_error_set(err, DW_ERR_CONNECT, "could not reach the OData service at \"%s\": %s",
                     s->root, why);
    }
    return DW_ERR_CONNECT;
}

dw_errcode dw_odata_http(struct odata_session *s, const char *url, const char *content_type,
                         const char *body, size_t len, const char *accept, const char *batch_id,
                         size_t max_response, const char *what, struct dw_error *err)
{
    struct curl_slist *headers = NULL;
    struct dw_buf line;
    CURLcode rc = CURLE_OK;
    bool ok = true;
    dw_errcode code;

    if ((code = refresh_token(s, err)) != DW_OK)
        return code;
    dw_buf_reset(&s->resp.body);
    s->resp.status = 0;
    s->resp.too_large = false;
    s->resp.max_body = max_response;
    s->resp.content_type[0] = s->resp.retry_after[0] = '\0';
    s->resp.location[0] = s->resp.www_authenticate[0] = '\0';
    s->errbuf[0] = '\0';

    dw_buf_init(&line);
    ok = add_header(&headers, "OData-Version: 4.0") && add_header(&headers, "OData-MaxVersion: 4.0")
         && add_header(&headers, "Expect:");   /* no 100-continue round trip */
    if (ok && s->token) {
        dw_buf_printf(&line, "Authorization: Bearer %s", s->token);
        ok = !dw_buf_failed(&line) && add_header(&headers, line.data);
    }
    if (ok && accept) {
        dw_buf_reset(&line);
        dw_buf_printf(&line, "Accept: %s", accept);
        ok = !dw_buf_failed(&line) && add_header(&headers, line.data);
    }
    if (ok && body) {
        dw_buf_reset(&line);
        dw_buf_printf(&line, "Content-Type: %s", content_type);
        ok = !dw_buf_failed(&line) && add_header(&headers, line.data);
    }
    if (ok && batch_id) {
        dw_buf_reset(&line);
        dw_buf_printf(&line, "X-Dualwrite-Batch: %s", batch_id);
        ok = !dw_buf_failed(&line) && add_header(&headers, line.data);
    }
    /* the token must not linger in memory we hand back to malloc */
    if (line.data)
        memset(line.data, 0, line.cap);
    dw_buf_cleanup(&line);
    if (!ok) {
        curl_slist_free_all(headers);
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
#define SET(opt, val) \
    if (rc == CURLE_OK) \
        rc = curl_easy_setopt(s->curl, opt, val)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_HTTPHEADER, headers);
    if (body) {
        /* a batch: bounded by the connector's timeout and by the batch's own deadline */
        long limit = s->base.config->timeout_ms;

        if (s->base.deadline_ms > 0) {
            long long left = s->base.deadline_ms - now_monotonic_ms();

            if (left < 1)
                left = 1;
            if (limit <= 0 || left < limit)
                limit = (long) left;
        }
        SET(CURLOPT_TIMEOUT_MS, limit > 0 ? limit : 0L);
        s->timeout_ms = limit > 0 ? limit : 0;
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_POSTFIELDS, body);
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) len);
    } else {
        SET(CURLOPT_HTTPGET, 1L);
    }
#undef SET
    if (rc == CURLE_OK)
        rc = curl_easy_perform(s->curl);
    curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, NULL);
    if (body) {
        /* back to the connector's own timeout for what is not a batch */
        curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS,
                         s->base.config->timeout_ms > 0 ? s->base.config->timeout_ms : 0L);
    }
    curl_slist_free_all(headers);
    if (rc != CURLE_OK)
        return transport_error(s, rc, what, err);
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->resp.status);
    if (dw_buf_failed(&s->resp.body))
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    return DW_OK;
}

/* ---------------------------------------------------------------- error answers */

long dw_odata_retry_after_ms(const char *v)
{
    long long ms = 0;
    const char *p = v;

    if (!v || !*v)
        return 0;
    if (*p >= '0' && *p <= '9') {
        /* delta-seconds (saturating); a fraction is not standard but costs nothing to read */
        for (; *p >= '0' && *p <= '9'; p++)
            if (ms <= MAX_RETRY_AFTER_MS)
                ms = ms * 10 + (*p - '0');
        ms *= 1000;
        if (*p == '.') {
            long long scale = 100;

            for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
                ms += (*p - '0') * scale;
        }
        while (*p == ' ')
            p++;
        if (*p)
            return 0;
    } else {
        time_t when = curl_getdate(v, NULL);

        if (when < 0)
            return 0;
        ms = ((long long) when - (long long) time(NULL)) * 1000;
        if (ms <= 0)
            return 1;   /* "now": still a throttle, and 0 would read as "not said" */
    }
    return ms > MAX_RETRY_AFTER_MS ? MAX_RETRY_AFTER_MS : (long) ms;
}

/* The text of a service message, one line, valid UTF-8, into out. */
static void clean_text(char *out, size_t size, const char *s, size_t len)
{
    size_t o = 0;

    if (size == 0)
        return;
    if (dw_utf8_validate(s, len, NULL) != DW_UTF8_OK) {
        snprintf(out, size, "(not valid UTF-8)");
        return;
    }
    while (len > 0 && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) {
        s++;
        len--;
    }
    for (size_t i = 0; i < len && o + 1 < size; i++)
        out[o++] = (unsigned char) s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[dw_utf8_boundary(out, o)] = '\0';
}

struct service_error {
    char code[128];
    char message[256];
    char target[128];
    char detail[256];      /* the first of "details", if any */
    char content_id[32];
};

static void json_text(const struct dw_json *v, char *out, size_t size)
{
    if (v && v->type == DW_JSON_STRING)
        clean_text(out, size, v->u.string, v->len);
    else if (v && v->type == DW_JSON_NUMBER)
        clean_text(out, size, v->u.number, v->len);
}

/*
 * {"error": {"code", "message", "target", "details": [{"message"}], "@Core.ContentID"}};
 * OData 2/3 style {"error": {"message": {"value"}}} too.  Missing parts stay "".
 */
static void parse_service_error(const char *body, size_t len, struct service_error *se)
{
    struct dw_json_limits limits = {.max_bytes = 1024 * 1024, .max_depth = 32};
    struct dw_arena arena;
    struct dw_json *root = NULL;
    struct dw_error ignored;
    const struct dw_json *e, *m, *d;

    memset(se, 0, sizeof(*se));
    if (!body || len == 0)
        return;
    dw_arena_init(&arena, 4096);
    dw_error_clear(&ignored);
    if (dw_json_parse(body, len, &limits, &arena, &root, &ignored) == DW_OK && root &&
        (e = dw_json_find(root, "error")) && e->type == DW_JSON_OBJECT) {
        json_text(dw_json_find(e, "code"), se->code, sizeof(se->code));
        m = dw_json_find(e, "message");
        if (m && m->type == DW_JSON_OBJECT)
            m = dw_json_find(m, "value");
        json_text(m, se->message, sizeof(se->message));
        json_text(dw_json_find(e, "target"), se->target, sizeof(se->target));
        json_text(dw_json_find(e, "@Core.ContentID"), se->content_id, sizeof(se->content_id));
        if (!se->content_id[0])
            json_text(dw_json_find(e, "@Org.OData.Core.V1.ContentID"), se->content_id,
                      sizeof(se->content_id));
        d = dw_json_find(e, "details");
        if (d && d->type == DW_JSON_ARRAY && d->len > 0 && d->u.items[0].type == DW_JSON_OBJECT)
            json_text(dw_json_find(&d->u.items[0], "message"), se->detail, sizeof(se->detail));
    } else if (!root) {
        /* not JSON: the first line of the text, if it is text */
        const char *nl = memchr(body, '\n', len);

        clean_text(se->message, sizeof(se->message), body, nl ? (size_t) (nl - body) : len);
        if (se->message[0] == '<')
            se->message[0] = '\0';   /* an HTML error page says nothing useful in one line */
    }
    dw_arena_cleanup(&arena);
}

static const char *reason(long status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 424: return "Failed Dependency";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status >= 500 ? "Server Error" : status >= 400 ? "Client Error" : "";
    }
}

/* The service's code, unless it only repeats the status ("400"). */
static bool useful_code(const struct service_error *se, long status)
{
    char digits[16];

    snprintf(digits, sizeof(digits), "%ld", status);
    return se->code[0] && strcmp(se->code, digits) != 0;
}

dw_errcode dw_odata_status_error(struct odata_session *s, long status, const char *retry_after,
                                 const char *body, size_t len, char *content_id, size_t idsize,
                                 struct dw_error *err)
{
    struct service_error se;
    char said[400] = "";
    const char *name = conn_name(s);
    long wait_ms = dw_odata_retry_after_ms(retry_after);

    parse_service_error(body, len, &se);
    if (content_id && idsize)
        snprintf(content_id, idsize, "%s", se.content_id);
    if (useful_code(&se, status) && se.message[0])
        snprintf(said, sizeof(said), "%s: %s", se.code, se.message);
    else if (se.message[0])
        snprintf(said, sizeof(said), "%s", se.message);
    else if (useful_code(&se, status))
        snprintf(said, sizeof(said), "%s", se.code);

    if (status == 401 || status == 403) {
        if (status == 401)
            dw_error_set(err, DW_ERR_TARGET, "the OData service refused the bearer token of "
                         "connector \"%s\" (HTTP 401 Unauthorized)%s%s", name, said[0] ? ": " : "",
                         said);
        else
            dw_error_set(err, DW_ERR_TARGET, "the OData service denied connector \"%s\" access "
                         "(HTTP 403 Forbidden)%s%s", name, said[0] ? ": " : "", said);
        if (s->resp.www_authenticate[0] && status == 401)
            dw_error_detail(err, "The service said: WWW-Authenticate: %s",
                            s->resp.www_authenticate);
        dw_error_hint(err, status == 401
                      ? "Check the connector's \"token\" or \"token_file\"; a token file is read "
                        "again whenever it changes, so a refreshed token is used at once."
                      : "The token is valid but its user lacks a privilege this batch needs.");
        return DW_ERR_TARGET;
    }
    if (status == 429 || (status == 503 && retry_after && retry_after[0])) {
        s->base.retry_after_ms = wait_ms;
        if (wait_ms > 0)
            dw_error_set(err, DW_ERR_THROTTLED, "the OData service is throttling requests (HTTP "
                         "%ld %s), retry after %ld.%03ld s%s%s", status, reason(status),
                         wait_ms / 1000, wait_ms % 1000, said[0] ? ": " : "", said);
        else
            dw_error_set(err, DW_ERR_THROTTLED, "the OData service is throttling requests (HTTP "
                         "%ld %s)%s%s", status, reason(status), said[0] ? ": " : "", said);
        dw_error_detail(err, "The changeset was not applied.");
        return DW_ERR_THROTTLED;
    }
    if (status == 408 || status >= 500) {
        dw_error_set(err, DW_ERR_CONNECT, "the OData service is unavailable (HTTP %ld %s)%s%s",
                     status, reason(status), said[0] ? ": " : "", said);
        if (se.detail[0])
            dw_error_detail(err, "%s", se.detail);
        return DW_ERR_CONNECT;
    }
    if (status >= 300 && status < 400) {
        dw_error_set(err, DW_ERR_TARGET, "the OData service answered with a redirect (HTTP %ld) "
                     "to \"%s\"", status, s->resp.location[0] ? s->resp.location : "?");
        dw_error_hint(err, "Set \"url\" of connector \"%s\" to the service root itself: "
                      "requests are not redirected.", name);
        return DW_ERR_TARGET;
    }
    /* 4xx: the service's own verdict, in its own words */
    if (said[0])
        dw_error_set(err, DW_ERR_TARGET, "%s", said);
    else
        dw_error_set(err, DW_ERR_TARGET, "the OData service rejected the request (HTTP %ld %s)",
                     status, reason(status));
    if (se.detail[0] && se.target[0])
        dw_error_detail(err, "HTTP %ld %s; target \"%s\": %s", status, reason(status), se.target,
                        se.detail);
    else if (se.target[0])
        dw_error_detail(err, "HTTP %ld %s; target \"%s\".", status, reason(status), se.target);
    else if (se.detail[0])
        dw_error_detail(err, "HTTP %ld %s: %s", status, reason(status), se.detail);
    else
        dw_error_detail(err, "HTTP %ld %s.", status, reason(status));
    return DW_ERR_TARGET;
}
