/*
 * builder.h - what builder.c (the setters) and builder_frame.c (the frame
 * as a struct pa_frame: encode, check, and import from msgpack) share:
 * the representation of a panelagent_frame under construction.  Internal.
 */
#ifndef PANELAGENT_BUILDER_H
#define PANELAGENT_BUILDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <panelproto/frame.h>
#include "internal.h"

#define NONE UINT32_MAX

/* Levels of the stream tree. */
enum { L_VHOST, L_APP, L_INST, L_STREAM, N_LEVELS };

/* "vhosts", "apps", ... (the wire keys) and what an error calls them. */
extern const char *const pa_bld_level_key[N_LEVELS];
extern const char *const pa_bld_level_what[N_LEVELS];

/* A vhost, app, instance or stream; the counters only for streams. */
struct tnode {
    char *name;
    uint32_t parent;     /* index one level up; NONE for vhosts */
    uint32_t pos;        /* index among its siblings */
    uint32_t n_children; /* nodes one level down */
    uint64_t viewers, bitrate, bytes_in, bytes_out;
};

/* A config value.  The root map is implicit (parent NONE). */
struct cnode {
    char *name; /* key in a map; NULL in an array */
    uint32_t parent;
    uint32_t pos;
    uint32_t n_children;
    enum pa_cval_type type;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double f;
        char *s;
    } v;
};

/* Open addressing over node indices, keyed by (parent, name).  slot holds
 * index + 1, 0 is empty; cap is a power of two, at most half full. */
struct htab {
    uint32_t *slot;
    uint32_t cap;
    uint32_t n;
};

/* How to read (parent, name) of entry i of a node array. */
struct keyview {
    const char *base;
    size_t stride;
};

struct panelagent_frame {
    const struct pa_allocator *mem; /* NULL: the C library */
    struct pa_frame_limits lim;
    char err[256];

    bool has_server, has_load, has_traffic;
    char *server_name, *server_version;
    int kind;
    struct pa_ip *ips;
    uint32_t n_ips, cap_ips;
    uint64_t ts_ms;
    double cpu;
    uint64_t ram_used, ram_total;
    uint64_t t_in, t_out, t_period;

    struct tnode *lv[N_LEVELS];
    uint32_t n_lv[N_LEVELS], cap_lv[N_LEVELS];
    struct htab h_lv[N_LEVELS];

    struct pa_conn *conns;
    uint32_t n_conns, cap_conns;

    struct cnode *cfg;
    uint32_t n_cfg, cap_cfg;
    uint32_t root_children;
    struct htab h_cfg;
    uint32_t open[PA_LIMIT_MAX_DEPTH + 1]; /* open containers, innermost last */
    uint32_t n_open;
};

/* ---- builder.c: shared helpers ---------------------------------------------- */

/* Records the reason of a failure in f->err and returns |code|. */
int pa_bld_ferr(panelagent_frame *f, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int pa_bld_nomem(panelagent_frame *f);
/* |arr| with room for |need| elements (the same pointer when it has it), or
 * NULL with |arr| untouched. */
void *pa_bld_grow(const struct pa_allocator *m, void *arr, uint32_t *cap, uint32_t need,
                  size_t elsize);
char *pa_bld_xstrdup(const struct pa_allocator *m, const char *s);
/* Room for one more node at level L; then pa_bld_level_commit cannot fail.
 * 0 or -1 (ENOMEM). */
int pa_bld_level_reserve(panelagent_frame *f, int L);
uint32_t pa_bld_level_commit(panelagent_frame *f, int L, uint32_t parent, char *name);
/* One config value under the innermost open container (a container is
 * opened too); |s| is the string of a PA_CV_STR. */
int pa_bld_cfg_add(panelagent_frame *f, const char *key, const struct cnode *v, const char *s);
int pa_bld_add_server_ip(panelagent_frame *f, const struct pa_ip *ip);

#endif /* PANELAGENT_BUILDER_H */
