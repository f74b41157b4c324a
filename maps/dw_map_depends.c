/*
 * Checks that need every map file at once: duplicate map names, "depends_on"
 * naming a map that does not exist, dependency cycles, and the final order of
 * the set (parents before the maps that depend on them, ties broken by name,
 * which is the order initial sync and the engine use).
 *
 * The graph has one node per distinct map name, numbered in name order, so
 * that a min-heap of node numbers yields "smallest name first" in Kahn's
 * algorithm.  A cycle is named in full ("a" -> "b" -> "a") in the file of its
 * first map by name, at the depends_on entry that starts it.
 */
#include "maps/dw_map_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An error at /depends_on/k or /map of one file; names are quoted by the caller. */
static void file_error_at(struct dw_map_loader *ld, size_t f, const char *where, const char *msg)
{
    dw_map_file_error(ld, &ld->files[f], where, "%s", msg);
}

/* The dependency graph: one node per distinct map name, numbered by name order. */
struct graph {
    struct dw_map_loader *ld;
    size_t nnodes;
    size_t *node_file;           /* node -> the file that defines it (the first, if duplicated) */
    size_t *file_node;           /* file -> its node, DW_MAP_NONE if it has no usable name */
    size_t *edge_start;          /* node -> first edge in edges (nnodes + 1 entries) */
    size_t *edges;               /* dependencies of each node, in depends_on order */
    size_t *edge_pos;            /* per edge: index in depends_on, for the JSON path */
    size_t *redge_start;         /* reverse edges: who depends on a node */
    size_t *redges;
    size_t *pending;             /* per node: dependencies not placed yet */
    bool *placed;
    size_t *heap;                /* ready nodes, smallest name first */
    size_t nheap;
};

static const char *file_name(const struct dw_map_loader *ld, size_t f)
{
    return ld->files[f].map.name;
}

struct named_file {
    const char *name;
    size_t file;
};

static int cmp_named(const void *a, const void *b)
{
    const struct named_file *x = a, *y = b;
    int r = strcmp(x->name, y->name);

    return r ? r : (x->file < y->file ? -1 : x->file > y->file);
}

static void heap_push(struct graph *g, size_t v)
{
    size_t i = g->nheap++;

    g->heap[i] = v;
    while (i > 0 && g->heap[(i - 1) / 2] > g->heap[i]) {
        size_t p = (i - 1) / 2, t = g->heap[p];

        g->heap[p] = g->heap[i];
        g->heap[i] = t;
        i = p;
    }
}

static size_t heap_pop(struct graph *g)
{
    size_t top = g->heap[0], i = 0;

    g->heap[0] = g->heap[--g->nheap];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i, t;

        if (l < g->nheap && g->heap[l] < g->heap[m])
            m = l;
        if (r < g->nheap && g->heap[r] < g->heap[m])
            m = r;
        if (m == i)
            break;
        t = g->heap[m];
        g->heap[m] = g->heap[i];
        g->heap[i] = t;
        i = m;
    }
    return top;
}

/* Mark v placed and release the nodes that waited only for it. */
static void place(struct graph *g, size_t v)
{
    g->placed[v] = true;
    for (size_t e = g->redge_start[v]; e < g->redge_start[v + 1]; e++) {
        size_t w = g->redges[e];

        if (--g->pending[w] == 0 && !g->placed[w])
            heap_push(g, w);
    }
}

static size_t find_node(const struct graph *g, const char *name)
{
    size_t lo = 0, hi = g->nnodes;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(file_name(g->ld, g->node_file[mid]), name);

        if (r == 0)
            return mid;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return DW_MAP_NONE;
}

/*
 * Every unplaced node has an unplaced dependency (else it would be placed), so
 * walking such dependencies from any unplaced node must come back to a node
 * already seen: that closes a cycle.  Report it from its first node by name.
 */
