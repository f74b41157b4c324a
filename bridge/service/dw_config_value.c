/*
 * The configuration loader's plumbing: JSON pointer paths, error lines,
 * quoting, reads of typed values with their type errors, ${NAME} expansion
 * from the environment, secrets read from *_file settings, and reading the
 * file itself.  Messages only ever show what the configuration file says,
 * never an expanded value or a secret file's contents.
 */
#include "bridge/service/dw_config_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge/common/dw_utf8.h"

#define MAX_CONFIG_BYTES (1024 * 1024)
#define MAX_SECRET_BYTES (64 * 1024)
#define MAX_ERRORS 100

size_t dw_config_push(struct dw_config_loader *ld, const char *key)
{
    size_t old = ld->plen;

    if (ld->plen + 1 < sizeof(ld->path))
        ld->path[ld->plen++] = '/';
    for (const char *p = key; *p; p++) {
        const char *esc = *p == '~' ? "~0" : *p == '/' ? "~1" : NULL;
        size_t n = esc ? 2 : 1;

        if (ld->plen + n + 4 >= sizeof(ld->path)) {
            memcpy(ld->path + ld->plen, "...", 3);
            ld->plen += 3;
            break;
        }
        memcpy(ld->path + ld->plen, esc ? esc : p, n);
        ld->plen += n;
    }
    ld->path[ld->plen] = '\0';
    return old;
}

size_t dw_config_push_index(struct dw_config_loader *ld, size_t i)
{
    char num[32];

    snprintf(num, sizeof(num), "%zu", i);
    return dw_config_push(ld, num);
}

void dw_config_pop(struct dw_config_loader *ld, size_t old)
{
    ld->plen = old;
    ld->path[old] = '\0';
}

void dw_config_error_line(struct dw_config_loader *ld, const char *where, const char *msg)
{
    if (ld->nerrors < MAX_ERRORS)
        dw_buf_printf(&ld->errors, "%s%s %s\n", ld->display, where, msg);
    else if (ld->nerrors == MAX_ERRORS)
        dw_buf_printf(&ld->errors, "%s: too many errors, the rest are not shown\n", ld->display);
    ld->nerrors++;
}

void dw_config_err(struct dw_config_loader *ld, const char *fmt, ...)
{
    char msg[1024], where[sizeof(ld->path) + 8];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(where, sizeof(where), ": %s:", ld->plen ? ld->path : "/");
    dw_config_error_line(ld, where, msg);
}

/* Error at the child key of the current object. */
void dw_config_err_at(struct dw_config_loader *ld, const char *key, const char *fmt, ...)
{
    char msg[1024];
    size_t old = dw_config_push(ld, key);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dw_config_err(ld, "%s", msg);
    dw_config_pop(ld, old);
}

/* s in double quotes, control characters escaped, cut at 190 bytes. */
const char *dw_config_quote(struct dw_config_loader *ld, const char *s)
{
    char *out = ld->quoted[ld->nextq];
    size_t n = 0, max = sizeof(ld->quoted[0]) - 8;

    ld->nextq = (ld->nextq + 1) % 4;
    out[n++] = '"';
    for (; *s && n < max; s++) {
        unsigned char c = (unsigned char) *s;

        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char) c;
        } else if (c < 0x20 || c == 0x7f) {
            n += (size_t) snprintf(out + n, 8, "\\u%04x", c);
        } else {
            out[n++] = (char) c;
        }
    }
    if (*s) {
        n = dw_utf8_boundary(out + 1, n - 1) + 1;
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n++] = '"';
    out[n] = '\0';
    return out;
}

const char *dw_config_jtype(const cJSON *j)
{
    if (cJSON_IsObject(j))
        return "an object";
    if (cJSON_IsArray(j))
        return "an array";
    if (cJSON_IsString(j))
        return "a string";
    if (cJSON_IsNumber(j))
        return "a number";
    if (cJSON_IsBool(j))
        return "a boolean";
    if (cJSON_IsNull(j))
        return "null";
    return "an invalid value";
}

/* '"a", "b", "c"' for a NULL-terminated list. */
void dw_config_list_quoted(struct dw_buf *b, const char *const *items)
{
    for (size_t i = 0; items[i]; i++)
        dw_buf_printf(b, "%s\"%s\"", i ? ", " : "", items[i]);
}

bool dw_config_is_comment(const char *key)
{
    return strncmp(key, "//", 2) == 0;
}

/* Unknown and duplicate keys of the object at the current path. */
void dw_config_check_keys(struct dw_config_loader *ld, const cJSON *obj, const char *const *valid)
{
    for (const cJSON *k = obj->child; k; k = k->next) {
        bool known = dw_config_is_comment(k->string);

        for (size_t i = 0; valid[i] && !known; i++)
            known = strcmp(valid[i], k->string) == 0;
        if (!known) {
            struct dw_buf b;

            dw_buf_init(&b);
            dw_config_list_quoted(&b, valid);
            dw_config_err(ld, "unknown key %s; valid keys are %s", dw_config_quote(ld, k->string),
                          b.data ? b.data : "(none)");
            dw_buf_cleanup(&b);
            continue;
        }
        for (const cJSON *p = obj->child; p != k; p = p->next) {
            if (strcmp(p->string, k->string) == 0) {
                dw_config_err(ld, "duplicate key %s", dw_config_quote(ld, k->string));
                break;
            }
        }
    }
}

