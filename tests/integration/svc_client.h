/*
 * A deliberately small HTTP/1.1 client for testing dualwrited over its Unix
 * socket or TCP: it sends exactly the bytes a test asks for (so tests can
 * also send truncated or lying requests) and reads one response with a
 * timeout.  Responses with Content-Length only, which is all the bridge sends.
 */
#ifndef SVC_CLIENT_H
#define SVC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

struct resp {
    int status;          /* -1 when no response could be read */
    char head[4096];     /* status line and headers */
    char *body;          /* NUL-terminated, malloc'd */
    size_t len;
};

void resp_free(struct resp *r);

/* A connected socket, or -1. */
int svc_connect_unix(const char *path);
int svc_connect_tcp(int port);

bool svc_send_all(int fd, const void *data, size_t n);
/* Request line, Host, Content-Type, Content-Length, extra headers (each ending in CRLF), body. */
bool svc_send_request(int fd, const char *method, const char *path, const char *headers, const char *body,
                      size_t len);
/* Read one response; false on timeout, EOF or garbage. */
bool svc_read_response(int fd, struct resp *r, int timeout_ms);

#endif