static void report_cycle(struct graph *g, size_t start, size_t *walk, size_t *step)
{
    size_t n = 0, v = start, first, best, len;
    struct dw_buf b;
    char name[200];

    for (size_t i = 0; i < g->nnodes; i++)
        step[i] = DW_MAP_NONE;
    while (step[v] == DW_MAP_NONE) {
        size_t next = DW_MAP_NONE;

        step[v] = n;
        walk[n++] = v;
        for (size_t e = g->edge_start[v]; e < g->edge_start[v + 1]; e++)
            if (!g->placed[g->edges[e]]) {
                next = g->edges[e];
                break;
            }
        if (next == DW_MAP_NONE)    /* cannot happen; stay safe */
            return;
        v = next;
    }
    first = step[v];
    len = n - first;
    best = first;
    for (size_t i = first; i < n; i++)
        if (walk[i] < walk[best])
            best = i;

    dw_buf_init(&b);
    dw_buf_puts(&b, "dependency cycle: ");
    for (size_t k = 0; k <= len; k++) {
        size_t node = walk[first + (best - first + k) % len];

        dw_map_quote(name, sizeof(name), file_name(g->ld, g->node_file[node]));
        dw_buf_printf(&b, "%s%s", k ? " -> " : "", name);
    }
    {
        size_t from = walk[best], to = walk[first + (best - first + 1) % len], pos = 0;
        char where[64];

        for (size_t e = g->edge_start[from]; e < g->edge_start[from + 1]; e++)
            if (g->edges[e] == to) {
                pos = g->edge_pos[e];
                break;
            }
        snprintf(where, sizeof(where), "/depends_on/%zu", pos);
        file_error_at(g->ld, g->node_file[from], where,
                      dw_buf_failed(&b) ? "dependency cycle (out of memory)" : b.data);
    }
    dw_buf_cleanup(&b);
    for (size_t i = first; i < n; i++)
        if (!g->placed[walk[i]])
            place(g, walk[i]);
}

static void graph_free(struct graph *g)
{
    free(g->node_file);
    free(g->file_node);
    free(g->edge_start);
    free(g->edges);
    free(g->edge_pos);
    free(g->redge_start);
    free(g->redges);
    free(g->pending);
    free(g->placed);
    free(g->heap);
}