const cJSON *dw_config_get(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/*
 * Expand ${NAME} from the environment; "$${" is a literal "${".  Errors name
 * the variable, never a value.  Returns NULL on error (reported).
 */
static char *expand(struct dw_config_loader *ld, const char *raw, bool *expanded)
{
    struct dw_buf b;
    const char *p = raw;

    *expanded = false;
    dw_buf_init(&b);
    dw_buf_puts(&b, "");
    while (*p) {
        const char *end, *value;
        char name[256];
        size_t n;

        if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
            dw_buf_puts(&b, "${");
            p += 3;
            continue;
        }
        if (p[0] != '$' || p[1] != '{') {
            dw_buf_putc(&b, *p++);
            continue;
        }
        end = strchr(p + 2, '}');
        if (!end) {
            dw_config_err(ld, "unterminated \"${\" (write \"$${\" for a literal \"${\")");
            goto fail;
        }
        n = (size_t) (end - (p + 2));
        if (n == 0 || n >= sizeof(name) || (p[2] >= '0' && p[2] <= '9') ||
            strspn(p + 2, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") < n) {
            dw_config_err(
                    ld,
                    "invalid environment variable reference %s (expected ${NAME} with letters, "
                    "digits and underscores)",
                    dw_config_quote(ld, p));
            goto fail;
        }
        memcpy(name, p + 2, n);
        name[n] = '\0';
        value = getenv(name);
        if (!value) {
            dw_config_err(ld, "environment variable %s is not set", dw_config_quote(ld, name));
            goto fail;
        }
        dw_buf_puts(&b, value);
        *expanded = true;
        p = end + 1;
    }
    if (dw_buf_failed(&b)) {
        dw_config_err(ld, "out of memory");
        goto fail;
    }
    return dw_buf_take(&b);
fail:
    dw_buf_cleanup(&b);
    return NULL;
}

/* A string value at key (the path already points at it). */
bool dw_config_read_string(struct dw_config_loader *ld, const cJSON *j, struct dw_config_str *out)
{
    bool expanded;

    out->value = NULL;
    out->raw = NULL;
    out->secret = false;
    if (!cJSON_IsString(j)) {
        dw_config_err(ld, "expected a string, found %s", dw_config_jtype(j));
        return false;
    }
    out->raw = j->valuestring;
    out->value = expand(ld, j->valuestring, &expanded);
    out->secret = expanded;
    return out->value != NULL;
}

/* obj[key] as a string; absent is fine unless required. */
bool dw_config_get_string(struct dw_config_loader *ld, const cJSON *obj, const char *key,
                          bool required, struct dw_config_str *out)
{
    const cJSON *j = dw_config_get(obj, key);
    size_t old;
    bool ok;

    memset(out, 0, sizeof(*out));
    if (!j) {
        if (required)
            dw_config_err(ld, "missing required key \"%s\"", key);
        return !required;
    }
    old = dw_config_push(ld, key);
    ok = dw_config_read_string(ld, j, out);
    dw_config_pop(ld, old);
    return ok;
}

/* An absolute path: as is, or relative to the configuration file's folder. */
char *dw_config_absolute(struct dw_config_loader *ld, const char *p)
{
    struct dw_buf b;

    if (p[0] == '/')
        return strdup(p);
    dw_buf_init(&b);
    dw_buf_printf(&b, "%s/%s", ld->dir, p);
    if (dw_buf_failed(&b)) {
        dw_buf_cleanup(&b);
        return NULL;
    }
    return dw_buf_take(&b);
}

/* The contents of a secret file, one trailing newline (LF or CRLF) removed. */
static char *read_secret_file(struct dw_config_loader *ld, const char *raw, const char *path)
{
    char *data = NULL;
    ssize_t got;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        dw_config_err(ld, "could not open file %s: %s", dw_config_quote(ld, raw), strerror(errno));
        return NULL;
    }
    data = malloc(MAX_SECRET_BYTES + 1);
    if (!data) {
        close(fd);
        dw_config_err(ld, "out of memory");
        return NULL;
    }
    while ((got = read(fd, data + len, MAX_SECRET_BYTES + 1 - len)) > 0) {
        len += (size_t) got;
        if (len > MAX_SECRET_BYTES)
            break;
    }
    close(fd);
    if (got < 0) {
        dw_config_err(ld, "could not read file %s: %s", dw_config_quote(ld, raw), strerror(errno));
        goto fail;
    }
    if (len > MAX_SECRET_BYTES) {
        dw_config_err(ld, "file %s is larger than %d bytes", dw_config_quote(ld, raw),
                      MAX_SECRET_BYTES);
        goto fail;
    }
    data[len] = '\0';
    if (strlen(data) != len) {
        dw_config_err(ld, "file %s contains a NUL byte", dw_config_quote(ld, raw));
        goto fail;
    }
    if (len > 0 && data[len - 1] == '\n')
        data[--len] = '\0';
    if (len > 0 && data[len - 1] == '\r')
        data[--len] = '\0';
    if (len == 0) {
        dw_config_err(ld, "file %s is empty", dw_config_quote(ld, raw));
        goto fail;
    }
    return data;
fail:
    free(data);
    return NULL;
}

