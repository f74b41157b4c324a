/*
 * Inside the configuration loader: the state of one load and the helpers that
 * dw_config.c (the sections and their rules) and dw_config_value.c (paths,
 * error lines, typed reads, ${ENV} and *_file secrets) share.  Not public.
 */
#ifndef DW_CONFIG_INT_H
#define DW_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "bridge/common/dw_buf.h"
#include "bridge/service/dw_config.h"

struct dw_config_loader {
    const char *display;         /* the path as given, for messages */
    char *dir;                   /* absolute folder of the file */
    struct dw_buf errors;
    size_t nerrors;
    char path[512];              /* JSON pointer of the value being read */
    size_t plen;
    char quoted[4][200];         /* ring of quoted strings for one message */
    int nextq;
    struct dw_config *cfg;
};

/* A string read from the file: value after expansion; raw is what the file says. */
struct dw_config_str {
    char *value;
    const char *raw;
    bool secret;
};

/* Path: push a key or index onto the JSON pointer, pop back to the returned length. */
size_t dw_config_push(struct dw_config_loader *ld, const char *key);
size_t dw_config_push_index(struct dw_config_loader *ld, size_t i);
void dw_config_pop(struct dw_config_loader *ld, size_t old);

/* Error lines: "FILE<where> message"; err at the current path, err_at at a child key. */
void dw_config_error_line(struct dw_config_loader *ld, const char *where, const char *msg);
void dw_config_err(struct dw_config_loader *ld, const char *fmt, ...) DW_PRINTF(2, 3);
void dw_config_err_at(struct dw_config_loader *ld, const char *key, const char *fmt, ...)
        DW_PRINTF(3, 4);

/* For messages: s quoted (a ring of 4 buffers), a value's JSON type, '"a", "b"'. */
const char *dw_config_quote(struct dw_config_loader *ld, const char *s);
const char *dw_config_jtype(const cJSON *j);
void dw_config_list_quoted(struct dw_buf *b, const char *const *items);

/* Keys: comments ("//..."), unknown and duplicate keys, lookup. */
bool dw_config_is_comment(const char *key);
void dw_config_check_keys(struct dw_config_loader *ld, const cJSON *obj, const char *const *valid);
const cJSON *dw_config_get(const cJSON *obj, const char *key);

/*
 * Typed reads at obj[key] (the path names the key in errors).  Strings get
 * ${ENV} expansion; a secret may also come from key_file; paths are made
 * absolute relative to the configuration file.  Integers outside [min, max]
 * and wrong types are reported and leave *out alone.
 */
bool dw_config_read_string(struct dw_config_loader *ld, const cJSON *j, struct dw_config_str *out);
bool dw_config_get_string(struct dw_config_loader *ld, const cJSON *obj, const char *key,
                          bool required, struct dw_config_str *out);
char *dw_config_absolute(struct dw_config_loader *ld, const char *p);
bool dw_config_get_secret(struct dw_config_loader *ld, const cJSON *obj, const char *key,
                          struct dw_config_str *out);
void dw_config_get_int(struct dw_config_loader *ld, const cJSON *obj, const char *key, long min,
                       long max, long *out);
void dw_config_get_bool(struct dw_config_loader *ld, const cJSON *obj, const char *key, bool *out);
const cJSON *dw_config_get_object(struct dw_config_loader *ld, const cJSON *obj, const char *key);

/* Reading the file and reporting syntax errors as "FILE:LINE:COLUMN: message". */
void dw_config_syntax_error(struct dw_config_loader *ld, const char *data, size_t pos,
                            const char *msg);
char *dw_config_read_file(struct dw_config_loader *ld, const char *path, size_t *len);

#endif
