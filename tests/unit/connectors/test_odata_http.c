/*
 * The odata connector's reading of error answers (connectors/odata/
 * dw_odata_http.c), without a network: which status becomes which error
 * code, the messages built from OData JSON error bodies (Dataverse's, SAP
 * CAP's, OData 2's, none at all, an HTML page), and Retry-After in both its
 * forms.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connectors/odata/dw_odata_int.h"
#include "tests/unit/common/dw_cunit.h"

static struct dw_connector_config cfg = {.name = "crm", .type = "odata", .timeout_ms = 1000};
static struct odata_session sess;
static struct dw_error err;
static char cid[32];

static dw_errcode answer(long status, const char *retry_after, const char *body)
{
    memset(&sess, 0, sizeof(sess));
    sess.base.config = &cfg;
    sess.base.failed_op = -1;
    dw_error_clear(&err);
    cid[0] = 'x';
    return dw_odata_status_error(&sess, status, retry_after, body, body ? strlen(body) : 0, cid,
                                 sizeof(cid), &err);
}

static void test_retry_after(void)
{
    char date[64];
    time_t later = time(NULL) + 120;
    long ms;

    CU_ASSERT_EQUAL(dw_odata_retry_after_ms("7"), 7000);
    CU_ASSERT_EQUAL(dw_odata_retry_after_ms("7 "), 7000);
    CU_ASSERT_EQUAL(dw_odata_retry_after_ms("1.5"), 1500);
    CU_ASSERT_EQUAL(dw_odata_retry_after_ms("0"), 0);
    CU_ASSERT_EQUAL(dw_odata_retry_after_ms(""), 0);
    CU_ASSERT_EQUAL(dw_odata_retry_after_ms(NULL), 0);
    CU_ASSERT_EQUAL(dw_odata_retry_after_ms("soon"), 0);
    CU_ASSERT_EQUAL(dw_odata_retry_after_ms("-1"), 0);
    CU_ASSERT_EQUAL(dw_odata_retry_after_ms("7s"), 0);
    CU_ASSERT_EQUAL(dw_odata_retry_after_ms("99999999999999999999"), 24L * 3600 * 1000);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", gmtime(&later));
    ms = dw_odata_retry_after_ms(date);
    CU_ASSERT(ms > 60000 && ms <= 120000);
    CU_ASSERT_EQUAL(dw_odata_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT"), 1);   /* past: now */
}

static void test_rejections(void)
{
    /* Dataverse's body */
    CU_ASSERT_EQUAL(answer(400, NULL, "{\"error\":{\"code\":\"0x80040265\",\"message\":\"The "
                                      "credit limit must be positive.\"}}"), DW_ERR_TARGET);
    DW_ASSERT_STREQ(err.message, "0x80040265: The credit limit must be positive.");
    DW_ASSERT_STREQ(err.detail, "HTTP 400 Bad Request.");
    DW_ASSERT_STREQ(err.sqlstate, "");
    DW_ASSERT_STREQ(cid, "");
    /* SAP CAP's, with a target, a content id and details */
    CU_ASSERT_EQUAL(answer(400, NULL, "{\"error\":{\"message\":\"Multiple errors\",\"code\":"
                                      "\"MULTIPLE_ERRORS\",\"target\":\"amount\",\"details\":"
                                      "[{\"code\":\"X\",\"message\":\"first one\"}],"
                                      "\"@Core.ContentID\":\"4\"}}"), DW_ERR_TARGET);
    DW_ASSERT_STREQ(err.message, "MULTIPLE_ERRORS: Multiple errors");
    DW_ASSERT_STREQ(err.detail, "HTTP 400 Bad Request; target \"amount\": first one");
    DW_ASSERT_STREQ(cid, "4");
    /* a code that only repeats the status is left out */
    CU_ASSERT_EQUAL(answer(404, NULL, "{\"error\":{\"code\":\"404\",\"message\":\"Not Found\"}}"),
                    DW_ERR_TARGET);
    DW_ASSERT_STREQ(err.message, "Not Found");
    /* OData 2: message is an object */
    CU_ASSERT_EQUAL(answer(409, NULL, "{\"error\":{\"code\":\"C\",\"message\":{\"lang\":\"en\","
                                      "\"value\":\"in use\"}}}"), DW_ERR_TARGET);
    DW_ASSERT_STREQ(err.message, "C: in use");
    /* no body, a text body, an HTML page, control characters */
    CU_ASSERT_EQUAL(answer(422, NULL, NULL), DW_ERR_TARGET);
    DW_ASSERT_STREQ(err.message, "the OData service rejected the request (HTTP 422 Unprocessable "
                    "Content)");
    CU_ASSERT_EQUAL(answer(400, NULL, "bad things\nhappened"), DW_ERR_TARGET);
    DW_ASSERT_STREQ(err.message, "bad things");
    CU_ASSERT_EQUAL(answer(400, NULL, "<html><body>Bad</body></html>"), DW_ERR_TARGET);
    DW_ASSERT_CONTAINS(err.message, "rejected the request (HTTP 400 Bad Request)");
    CU_ASSERT_EQUAL(answer(400, NULL, "{\"error\":{\"code\":\"A\",\"message\":\"x\\u0007y\\tz\"}}"),
                    DW_ERR_TARGET);
    DW_ASSERT_STREQ(err.message, "A: x y z");
    CU_ASSERT_EQUAL(answer(400, NULL, "\xff\xfe"), DW_ERR_TARGET);
    DW_ASSERT_CONTAINS(err.message, "not valid UTF-8");
}

