/*
 * frame_encode.c - canonical encoder of the v1 stats frame, on msgpack-c's
 * packer (which already picks the shortest integer forms).
 */
#include <msgpack.h>
#include <string.h>

#include <panelproto/frame.h>

struct enc {
    msgpack_packer pk;
    int failed;
};

static int write_cb(void *data, const char *buf, size_t len)
{
    return pa_buf_append(data, buf, len);
}

/* msgpack-c's pack calls return 0 or the write callback's -1; remember any
 * failure and keep going, the result is discarded anyway. */
#define P(e, call)                                                                     \
    do {                                                                               \
        if ((call) != 0)                                                               \
            (e)->failed = 1;                                                           \
    } while (0)

static void put_str(struct enc *e, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    P(e, msgpack_pack_str(&e->pk, n));
    P(e, msgpack_pack_str_body(&e->pk, s ? s : "", n));
}

/* A key of the schema, a string literal shorter than 32 bytes: its fixstr
 * header and bytes in one append, its length known at compile time (the
 * same bytes msgpack_pack_str and _str_body write, with one call and no
 * strlen instead of two calls and a strlen). */
static void put_keyn(struct enc *e, const char *k, size_t n)
{
    uint8_t b[32];

    b[0] = (uint8_t)(0xa0u | n);
    memcpy(b + 1, k, n);
    P(e, pa_buf_append(e->pk.data, b, n + 1));
}

#define put_key(e, k)                                                                      \
    do {                                                                                   \
        _Static_assert(sizeof(k) <= 32, "a schema key is a fixstr");                       \
        put_keyn((e), "" k, sizeof(k) - 1);                                                \
    } while (0)

static void put_ip(struct enc *e, const struct pa_ip *ip)
{
    /* an unset family becomes an empty bin, which validation refuses */
    size_t n = ip->family == 4 ? 4 : ip->family == 6 ? 16 : 0;
    P(e, msgpack_pack_bin(&e->pk, n));
    P(e, msgpack_pack_bin_body(&e->pk, ip->addr, n));
}

#define put_kv_u64(e, k, v)                                                                \
    do {                                                                                   \
        put_key(e, k);                                                                     \
        P((e), msgpack_pack_uint64(&(e)->pk, (v)));                                        \
    } while (0)

static void put_cval(struct enc *e, const struct pa_cval *v, unsigned depth)
{
    if (depth > PA_LIMIT_MAX_DEPTH) {
        /* cannot be valid anyway; keep the encoder's own stack bounded */
        e->failed = 1;
        return;
    }
    switch (v->type) {
    case PA_CV_NIL:
        P(e, msgpack_pack_nil(&e->pk));
        break;
    case PA_CV_BOOL:
        P(e, v->v.b ? msgpack_pack_true(&e->pk) : msgpack_pack_false(&e->pk));
        break;
    case PA_CV_INT:
        P(e, msgpack_pack_int64(&e->pk, v->v.i));
        break;
    case PA_CV_UINT:
        P(e, msgpack_pack_uint64(&e->pk, v->v.u));
        break;
    case PA_CV_FLOAT:
        P(e, msgpack_pack_double(&e->pk, v->v.f));
        break;
    case PA_CV_STR:
        put_str(e, v->v.s);
        break;
    case PA_CV_ARRAY:
        P(e, msgpack_pack_array(&e->pk, v->v.arr.n));
        for (uint32_t i = 0; i < v->v.arr.n; i++)
            put_cval(e, &v->v.arr.items[i], depth + 1);
        break;
    case PA_CV_MAP:
        P(e, msgpack_pack_map(&e->pk, v->v.map.n));
        for (uint32_t i = 0; i < v->v.map.n; i++) {
            put_str(e, v->v.map.kv[i].key);
            put_cval(e, &v->v.map.kv[i].val, depth + 1);
        }
        break;
    default:
        e->failed = 1;
    }
}

static void put_stream(struct enc *e, const struct pa_stream *s)
{
    P(e, msgpack_pack_map(&e->pk, 5));
    put_key(e, "name");
    put_str(e, s->name);
    put_kv_u64(e, "viewers", s->viewers);
    put_kv_u64(e, "bitrate", s->bitrate);
    put_kv_u64(e, "in", s->bytes_in);
    put_kv_u64(e, "out", s->bytes_out);
}

static void put_instance(struct enc *e, const struct pa_instance *in)
{
    P(e, msgpack_pack_map(&e->pk, in->n_streams ? 2 : 1));
    put_key(e, "name");
    put_str(e, in->name);
    if (in->n_streams) {
        put_key(e, "streams");
        P(e, msgpack_pack_array(&e->pk, in->n_streams));
        for (uint32_t i = 0; i < in->n_streams; i++)
            put_stream(e, &in->streams[i]);
    }
}

static void put_app(struct enc *e, const struct pa_app *app)
{
    P(e, msgpack_pack_map(&e->pk, app->n_instances ? 2 : 1));
    put_key(e, "name");
    put_str(e, app->name);
    if (app->n_instances) {
        put_key(e, "instances");
        P(e, msgpack_pack_array(&e->pk, app->n_instances));
        for (uint32_t i = 0; i < app->n_instances; i++)
            put_instance(e, &app->instances[i]);
    }
}

