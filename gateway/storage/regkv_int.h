/*
 * regkv_int.h - inside regkv (not for other modules): the handle and what
 * regkv.c (open, the registry's records) gives regkv_stream.c (the
 * activity stream, erase, purge).  Functions return 0 or a negative GW_E*
 * with a reason in err, as regkv.h's.
 */
#ifndef GW_REGKV_INT_H
#define GW_REGKV_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

#include "regkv.h"

/* Longest subject or stream name we build. */
#define GW_REGKV_NAME_MAX 256

struct gw_regkv {
    struct gw_js *js;
    jsCtx *jc;
    kvStore *kv;
    char bucket[GW_REGKV_NAME_MAX];
    char kv_stream[GW_REGKV_NAME_MAX + 4]; /* KV_<bucket> */
    char kv_prefix[GW_REGKV_NAME_MAX + 8]; /* $KV.<bucket>. */
    char act_stream[GW_REGKV_NAME_MAX];
    char act_prefix[GW_REGKV_NAME_MAX];
    char frames_stream[GW_REGKV_NAME_MAX];
    char frames_prefix[GW_REGKV_NAME_MAX];
    int64_t wait_ms; /* one API request's timeout */
};

/* A pin index: {"server":name,"id":id}. */
struct pin_idx {
    char server[256];
    int64_t id;
    uint64_t seq;
    int64_t created_ns;
};

/* "jetstream: <what>: <libnats' text>"; GW_ENOMEM or GW_ESTORAGE. */
int gw_regkv_nats_fail(natsStatus s, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A JetStream "no such stream" answer. */
bool gw_regkv_not_found(natsStatus s, jsErrCode jerr);

/* Server |name|'s record (checked: the layout, the name of its key) and
 * the sequence it was written at (|seq| optional); GW_ENOTFOUND naming it. */
int gw_regkv_get_server(struct gw_regkv *k, const char *name, struct gw_regdb_server *s,
                        uint64_t *seq, char *err, size_t errlen);

/* Sets server |name|'s record to status "revoked" by compare-and-set
 * (retried when another writer got there first), writing no activity row;
 * *s gets the record as it is now, *changed whether this call revoked it
 * (false: it was revoked already).  revoke, and the first step of erase. */
int gw_regkv_mark_revoked(struct gw_regkv *k, const char *name, struct gw_regdb_server *s,
                          bool *changed, char *err, size_t errlen);

/* The pin index at |key|; GW_ENOTFOUND when there is none. */
int gw_regkv_get_pin(struct gw_regkv *k, const char *key, struct pin_idx *p, char *err,
                     size_t errlen);

/* Deletes |key| (a purge marker with |purge|, its history gone too). */
int gw_regkv_kv_delete(struct gw_regkv *k, const char *key, bool purge, char *err,
                       size_t errlen);

#endif /* GW_REGKV_INT_H */