void dw_map_validate_set(struct dw_map_loader *ld)
{
    struct graph g = {.ld = ld};
    size_t nf = ld->nfiles, nnamed = 0, nedges = 0, norder = 0;
    size_t *walk = NULL, *step = NULL, *order = NULL;
    struct named_file *named;

    named = malloc((nf + 1) * sizeof(*named));
    g.node_file = malloc((nf + 1) * sizeof(*g.node_file));
    g.file_node = malloc((nf + 1) * sizeof(*g.file_node));
    if (!named || !g.node_file || !g.file_node)
        goto nomem;

    /* duplicate names: the later file (in load order) gets the error */
    for (size_t f = 0; f < nf; f++) {
        g.file_node[f] = DW_MAP_NONE;
        if (file_name(ld, f)) {
            named[nnamed].name = file_name(ld, f);
            named[nnamed++].file = f;
        }
    }
    qsort(named, nnamed, sizeof(*named), cmp_named);
    for (size_t i = 0; i < nnamed; i++) {
        size_t f = named[i].file;

        if (g.nnodes > 0 && strcmp(file_name(ld, g.node_file[g.nnodes - 1]), file_name(ld, f)) == 0) {
            size_t first = g.node_file[g.nnodes - 1];
            char name[200], msg[1024];

            dw_map_quote(name, sizeof(name), file_name(ld, f));
            snprintf(msg, sizeof(msg), "duplicate table map name %s (also in %s)", name,
                     ld->files[first].display);
            file_error_at(ld, f, "/map", msg);
            continue;
        }
        g.file_node[f] = g.nnodes;
        g.node_file[g.nnodes++] = f;
    }

    /* unknown dependencies; count edges */
    for (size_t f = 0; f < nf; f++) {
        const struct dw_map *m = &ld->files[f].map;

        for (size_t k = 0; k < m->ndepends; k++) {
            if (!m->depends_on[k])
                continue;
            if (find_node(&g, m->depends_on[k]) == DW_MAP_NONE) {
                char name[200], msg[256], where[64];

                dw_map_quote(name, sizeof(name), m->depends_on[k]);
                snprintf(msg, sizeof(msg), "unknown table map %s", name);
                snprintf(where, sizeof(where), "/depends_on/%zu", k);
                file_error_at(ld, f, where, msg);
            } else if (g.file_node[f] != DW_MAP_NONE)
                nedges++;
        }
    }

    /* the graph, forward and reverse */
    g.edge_start = calloc(g.nnodes + 1, sizeof(size_t));
    g.redge_start = calloc(g.nnodes + 2, sizeof(size_t));
    g.edges = malloc((nedges + 1) * sizeof(size_t));
    g.edge_pos = malloc((nedges + 1) * sizeof(size_t));
    g.redges = malloc((nedges + 1) * sizeof(size_t));
    g.pending = calloc(g.nnodes + 1, sizeof(size_t));
    g.placed = calloc(g.nnodes + 1, sizeof(bool));
    g.heap = malloc((g.nnodes + 1) * sizeof(size_t));
    walk = malloc((g.nnodes + 1) * sizeof(size_t));
    step = malloc((g.nnodes + 1) * sizeof(size_t));
    order = malloc((g.nnodes + 1) * sizeof(size_t));
    if (!g.edge_start || !g.redge_start || !g.edges || !g.edge_pos || !g.redges || !g.pending ||
        !g.placed || !g.heap || !walk || !step || !order)
        goto nomem;
    {
        size_t e = 0;

        for (size_t v = 0; v < g.nnodes; v++) {
            const struct dw_map *m = &ld->files[g.node_file[v]].map;

            g.edge_start[v] = e;
            for (size_t k = 0; k < m->ndepends; k++) {
                size_t w = m->depends_on[k] ? find_node(&g, m->depends_on[k]) : DW_MAP_NONE;

                if (w == DW_MAP_NONE)
                    continue;
                g.edges[e] = w;
                g.edge_pos[e++] = k;
                g.pending[v]++;
                g.redge_start[w + 1]++;
            }
        }
        g.edge_start[g.nnodes] = e;
        for (size_t v = 0; v < g.nnodes; v++)
            g.redge_start[v + 1] += g.redge_start[v];
        /* fill reverse edges using pending-free counters (step as scratch) */
        for (size_t v = 0; v < g.nnodes; v++)
            step[v] = g.redge_start[v];
        for (size_t v = 0; v < g.nnodes; v++)
            for (size_t x = g.edge_start[v]; x < g.edge_start[v + 1]; x++)
                g.redges[step[g.edges[x]]++] = v;
    }

    /* Kahn's algorithm, smallest name first among the ready maps */
    for (size_t v = 0; v < g.nnodes; v++)
        if (g.pending[v] == 0)
            heap_push(&g, v);
    for (;;) {
        while (g.nheap > 0) {
            size_t v = heap_pop(&g);

            if (g.placed[v])
                continue;
            order[norder++] = v;
            place(&g, v);
        }
        {
            size_t start = DW_MAP_NONE;

            for (size_t v = 0; v < g.nnodes && start == DW_MAP_NONE; v++)
                if (!g.placed[v])
                    start = v;
            if (start == DW_MAP_NONE)
                break;
            report_cycle(&g, start, walk, step);
        }
    }

    if (ld->nerrors == 0) {
        for (size_t i = 0; i < norder; i++)
            order[i] = g.node_file[order[i]];
        ld->order = order;
        order = NULL;
    }
    goto done;
nomem:
    ld->nomem = true;
done:
    free(named);
    free(walk);
    free(step);
    free(order);
    graph_free(&g);
}