static void put_vhost(struct enc *e, const struct pa_vhost *vh)
{
    P(e, msgpack_pack_map(&e->pk, vh->n_apps ? 2 : 1));
    put_key(e, "name");
    put_str(e, vh->name);
    if (vh->n_apps) {
        put_key(e, "apps");
        P(e, msgpack_pack_array(&e->pk, vh->n_apps));
        for (uint32_t i = 0; i < vh->n_apps; i++)
            put_app(e, &vh->apps[i]);
    }
}

/* Absent: a zero-initialised (nil) or empty map.  Anything else is
 * encoded, so a non-map config is caught by validation. */
static bool has_config(const struct pa_frame *f)
{
    if (f->config.type == PA_CV_NIL)
        return false;
    return f->config.type != PA_CV_MAP || f->config.v.map.n > 0;
}

int pa_frame_encode(const struct pa_frame *f, struct pa_buf *out)
{
    return pa_frame_encode_flags(f, out, 0);
}

int pa_frame_encode_flags(const struct pa_frame *f, struct pa_buf *out, unsigned flags)
{
    bool with_ip = !(flags & PA_ENCODE_NO_VIEWER_IPS);
    bool with_conns = f && f->n_conns > 0 && !(flags & PA_ENCODE_NO_CONNS);
    struct enc e = {.failed = 0};
    size_t len0;

    if (!f || !out)
        return PA_FE_ARG;
    len0 = out->len;
    msgpack_packer_init(&e.pk, out, write_cb);

    /* at most PA_ENCODE_MAX_TOP_KEYS: always a fixmap (see frame.h) */
    P(&e, msgpack_pack_map(&e.pk, 6u + has_config(f) + (f->n_vhosts > 0) + with_conns));
    put_kv_u64(&e, "v", f->version);
    put_kv_u64(&e, "seq", f->seq);
    put_kv_u64(&e, "ts", f->ts_ms);

    put_key(&e, "server");
    P(&e, msgpack_pack_map(&e.pk, f->server.n_ips ? 4 : 3));
    put_key(&e, "name");
    put_str(&e, f->server.name);
    if (f->server.n_ips) {
        put_key(&e, "ips");
        P(&e, msgpack_pack_array(&e.pk, f->server.n_ips));
        for (uint32_t i = 0; i < f->server.n_ips; i++)
            put_ip(&e, &f->server.ips[i]);
    }
    put_key(&e, "kind");
    put_str(&e, pa_agent_kind_name(f->server.kind));
    put_key(&e, "version");
    put_str(&e, f->server.version);

    put_key(&e, "load");
    P(&e, msgpack_pack_map(&e.pk, 3));
    put_key(&e, "cpu");
    P(&e, msgpack_pack_double(&e.pk, f->load.cpu_pct));
    put_kv_u64(&e, "ram_used", f->load.ram_used);
    put_kv_u64(&e, "ram_total", f->load.ram_total);

    put_key(&e, "traffic");
    P(&e, msgpack_pack_map(&e.pk, 3));
    put_kv_u64(&e, "in", f->traffic.bytes_in);
    put_kv_u64(&e, "out", f->traffic.bytes_out);
    put_kv_u64(&e, "period_ms", f->traffic.period_ms);

    if (has_config(f)) {
        put_key(&e, "config");
        put_cval(&e, &f->config, 0);
    }
    if (f->n_vhosts) {
        put_key(&e, "vhosts");
        P(&e, msgpack_pack_array(&e.pk, f->n_vhosts));
        for (uint32_t i = 0; i < f->n_vhosts; i++)
            put_vhost(&e, &f->vhosts[i]);
    }
    if (with_conns) {
        put_key(&e, "conns");
        P(&e, msgpack_pack_array(&e.pk, f->n_conns));
        for (uint32_t i = 0; i < f->n_conns; i++) {
            const struct pa_conn *c = &f->conns[i];
            P(&e, msgpack_pack_map(&e.pk, with_ip ? 3 : 2));
            if (with_ip) {
                put_key(&e, "ip");
                put_ip(&e, &c->ip);
            }
            put_kv_u64(&e, "in", c->bytes_in);
            put_kv_u64(&e, "out", c->bytes_out);
        }
    }

    if (e.failed) {
        out->len = len0;
        return PA_FE_NOMEM;
    }
    return 0;
}

int pa_frame_encode_checked(const struct pa_frame *f, const struct pa_frame_limits *lim,
                            struct pa_buf *out, struct pa_frame_error *err)
{
    struct pa_arena a;
    struct pa_frame *back;
    size_t len0;
    int rv;

    if (!f || !out)
        return PA_FE_ARG;
    len0 = out->len;
    if ((rv = pa_frame_encode(f, out)) != 0) {
        if (err) {
            memset(err, 0, sizeof *err);
            err->code = rv;
            strcpy(err->msg, "out of memory while encoding");
        }
        return rv;
    }
    pa_arena_init(&a, 0, out->mem);
    rv = pa_frame_decode(out->data + len0, out->len - len0, lim, &a, &back, err);
    pa_arena_cleanup(&a);
    if (rv != 0)
        out->len = len0;
    return rv;
}