/*
 * A secret that may be given as key (a string, ${ENV} allowed) or as
 * key_file (a file holding it).  Returns true when the value is fine or
 * absent (then *out is NULL); *present tells which.
 */
bool dw_config_get_secret(struct dw_config_loader *ld, const cJSON *obj, const char *key,
                          struct dw_config_str *out)
{
    char filekey[128];
    const cJSON *direct = dw_config_get(obj, key), *file;
    struct dw_config_str path;
    char *abs;
    size_t old;

    memset(out, 0, sizeof(*out));
    snprintf(filekey, sizeof(filekey), "%s_file", key);
    file = dw_config_get(obj, filekey);
    if (direct && file) {
        dw_config_err(ld, "give either \"%s\" or \"%s\", not both", key, filekey);
        return false;
    }
    if (direct)
        return dw_config_get_string(ld, obj, key, true, out);
    if (!file)
        return true;
    if (!dw_config_get_string(ld, obj, filekey, true, &path))
        return false;
    old = dw_config_push(ld, filekey);
    abs = dw_config_absolute(ld, path.value);
    if (!abs)
        dw_config_err(ld, "out of memory");
    else
        out->value = read_secret_file(ld, path.raw, abs);
    dw_config_pop(ld, old);
    free(abs);
    free(path.value);
    out->raw = NULL; /* never show a file's contents */
    out->secret = true;
    return out->value != NULL;
}

/* obj[key] as an integer in [min, max]; absent leaves *out alone. */
void dw_config_get_int(struct dw_config_loader *ld, const cJSON *obj, const char *key, long min,
                       long max, long *out)
{
    const cJSON *j = dw_config_get(obj, key);
    size_t old;

    if (!j)
        return;
    old = dw_config_push(ld, key);
    if (!cJSON_IsNumber(j))
        dw_config_err(ld, "expected an integer, found %s", dw_config_jtype(j));
    else if (j->valuedouble != floor(j->valuedouble))
        dw_config_err(ld, "expected an integer, found a fraction");
    else if (j->valuedouble < (double) min || j->valuedouble > (double) max)
        dw_config_err(ld, "must be between %ld and %ld", min, max);
    else
        *out = (long) j->valuedouble;
    dw_config_pop(ld, old);
}

void dw_config_get_bool(struct dw_config_loader *ld, const cJSON *obj, const char *key, bool *out)
{
    const cJSON *j = dw_config_get(obj, key);

    if (!j)
        return;
    if (cJSON_IsBool(j))
        *out = cJSON_IsTrue(j);
    else
        dw_config_err_at(ld, key, "expected a boolean, found %s", dw_config_jtype(j));
}

/* The object at obj[key], or NULL (absent, or reported as the wrong type). */
const cJSON *dw_config_get_object(struct dw_config_loader *ld, const cJSON *obj, const char *key)
{
    const cJSON *j = dw_config_get(obj, key);

    if (j && !cJSON_IsObject(j)) {
        dw_config_err_at(ld, key, "expected an object, found %s", dw_config_jtype(j));
        return NULL;
    }
    return j;
}

static void line_col(const char *data, size_t pos, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < pos; i++) {
        if (data[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char) data[i] & 0xC0) != 0x80) {
            (*col)++;
        }
    }
}

void dw_config_syntax_error(struct dw_config_loader *ld, const char *data, size_t pos,
                            const char *msg)
{
    size_t line, col;
    char where[64];

    line_col(data, pos, &line, &col);
    snprintf(where, sizeof(where), ":%zu:%zu:", line, col);
    dw_config_error_line(ld, where, msg);
}

/* The whole file, NUL-terminated; NULL with an error line on failure. */
char *dw_config_read_file(struct dw_config_loader *ld, const char *path, size_t *len)
{
    char *data = NULL;
    struct stat st;
    ssize_t got;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        char msg[300];

        snprintf(msg, sizeof(msg), "could not open the file: %s", strerror(errno));
        dw_config_error_line(ld, ":", msg);
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        dw_config_error_line(ld, ":", "not a regular file");
        goto fail;
    }
    if (st.st_size > MAX_CONFIG_BYTES) {
        dw_config_error_line(ld, ":", "the file is larger than 1 MB");
        goto fail;
    }
    data = malloc((size_t) st.st_size + 1);
    if (!data) {
        dw_config_error_line(ld, ":", "out of memory");
        goto fail;
    }
    *len = 0;
    while (*len < (size_t) st.st_size &&
           (got = read(fd, data + *len, (size_t) st.st_size - *len)) > 0)
        *len += (size_t) got;
    data[*len] = '\0';
    close(fd);
    return data;
fail:
    free(data);
    close(fd);
    return NULL;
}
