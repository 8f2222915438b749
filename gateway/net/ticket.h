/*
 * ticket.h - session-ticket keys kept in a file: they survive a restart and
 * are shared by the gateways that read the same file.
 *
 * mbedTLS 2.28's own ticket context (ssl_ticket.c) makes its keys at
 * random and offers no way to set them, so this module implements the
 * ticket callbacks the way the library does: AES-256-GCM, a 4-byte key
 * name in clear at the front of the ticket, a random 12-byte IV, the
 * session serialized by mbedtls_ssl_session_save.
 *
 * The file (format in docs/OPERATIONS.md, [tls] ticket_key_file) holds the
 * current key, which encrypts new tickets, and the previous one, still
 * accepted for decryption.  gw_ticket_refresh re-reads it when it changed
 * (another gateway rotated it, or a copy was installed) and rotates it when
 * the current key is older than the ticket lifetime: new current, the old
 * current becomes previous.  A rotation is written to a temporary file and
 * renamed over the key file under flock(2) of "<file>.lock", so gateways on
 * one host sharing the file rotate it once.  A key file without write
 * permission for its owner (mode 0400) is read only, never rotated: a copy
 * distributed to several hosts is rotated where it is made.
 *
 * Threads: the callbacks and gw_ticket_refresh take the context's mutex;
 * file I/O happens outside it.  Key bytes are never logged, and are wiped
 * from memory when replaced or freed.
 */
#ifndef GW_TICKET_H
#define GW_TICKET_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ssl.h>

struct gw_ticket;

typedef int (*gw_ticket_rng_fn)(void *p_rng, unsigned char *out, size_t len);

/* Loads |path| (creating it, mode 0600, with a fresh key when it does not
 * exist) and rotates it when its current key is older than |lifetime_s| at
 * |now_s| (Unix seconds).  Refuses a file that group or others may read or
 * write, and one that does not parse.  Returns 0, or GW_ECONFIG / GW_EIO /
 * GW_ETLS / GW_ENOMEM with the reason in err; *out NULL on failure. */
int gw_ticket_new(struct gw_ticket **out, const char *path, uint32_t lifetime_s,
                  gw_ticket_rng_fn f_rng, void *p_rng, int64_t now_s, char *err, size_t errlen);
void gw_ticket_free(struct gw_ticket *t);

/* Re-reads the file when it changed since the last look (inode, size,
 * mtime), then rotates when the current key is older than the lifetime.
 * *changed (may be NULL) says whether the keys in use changed.  On failure
 * the keys in use stay as they were.  Returns 0 or a GW_E* code with the
 * reason in err. */
int gw_ticket_refresh(struct gw_ticket *t, int64_t now_s, int *changed, char *err,
                      size_t errlen);

/* The current key's name (8 hex digits + NUL) and creation time, for logs:
 * neither is secret (the name is in clear in every ticket). */
void gw_ticket_current(struct gw_ticket *t, char name_hex[9], int64_t *created_s);

/* mbedTLS callbacks (mbedtls_ssl_conf_session_tickets_cb), p_ticket being a
 * struct gw_ticket *. */
mbedtls_ssl_ticket_write_t gw_ticket_write;
mbedtls_ssl_ticket_parse_t gw_ticket_parse;

#endif /* GW_TICKET_H */
