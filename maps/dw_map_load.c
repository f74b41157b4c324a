/*
 * Loading table maps: files and folders, size limits, syntax errors with line
 * and column (dw_map_syntax.c), parsing with cJSON, the error list, and
 * assembling the final mapset in dependency order.
 *
 * Every file is read and validated even when an earlier one failed, and each
 * error becomes one line "file: /json/path: message" (or "file:line:column:
 * message" for syntax), so that "dwctl maps check" shows everything at once.
 * All memory of a mapset lives in one arena owned by its index; a failed load
 * frees everything before returning.
 */
#include "maps/dw_map_int.h"


#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A map file is a few kilobytes; anything this large is a mistake. */
#define MAX_FILE_BYTES (4u * 1024u * 1024u)
/* Beyond this a file is probably not a map at all; say so instead of flooding. */
#define MAX_ERRORS_PER_FILE 50

/* ---- quoting and error lines ---- */

void dw_map_quote(char *dst, size_t size, const char *s)
{
    static const char ellipsis[] = "...\"";
    size_t pos = 0, boundary;

    if (size == 0)
        return;
    if (!s) {
        snprintf(dst, size, "null");
        return;
    }
    if (size < sizeof(ellipsis) + 2) {
        dst[0] = '\0';
        return;
    }
    dst[pos++] = '"';
    boundary = pos;
    for (; *s; s++) {
        unsigned char ch = (unsigned char) *s;
        char esc[8];
        size_t n;

        if (ch == '"' || ch == '\\')
            n = (size_t) snprintf(esc, sizeof(esc), "\\%c", ch);
        else if (ch == '\n')
            n = (size_t) snprintf(esc, sizeof(esc), "\\n");
        else if (ch == '\t')
            n = (size_t) snprintf(esc, sizeof(esc), "\\t");
        else if (ch == '\r')
            n = (size_t) snprintf(esc, sizeof(esc), "\\r");
        else if (ch < 0x20 || ch == 0x7f)
            n = (size_t) snprintf(esc, sizeof(esc), "\\u%04x", ch);
        else {
            esc[0] = (char) ch;
            n = 1;
        }
        if ((ch & 0xC0) != 0x80)
            boundary = pos;
        /* keep room for the closing quote, or for "..." and the quote */
        if (pos + n + sizeof(ellipsis) > size) {
            if ((ch & 0xC0) == 0x80)
                pos = boundary;
            memcpy(dst + pos, ellipsis, sizeof(ellipsis));
            return;
        }
        memcpy(dst + pos, esc, n);
        pos += n;
    }
    dst[pos++] = '"';
    dst[pos] = '\0';
}

void dw_map_file_error(struct dw_map_loader *ld, struct dw_map_file *file, const char *where,
                       const char *fmt, ...)
{
    va_list ap;

    if (file->nerrors == 0)
        ld->nbadfiles++;
    if (file->nerrors >= MAX_ERRORS_PER_FILE) {
        if (file->nerrors == MAX_ERRORS_PER_FILE) {
            dw_buf_printf(&file->errors, "%s: too many errors, the rest of this file is not shown\n",
                          file->display);
            ld->nerrors++;
        }
        file->nerrors++;
        return;
    }
    file->nerrors++;
    ld->nerrors++;
    /* where ":L:C" attaches to the file name (syntax errors); a JSON path follows ": " */
    if (!where)
        dw_buf_printf(&file->errors, "%s: ", file->display);
    else if (where[0] == ':')
        dw_buf_printf(&file->errors, "%s%s: ", file->display, where);
    else
        dw_buf_printf(&file->errors, "%s: %s: ", file->display, where);
    va_start(ap, fmt);
    {
        char msg[2048];

        vsnprintf(msg, sizeof(msg), fmt, ap);
        dw_buf_puts(&file->errors, msg);
    }
    va_end(ap);
    dw_buf_putc(&file->errors, '\n');
    if (dw_buf_failed(&file->errors))
        ld->nomem = true;
}

/* ---- files and folders ---- */

