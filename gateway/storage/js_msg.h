/*
 * js_msg.h - the JetStream message contract (docs/STORAGE.md), both ways:
 * making the message of one frame (the gateway's engine), and reading one
 * back (the Panelgate-* headers, Nats-Msg-Id, the subject, and the stored
 * body, gw_stored_decode, whose seq and ts must be the headers').
 *
 * Shared by every consumer of the stream: panelgate-store (which then
 * writes the frame) and `panelgatectl tail` (which prints it), so that
 * both refuse exactly the same messages for the same reasons.  Pure
 * besides reading the message: no I/O, no logging.
 */
#ifndef GW_JS_MSG_H
#define GW_JS_MSG_H

#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>
#include <panelproto/arena.h>
#include <panelproto/frame.h>

#include "err.h"
#include "privacy.h"

struct gw_config;

/* The value of the Panelgate-Format header this contract describes. */
#define GW_JS_FORMAT "1"

/* One message, read.  body points into the message (valid while it
 * lives); frame and viewers.aggs into the caller's arena. */
struct gw_js_msg {
    int64_t server_id;   /* Panelgate-Server-Id, > 0 */
    uint64_t seq;        /* Panelgate-Seq */
    uint64_t ts_ms;      /* Panelgate-Ts-Ms */
    int64_t received_ms; /* Panelgate-Received-Ms */
    const uint8_t *body; /* the stored body, as published */
    size_t body_len;
    struct pa_frame *frame;    /* the body decoded */
    struct gw_viewers viewers; /* its buckets */
};

/* The message of one frame on subject <|prefix|>.<server_id>: the stored
 * body |body| (copied) with the contract's headers.  NATS_OK and *out
 * (the caller's), or a libnats status (*out NULL). */
natsStatus gw_js_msg_make(const char *prefix, int64_t server_id, uint64_t seq, uint64_t ts_ms,
                          int64_t received_ms, const uint8_t *body, size_t body_len,
                          natsMsg **out);

/* Reads |m| (a message of the stream of |cfg|: its subject prefix and
 * [frame] limits).  Returns 0 and fills *out; GW_EINVAL when the message
 * breaks the contract, with the reason in why (header and field names,
 * never a value); GW_ENOMEM when memory or the arena ran out (not the
 * message's fault). */
int gw_js_msg_read(const struct gw_config *cfg, natsMsg *m, struct pa_arena *a,
                   struct gw_js_msg *out, char *why, size_t whylen);

/* The stream sequence of a message delivered by a consumer, or 0 when it
 * has no JetStream metadata. */
uint64_t gw_js_msg_stream_seq(natsMsg *m);

#endif /* GW_JS_MSG_H */
