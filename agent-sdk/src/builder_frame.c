/*
 * builder_frame.c - a panelagent_frame as a struct pa_frame: pa_builder_encode,
 * panelagent_frame_check/encode, and the other way round,
 * panelagent_frame_new_msgpack (builder.h has the representation).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "builder.h"

/* ---- struct pa_frame ---------------------------------------------------------------- */

/* Start of each node's children in the next level's array: prefix sums. */
static uint32_t *child_starts(struct pa_arena *a, const struct tnode *nodes, uint32_t n)
{
    uint32_t *st = pa_arena_calloc(a, n ? n : 1, sizeof *st);
    if (st == NULL)
        return NULL;
    uint32_t sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        st[i] = sum;
        sum += nodes[i].n_children;
    }
    return st;
}

static int build_tree(const panelagent_frame *f, struct pa_arena *a, struct pa_frame *pf)
{
    const struct tnode *vh = f->lv[L_VHOST], *ap = f->lv[L_APP], *in = f->lv[L_INST],
                       *st = f->lv[L_STREAM];
    uint32_t nv = f->n_lv[L_VHOST], na = f->n_lv[L_APP], ni = f->n_lv[L_INST],
             ns = f->n_lv[L_STREAM];

    if (nv == 0)
        return 0;
    struct pa_vhost *V = pa_arena_calloc(a, nv, sizeof *V);
    struct pa_app *A = pa_arena_calloc(a, na ? na : 1, sizeof *A);
    struct pa_instance *I = pa_arena_calloc(a, ni ? ni : 1, sizeof *I);
    struct pa_stream *S = pa_arena_calloc(a, ns ? ns : 1, sizeof *S);
    uint32_t *app0 = child_starts(a, vh, nv), *inst0 = child_starts(a, ap, na),
             *str0 = child_starts(a, in, ni);
    if (!V || !A || !I || !S || !app0 || !inst0 || !str0)
        return -1;
    for (uint32_t i = 0; i < nv; i++)
        V[i] = (struct pa_vhost){vh[i].name, A + app0[i], vh[i].n_children};
    for (uint32_t i = 0; i < na; i++)
        A[app0[ap[i].parent] + ap[i].pos] =
            (struct pa_app){ap[i].name, I + inst0[i], ap[i].n_children};
    for (uint32_t i = 0; i < ni; i++)
        I[inst0[in[i].parent] + in[i].pos] =
            (struct pa_instance){in[i].name, S + str0[i], in[i].n_children};
    for (uint32_t i = 0; i < ns; i++)
        S[str0[st[i].parent] + st[i].pos] = (struct pa_stream){
            st[i].name, st[i].viewers, st[i].bitrate, st[i].bytes_in, st[i].bytes_out};
    pf->vhosts = V;
    pf->n_vhosts = nv;
    return 0;
}