static void test_auth(void)
{
    CU_ASSERT_EQUAL(answer(401, NULL, ""), DW_ERR_TARGET);
    DW_ASSERT_STREQ(err.message, "the OData service refused the bearer token of connector \"crm\" "
                    "(HTTP 401 Unauthorized)");
    DW_ASSERT_CONTAINS(err.hint, "token_file");
    CU_ASSERT_EQUAL(answer(403, NULL, "{\"error\":{\"code\":\"0x80040220\",\"message\":\"no "
                                      "privilege\"}}"), DW_ERR_TARGET);
    DW_ASSERT_STREQ(err.message, "the OData service denied connector \"crm\" access (HTTP 403 "
                    "Forbidden): 0x80040220: no privilege");
}

static void test_throttled_and_unavailable(void)
{
    CU_ASSERT_EQUAL(answer(429, "12", "{\"error\":{\"code\":\"0x80072322\",\"message\":\"Number "
                                      "of requests exceeded the limit\"}}"), DW_ERR_THROTTLED);
    CU_ASSERT_EQUAL(sess.base.retry_after_ms, 12000);
    DW_ASSERT_STREQ(err.message, "the OData service is throttling requests (HTTP 429 Too Many "
                    "Requests), retry after 12.000 s: 0x80072322: Number of requests exceeded "
                    "the limit");
    CU_ASSERT_EQUAL(answer(429, NULL, NULL), DW_ERR_THROTTLED);
    CU_ASSERT_EQUAL(sess.base.retry_after_ms, 0);
    DW_ASSERT_STREQ(err.message, "the OData service is throttling requests (HTTP 429 Too Many "
                    "Requests)");
    CU_ASSERT_EQUAL(answer(503, "0.25", NULL), DW_ERR_THROTTLED);
    CU_ASSERT_EQUAL(sess.base.retry_after_ms, 250);
    CU_ASSERT_EQUAL(answer(503, NULL, NULL), DW_ERR_CONNECT);
    DW_ASSERT_STREQ(err.message, "the OData service is unavailable (HTTP 503 Service Unavailable)");
    CU_ASSERT_EQUAL(answer(500, NULL, "{\"error\":{\"code\":\"E\",\"message\":\"boom\"}}"),
                    DW_ERR_CONNECT);
    DW_ASSERT_STREQ(err.message, "the OData service is unavailable (HTTP 500 Internal Server "
                    "Error): E: boom");
    CU_ASSERT_EQUAL(answer(408, NULL, NULL), DW_ERR_CONNECT);
    CU_ASSERT_EQUAL(answer(504, NULL, NULL), DW_ERR_CONNECT);
    CU_ASSERT_FALSE(sess.base.broken);   /* an answer came: the connection is fine */
}

static void test_redirect(void)
{
    CU_ASSERT_EQUAL(answer(301, NULL, NULL), DW_ERR_TARGET);
    DW_ASSERT_CONTAINS(err.message, "answered with a redirect (HTTP 301)");
    DW_ASSERT_CONTAINS(err.hint, "Set \"url\" of connector \"crm\"");
}

static const struct dw_cunit_test tests[] = {
    {"Retry-After: seconds and HTTP dates", test_retry_after},
    {"rejections in the service's words", test_rejections},
    {"401 and 403", test_auth},
    {"429, 503, 5xx", test_throttled_and_unavailable},
    {"redirects", test_redirect},
};

DW_CUNIT_MAIN("odata http errors", tests)