/* The path as shown in messages: control characters escaped so lines stay lines. */
static void put_display(struct dw_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char) *s;

        if (ch < 0x20 || ch == 0x7f)
            dw_buf_printf(b, "\\x%02x", ch);
        else
            dw_buf_putc(b, (char) ch);
    }
}

static char *display_name(struct dw_map_loader *ld, const char *dir, const char *name)
{
    struct dw_buf b;
    char *s = NULL;

    dw_buf_init(&b);
    if (dir) {
        size_t len = strlen(dir);

        put_display(&b, dir);
        if (len == 0 || dir[len - 1] != '/')
            dw_buf_putc(&b, '/');
    }
    put_display(&b, name);
    if (!dw_buf_failed(&b))
        s = dw_arena_strdup(ld->arena, b.data ? b.data : "");
    dw_buf_cleanup(&b);
    if (!s)
        ld->nomem = true;
    return s;
}

/* Add a file record; readable says whether there is a file to read (else only errors). */
static struct dw_map_file *add_file(struct dw_map_loader *ld, size_t *cap, char ***real_paths,
                                    const char *dir, const char *name, bool readable)
{
    struct dw_map_file *f;
    char *real = NULL;

    if (ld->nfiles == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        struct dw_map_file *nf = realloc(ld->files, ncap * sizeof(*nf));
        char **np;

        if (!nf) {
            ld->nomem = true;
            return NULL;
        }
        ld->files = nf;
        np = realloc(*real_paths, ncap * sizeof(*np));
        if (!np) {
            ld->nomem = true;
            return NULL;
        }
        *real_paths = np;
        *cap = ncap;
    }
    if (readable) {
        size_t dl = dir ? strlen(dir) : 0, nl = strlen(name);

        real = dw_arena_alloc(&ld->paths, dl + nl + 2);
        if (!real) {
            ld->nomem = true;
            return NULL;
        }
        if (dir) {
            memcpy(real, dir, dl);
            real[dl] = '/';
            memcpy(real + dl + 1, name, nl + 1);
        } else
            memcpy(real, name, nl + 1);
    }
    f = &ld->files[ld->nfiles];
    memset(f, 0, sizeof(*f));
    dw_buf_init(&f->errors);
    f->display = display_name(ld, dir, name);
    if (!f->display)
        return NULL;
    (*real_paths)[ld->nfiles++] = real;
    return f;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

static bool is_map_file_name(const char *name)
{
    size_t len = strlen(name);

    /* hidden files are editor leftovers, not maps */
    return name[0] != '.' && len > 5 && strcmp(name + len - 5, ".json") == 0;
}

/* A folder: its regular *.json files, sorted by name. */
static void add_dir(struct dw_map_loader *ld, size_t *cap, char ***real_paths, const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, ncap = 0;
    struct dw_map_file *f;

    if (!d) {
        int e = errno;

        if (e == ENOMEM) {
            ld->nomem = true;
            return;
        }
        if ((f = add_file(ld, cap, real_paths, NULL, path, false)))
            dw_map_file_error(ld, f, NULL, "could not open directory: %s", strerror(e));
        return;
    }
    while ((de = readdir(d))) {
        struct stat st;
        char *full;
        size_t plen = strlen(path), nlen;

        if (!is_map_file_name(de->d_name))
            continue;
        nlen = strlen(de->d_name);
        full = malloc(plen + nlen + 2);
        if (!full) {
            ld->nomem = true;
            break;
        }
        snprintf(full, plen + nlen + 2, "%s/%s", path, de->d_name);
        /* follows symbolic links: a linked map file is a map file */
        if (stat(full, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(full);
            continue;
        }
        free(full);
        if (n == ncap) {
            size_t c2 = ncap ? ncap * 2 : 16;
            char **nn = realloc(names, c2 * sizeof(*nn));

            if (!nn) {
                ld->nomem = true;
                break;
            }
            names = nn;
            ncap = c2;
        }
        if (!(names[n] = dw_arena_strdup(&ld->paths, de->d_name))) {
            ld->nomem = true;
            break;
        }
        n++;
    }
    closedir(d);
    if (n == 0 && !ld->nomem) {
        if ((f = add_file(ld, cap, real_paths, NULL, path, false)))
            dw_map_file_error(ld, f, NULL, "directory contains no table map files (*.json)");
    }
    if (n > 0)
        qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n && !ld->nomem; i++)
        add_file(ld, cap, real_paths, path, names[i], true);
    free(names);
}

static void add_path(struct dw_map_loader *ld, size_t *cap, char ***real_paths, const char *path)
{
    struct stat st;
    struct dw_map_file *f;

    if (stat(path, &st) != 0) {
        int e = errno;

        if (e == ENOMEM) {
            ld->nomem = true;
            return;
        }
        if ((f = add_file(ld, cap, real_paths, NULL, path, false)))
            dw_map_file_error(ld, f, NULL, "could not open: %s", strerror(e));
        return;
    }
    if (S_ISDIR(st.st_mode))
        add_dir(ld, cap, real_paths, path);
    else
        add_file(ld, cap, real_paths, NULL, path, true);
}

/* Whole file into a NUL-terminated buffer; *len excludes the NUL. */
static char *read_file(struct dw_map_loader *ld, struct dw_map_file *f, const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *data = NULL;
    size_t got = 0;

    if (fd < 0) {
        if (errno == ENOMEM)
            ld->nomem = true;
        else
            dw_map_file_error(ld, f, NULL, "could not open file: %s", strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0) {
        dw_map_file_error(ld, f, NULL, "could not read file: %s", strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        dw_map_file_error(ld, f, NULL, "not a regular file");
        goto fail;
    }
    if ((unsigned long long) st.st_size > MAX_FILE_BYTES) {
        dw_map_file_error(ld, f, NULL, "file is too large (%lld bytes, at most %u)",
                          (long long) st.st_size, MAX_FILE_BYTES);
        goto fail;
    }
    data = malloc((size_t) st.st_size + 1);
    if (!data) {
        ld->nomem = true;
        goto fail;
    }
    /* read up to the size limit, even if the file grew since fstat */
    for (;;) {
        ssize_t r = read(fd, data + got, (size_t) st.st_size - got);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            dw_map_file_error(ld, f, NULL, "could not read file: %s", strerror(errno));
            goto fail;
        }
        if (r == 0 || got + (size_t) r == (size_t) st.st_size) {
            got += (size_t) r;
            break;
        }
        got += (size_t) r;
    }
    close(fd);
    data[got] = '\0';
    *len = got;
    return data;
fail:
    free(data);
    close(fd);
    return NULL;
}

/* ---- text checks and parsing ---- */

static void line_col(const char *data, size_t pos, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < pos; i++) {
        if (data[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char) data[i] & 0xC0) != 0x80)
            (*col)++;   /* columns count characters, not bytes */
    }
}