/* Children of a container: the root's in root, node i's in kids[i]. */
static int build_config(const panelagent_frame *f, struct pa_arena *a, struct pa_frame *pf)
{
    pf->config.type = PA_CV_MAP;
    if (f->n_cfg == 0)
        return 0;
    void **kids = pa_arena_calloc(a, f->n_cfg, sizeof *kids);
    struct pa_ckv *root = pa_arena_calloc(a, f->root_children, sizeof *root);
    if (!kids || !root)
        return -1;
    for (uint32_t i = 0; i < f->n_cfg; i++) {
        const struct cnode *c = &f->cfg[i];
        if (c->type == PA_CV_MAP)
            kids[i] = pa_arena_calloc(a, c->n_children, sizeof(struct pa_ckv));
        else if (c->type == PA_CV_ARRAY)
            kids[i] = pa_arena_calloc(a, c->n_children, sizeof(struct pa_cval));
        else
            continue;
        if (kids[i] == NULL)
            return -1;
    }
    for (uint32_t i = 0; i < f->n_cfg; i++) {
        const struct cnode *c = &f->cfg[i];
        struct pa_cval *val;
        if (c->parent == NONE) {
            root[c->pos].key = c->name;
            val = &root[c->pos].val;
        } else if (f->cfg[c->parent].type == PA_CV_MAP) {
            struct pa_ckv *kv = kids[c->parent];
            kv[c->pos].key = c->name;
            val = &kv[c->pos].val;
        } else {
            val = (struct pa_cval *)kids[c->parent] + c->pos;
        }
        val->type = c->type;
        switch (c->type) {
        case PA_CV_BOOL: val->v.b = c->v.b; break;
        case PA_CV_INT: val->v.i = c->v.i; break;
        case PA_CV_UINT: val->v.u = c->v.u; break;
        case PA_CV_FLOAT: val->v.f = c->v.f; break;
        case PA_CV_STR: val->v.s = c->v.s; break;
        case PA_CV_ARRAY:
            val->v.arr.items = kids[i];
            val->v.arr.n = c->n_children;
            break;
        case PA_CV_MAP:
            val->v.map.kv = kids[i];
            val->v.map.n = c->n_children;
            break;
        default: break;
        }
    }
    pf->config.v.map.kv = root;
    pf->config.v.map.n = f->root_children;
    return 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int pa_builder_encode(panelagent_frame *f, uint64_t seq, uint64_t now, struct pa_buf *out,
                      char *err, size_t errlen)
{
    struct pa_frame pf;
    struct pa_frame_error fe;
    struct pa_arena a;
    const char *missing = NULL;
    int rv = PANELAGENT_EINTERNAL;

    if (f == NULL || out == NULL) {
        pa_seterr(err, errlen, "invalid argument");
        return PANELAGENT_EINVAL;
    }
    if (!f->has_server)
        missing = "server: missing (panelagent_frame_set_server)";
    else if (!f->has_load)
        missing = "load: missing (panelagent_frame_set_load)";
    else if (!f->has_traffic)
        missing = "traffic: missing (panelagent_frame_set_traffic)";
    if (missing) {
        pa_seterr(err, errlen, "%s", missing);
        return pa_bld_ferr(f, PANELAGENT_EFRAME, "%s", missing);
    }

    memset(&pf, 0, sizeof pf);
    pf.version = PA_PROTOCOL_VERSION;
    pf.seq = seq;
    pf.ts_ms = f->ts_ms ? f->ts_ms : now;
    pf.server.name = f->server_name;
    pf.server.ips = f->ips;
    pf.server.n_ips = f->n_ips;
    pf.server.kind = (enum pa_agent_kind)f->kind;
    pf.server.version = f->server_version;
    pf.load.cpu_pct = f->cpu;
    pf.load.ram_used = f->ram_used;
    pf.load.ram_total = f->ram_total;
    pf.traffic.bytes_in = f->t_in;
    pf.traffic.bytes_out = f->t_out;
    pf.traffic.period_ms = f->t_period;
    pf.conns = f->conns;
    pf.n_conns = f->n_conns;

    pa_arena_init(&a, 0, f->mem);
    if (build_tree(f, &a, &pf) != 0 || build_config(f, &a, &pf) != 0) {
        pa_seterr(err, errlen, "out of memory");
        rv = pa_bld_nomem(f);
        goto out;
    }
    rv = pa_frame_encode_checked(&pf, &f->lim, out, &fe);
    if (rv == PA_FE_NOMEM) {
        pa_seterr(err, errlen, "out of memory");
        rv = pa_bld_nomem(f);
    } else if (rv != 0) {
        char text[sizeof fe.path + sizeof fe.msg + 8];
        pa_frame_error_format(&fe, text, sizeof text);
        pa_seterr(err, errlen, "%s", text);
        rv = pa_bld_ferr(f, PANELAGENT_EFRAME, "%s", text);
    } else {
        rv = PANELAGENT_OK;
    }
out:
    pa_arena_cleanup(&a);
    return rv;
}

int panelagent_frame_check(panelagent_frame *f)
{
    struct pa_buf b;

    if (f == NULL)
        return PANELAGENT_EINVAL;
    pa_buf_init(&b, f->mem);
    int rv = pa_builder_encode(f, 1, now_ms(), &b, NULL, 0);
    pa_buf_cleanup(&b);
    return rv;
}

int panelagent_frame_encode(panelagent_frame *f, uint64_t seq, uint8_t **out, size_t *len)
{
    struct pa_buf b;

    if (out)
        *out = NULL;
    if (len)
        *len = 0;
    if (f == NULL || out == NULL || len == NULL)
        return f ? pa_bld_ferr(f, PANELAGENT_EINVAL, "encode: NULL output") : PANELAGENT_EINVAL;
    if (seq == 0)
        return pa_bld_ferr(f, PANELAGENT_EINVAL, "seq: must be >= 1");
    /* the C library's allocator: the caller frees with panelagent_free */
    pa_buf_init(&b, NULL);
    int rv = pa_builder_encode(f, seq, now_ms(), &b, NULL, 0);
    if (rv != PANELAGENT_OK) {
        pa_buf_cleanup(&b);
        return rv;
    }
    *out = b.data;
    *len = b.len;
    return PANELAGENT_OK;
}

/* ---- from msgpack -------------------------------------------------------------------- */

static int import_node(panelagent_frame *f, int L, uint32_t parent, const char *name,
                       uint32_t *idx)
{
    char *copy;
    if (pa_bld_level_reserve(f, L) != 0 || (copy = pa_bld_xstrdup(f->mem, name)) == NULL)
        return -1;
    *idx = pa_bld_level_commit(f, L, parent, copy);
    return 0;
}

static int import_tree(panelagent_frame *f, const struct pa_frame *pf)
{
    uint32_t v, a, i, s;

    for (uint32_t vi = 0; vi < pf->n_vhosts; vi++) {
        const struct pa_vhost *V = &pf->vhosts[vi];
        if (import_node(f, L_VHOST, NONE, V->name, &v) != 0)
            return -1;
        for (uint32_t ai = 0; ai < V->n_apps; ai++) {
            const struct pa_app *A = &V->apps[ai];
            if (import_node(f, L_APP, v, A->name, &a) != 0)
                return -1;
            for (uint32_t ii = 0; ii < A->n_instances; ii++) {
                const struct pa_instance *I = &A->instances[ii];
                if (import_node(f, L_INST, a, I->name, &i) != 0)
                    return -1;
                for (uint32_t si = 0; si < I->n_streams; si++) {
                    const struct pa_stream *S = &I->streams[si];
                    if (import_node(f, L_STREAM, i, S->name, &s) != 0)
                        return -1;
                    f->lv[L_STREAM][s].viewers = S->viewers;
                    f->lv[L_STREAM][s].bitrate = S->bitrate;
                    f->lv[L_STREAM][s].bytes_in = S->bytes_in;
                    f->lv[L_STREAM][s].bytes_out = S->bytes_out;
                }
            }
        }
    }
    return 0;
}

/* Adds |v| under the innermost open container through cfg_add (the decoder
 * already applied every limit, so only ENOMEM can fail); recursion depth is
 * bounded by max_depth. */
static int import_cval(panelagent_frame *f, const char *key, const struct pa_cval *v)
{
    struct cnode n = {.type = v->type};
    const char *s = NULL;
    int rv;

    switch (v->type) {
    case PA_CV_BOOL: n.v.b = v->v.b; break;
    case PA_CV_INT: n.v.i = v->v.i; break;
    case PA_CV_UINT: n.v.u = v->v.u; break;
    case PA_CV_FLOAT: n.v.f = v->v.f; break;
    case PA_CV_STR: s = v->v.s; break;
    default: break;
    }
    if ((rv = pa_bld_cfg_add(f, key, &n, s)) != 0)
        return rv;
    if (v->type == PA_CV_MAP) {
        for (uint32_t k = 0; k < v->v.map.n; k++)
            if ((rv = import_cval(f, v->v.map.kv[k].key, &v->v.map.kv[k].val)) != 0)
                return rv;
        f->n_open--;
    } else if (v->type == PA_CV_ARRAY) {
        for (uint32_t k = 0; k < v->v.arr.n; k++)
            if ((rv = import_cval(f, NULL, &v->v.arr.items[k])) != 0)
                return rv;
        f->n_open--;
    }
    return 0;
}

static int import_frame(panelagent_frame *f, const struct pa_frame *pf)
{
    int rv;

    if ((rv = panelagent_frame_set_server(f, pf->server.name, (int)pf->server.kind,
                                          pf->server.version)) != 0)
        return rv;
    for (uint32_t k = 0; k < pf->server.n_ips; k++)
        if ((rv = pa_bld_add_server_ip(f, &pf->server.ips[k])) != 0)
            return rv;
    f->ts_ms = pf->ts_ms;
    if ((rv = panelagent_frame_set_load(f, pf->load.cpu_pct, pf->load.ram_used,
                                        pf->load.ram_total)) != 0 ||
        (rv = panelagent_frame_set_traffic(f, pf->traffic.bytes_in, pf->traffic.bytes_out,
                                           pf->traffic.period_ms)) != 0)
        return rv;
    if (import_tree(f, pf) != 0)
        return PANELAGENT_ENOMEM;
    if (pf->n_conns > 0) {
        struct pa_conn *c = pa_bld_grow(f->mem, f->conns, &f->cap_conns, pf->n_conns, sizeof *c);
        if (c == NULL)
            return PANELAGENT_ENOMEM;
        f->conns = c;
        memcpy(c, pf->conns, (size_t)pf->n_conns * sizeof *c);
        f->n_conns = pf->n_conns;
    }
    if (pf->config.type == PA_CV_MAP)
        for (uint32_t k = 0; k < pf->config.v.map.n; k++)
            if ((rv = import_cval(f, pf->config.v.map.kv[k].key,
                                  &pf->config.v.map.kv[k].val)) != 0)
                return rv;
    return PANELAGENT_OK;
}

int panelagent_frame_new_msgpack(panelagent_frame **out, const uint8_t *buf, size_t len,
                                 char *err, size_t errlen)
{
    struct pa_frame_limits lim;
    struct pa_frame_error fe;
    struct pa_frame *pf = NULL;
    struct pa_arena a;
    panelagent_frame *f = NULL;
    int rv;

    if (out)
        *out = NULL;
    if (out == NULL || (buf == NULL && len > 0)) {
        pa_seterr(err, errlen, "invalid argument");
        return PANELAGENT_EINVAL;
    }
    pa_frame_limits_default(&lim);
    pa_arena_init(&a, lim.max_arena_bytes, NULL);
    rv = pa_frame_decode(buf, len, &lim, &a, &pf, &fe);
    if (rv == PA_FE_NOMEM) {
        pa_seterr(err, errlen, "out of memory");
        rv = PANELAGENT_ENOMEM;
        goto out;
    }
    if (rv != 0) {
        char text[sizeof fe.path + sizeof fe.msg + 8];
        pa_frame_error_format(&fe, text, sizeof text);
        pa_seterr(err, errlen, "%s", text);
        rv = PANELAGENT_EFRAME;
        goto out;
    }
    if ((rv = panelagent_frame_new(&f)) != 0 || (rv = import_frame(f, pf)) != 0) {
        /* the decoder applied every rule the setters check: only ENOMEM */
        pa_seterr(err, errlen, "%s", f && f->err[0] ? f->err : "out of memory");
        if (rv != PANELAGENT_ENOMEM)
            rv = PANELAGENT_EINTERNAL;
        panelagent_frame_free(f);
        goto out;
    }
    *out = f;
    rv = PANELAGENT_OK;
out:
    pa_arena_cleanup(&a);
    return rv;
}
