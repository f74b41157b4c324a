/*
 * The test HTTP client (see svc_client.h).
 */
#include "tests/integration/svc_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void resp_free(struct resp *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

int svc_connect_unix(const char *sock_path)
{
    struct sockaddr_un a;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    if (strlen(sock_path) >= sizeof(a.sun_path)) {
        close(fd);
        return -1;
    }
    memcpy(a.sun_path, sock_path, strlen(sock_path));
    if (connect(fd, (struct sockaddr *) &a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int svc_connect_tcp(int tcp_port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t) tcp_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *) &a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool svc_send_all(int fd, const void *data, size_t n)
{
    const char *p = data;

    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t) w;
    }
    return true;
}

bool svc_send_request(int fd, const char *method, const char *path, const char *headers, const char *body,
                         size_t len)
{
    char head[2048];

    snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
                                 "Content-Length: %zu\r\n%s\r\n", method, path, len, headers ? headers : "");
    return svc_send_all(fd, head, strlen(head)) && (len == 0 || svc_send_all(fd, body, len));
}

/* Read what is there, waiting at most timeout_ms; -1 on error or timeout, 0 on EOF. */
static int read_some(int fd, char *buf, size_t n, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t r;

    if (poll(&p, 1, timeout_ms) <= 0)
        return -1;
    r = recv(fd, buf, n, 0);
    return r < 0 ? -1 : (int) r;
}

bool svc_read_response(int fd, struct resp *r, int timeout_ms)
{
    char buf[8192];
    size_t have = 0, need;
    char *end = NULL, *cl;
    size_t hlen;

    memset(r, 0, sizeof(r->head));
    r->status = -1;
    r->body = NULL;
    r->len = 0;
    while (!end) {
        int n;

        if (have == sizeof(buf) - 1)
            return false;
        n = read_some(fd, buf + have, sizeof(buf) - 1 - have, timeout_ms);
        if (n <= 0)
            return false;
        have += (size_t) n;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    hlen = (size_t) (end - buf) + 4;
    snprintf(r->head, sizeof(r->head), "%.*s", (int) hlen, buf);
    if (sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1)
        return false;
    cl = strcasestr(r->head, "\r\nContent-Length:");
    need = cl ? strtoul(cl + 17, NULL, 10) : 0;
    r->body = calloc(1, need + 1);
    r->len = have - hlen < need ? have - hlen : need;
    memcpy(r->body, buf + hlen, r->len);
    while (r->len < need) {
        int n = read_some(fd, r->body + r->len, need - r->len, timeout_ms);

        if (n <= 0)
            return false;
        r->len += (size_t) n;
    }
    r->body[r->len] = '\0';
    return true;
}

