/*
 * internal.h - what the parts of libpanelagent share and nothing else sees.
 *
 *   builder.c   panelagent_frame_* (the frame builder)
 *   pa_config.c panelagent_config_* (struct panelagent_config below)
 *   client.c    panelagent_client_* (queue, delivery, callbacks, stats)
 *   transport.c one TLS + HTTP/2 connection to the gateway (client.c's)
 *   seqstore.c  seq that only goes up, across restarts
 *   keygen.c    panelagent_keygen
 *   version.c   panelagent_version, panelagent_strerror, panelagent_free
 *
 * Nothing here is exported: the linker version script keeps only
 * panelagent_* global.
 */
#ifndef PANELAGENT_INTERNAL_H
#define PANELAGENT_INTERNAL_H

#include <stdint.h>

#include <panelproto/arena.h>
#include "panelagent.h"

/* ---- builder.c ----------------------------------------------------------------
 * Encodes |f| canonically with |seq|, and with ts = |now_ms| when the frame
 * has no time of its own, appending to |out|; validates the result exactly
 * as the gateway does (pa_frame_encode_checked).  PANELAGENT_OK,
 * PANELAGENT_EFRAME (reason in err), PANELAGENT_ENOMEM.  Does not change
 * |f|'s content. */
int pa_builder_encode(panelagent_frame *f, uint64_t seq, uint64_t now_ms, struct pa_buf *out,
                      char *err, size_t errlen);

/* A frame whose memory comes from |mem| (NULL = the C library), for
 * allocation-failure tests.  |mem| must outlive the frame. */
int pa_builder_frame_new_with(panelagent_frame **out, const struct pa_allocator *mem);

/* Copies at most n-1 bytes of a formatted message into err (when err is
 * not NULL and n > 0), always NUL-terminated. */
void pa_seterr(char *err, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* PANELAGENT_INTERNAL_H */