static void syntax_error(struct dw_map_loader *ld, struct dw_map_file *f, const char *data,
                         size_t pos, const char *fmt, ...) DW_PRINTF(5, 6);
static void syntax_error(struct dw_map_loader *ld, struct dw_map_file *f, const char *data,
                         size_t pos, const char *fmt, ...)
{
    size_t line, col;
    char where[64], msg[512];
    va_list ap;

    line_col(data, pos, &line, &col);
    snprintf(where, sizeof(where), ":%zu:%zu", line, col);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dw_map_file_error(ld, f, where, "%s", msg);
}

static void load_file(struct dw_map_loader *ld, struct dw_map_file *f, const char *path)
{
    size_t len, off = 0, pos;
    char *data = read_file(ld, f, path, &len);
    char msg[256];
    const char *end = NULL;
    cJSON *root;

    if (!data)
        return;
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        off = 3;    /* a byte order mark, as some editors write */
    if (!dw_map_syntax_check(data + off, len - off, &pos, msg, sizeof(msg))) {
        syntax_error(ld, f, data + off, pos, "%s", msg);
        free(data);
        return;
    }
    /* the length includes the NUL: cJSON wants it when it must see the end */
    root = cJSON_ParseWithLengthOpts(data + off, len - off + 1, &end, 1);
    if (!root) {
        /* the syntax pass accepts nothing cJSON rejects: it ran out of memory */
        ld->nomem = true;
        free(data);
        return;
    }
    free(data);
    dw_map_validate_file(ld, f, root);
    cJSON_Delete(root);
}

/* ---- the set ---- */

void dw_mapset_free(struct dw_mapset *set)
{
    if (!set)
        return;
    if (set->index) {
        dw_arena_cleanup(&set->index->arena);
        free(set->index);
    }
    free(set);
}

static char *join_errors(struct dw_map_loader *ld)
{
    struct dw_buf all;

    dw_buf_init(&all);
    for (size_t i = 0; i < ld->nfiles; i++)
        if (ld->files[i].errors.len)
            dw_buf_append(&all, ld->files[i].errors.data, ld->files[i].errors.len);
    if (dw_buf_failed(&all)) {
        dw_buf_cleanup(&all);
        return NULL;
    }
    return dw_buf_take(&all);
}

dw_errcode dw_mapset_load(const char *const *paths, size_t npaths, struct dw_mapset **out,
                          char **errors, struct dw_error *err)
{
    struct dw_map_loader ld;
    struct dw_mapset *set;
    char **real_paths = NULL;
    size_t cap = 0;
    dw_errcode rc = DW_OK;

    *out = NULL;
    if (errors)
        *errors = NULL;
    if (npaths == 0)
        return dw_error_set(err, DW_ERR_CONFIG, "no table map files given");
    set = calloc(1, sizeof(*set));
    if (!set || !(set->index = calloc(1, sizeof(*set->index)))) {
        free(set);
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
    dw_arena_init(&set->index->arena, 16384);
    memset(&ld, 0, sizeof(ld));
    ld.arena = &set->index->arena;
    dw_arena_init(&ld.scratch, 4096);
    dw_arena_init(&ld.paths, 4096);

    for (size_t i = 0; i < npaths && !ld.nomem; i++)
        add_path(&ld, &cap, &real_paths, paths[i]);
    for (size_t i = 0; i < ld.nfiles && !ld.nomem; i++) {
        if (real_paths[i])
            load_file(&ld, &ld.files[i], real_paths[i]);
        dw_arena_reset(&ld.scratch);
        ld.files[i].map.file = ld.files[i].display;
    }
    if (!ld.nomem)
        dw_map_validate_set(&ld);

    if (ld.nomem) {
        rc = dw_error_set(err, DW_ERR_NOMEM, "out of memory while loading table maps");
    } else if (ld.nerrors > 0) {
        char *text = join_errors(&ld);
        const char *nl;

        rc = dw_error_set(err, DW_ERR_CONFIG, "cannot load table maps: %zu error%s in %zu file%s",
                          ld.nerrors, ld.nerrors == 1 ? "" : "s", ld.nbadfiles,
                          ld.nbadfiles == 1 ? "" : "s");
        if (text && (nl = strchr(text, '\n')))
            dw_error_detail(err, "%.*s", (int) (nl - text), text);
        if (errors)
            *errors = text;
        else
            free(text);
    } else {
        size_t n = ld.nfiles;

        set->maps = dw_arena_zalloc(ld.arena, (n ? n : 1) * sizeof(*set->maps));
        if (!set->maps)
            rc = dw_error_set(err, DW_ERR_NOMEM, "out of memory while loading table maps");
        else {
            for (size_t i = 0; i < n; i++)
                set->maps[i] = ld.files[ld.order[i]].map;
            set->nmaps = n;
            rc = dw_map_index_build(set, err);
        }
    }

    for (size_t i = 0; i < ld.nfiles; i++)
        dw_buf_cleanup(&ld.files[i].errors);
    free(ld.files);
    free(real_paths);
    free(ld.order);
    dw_arena_cleanup(&ld.scratch);
    dw_arena_cleanup(&ld.paths);
    if (rc != DW_OK) {
        dw_mapset_free(set);
        return rc;
    }
    *out = set;
    return DW_OK;
}
