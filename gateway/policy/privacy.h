/*
 * privacy.h - the privacy reduction: a frame's viewer connections become
 * aggregates per (country, ASN); no viewer IP survives it.
 *
 * The panel's promise (docs/PRIVACY.md): viewer IPs are used only for geo
 * and ASN statistics, then dropped.  gw_privacy_reduce() turns the decoded
 * connections into a sorted list of buckets (connections, bytes in, bytes
 * out); gw_privacy_encode() writes the stored form of a frame: the frame
 * without "conns", plus "viewers" (docs/OPERATIONS.md section 6).
 *
 * Pure: no sockets, no globals, no logging.  The MaxMind-format databases
 * (libmaxminddb, memory-mapped) are opened once and read-only afterwards.
 *
 * Buckets (stable; stored, so append only):
 *   cc "XP", asn 0    the address is not public: private (10/8, 172.16/12,
 *                     192.168/16, fc00::/7), shared/CGNAT (100.64/10),
 *                     loopback, link-local, unspecified, multicast,
 *                     reserved (0/8, 192.0.0/24, 240/4, IPv6 outside
 *                     2000::/3).  Never looked up.
 *   cc "ZZ"           public, but the country database has no country
 *                     for it
 *   cc "--"           no country database is configured
 *   asn 0             no ASN known (no ASN database, or not in it)
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is handled as the IPv4
 * address.  Documentation and benchmarking ranges count as public: real
 * databases do not map them (so they come out "ZZ"/0), test databases do.
 */
#ifndef GW_PRIVACY_H
#define GW_PRIVACY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <panelproto/arena.h>
#include <panelproto/frame.h>

#include "err.h"

#define GW_CC_PRIVATE "XP"
#define GW_CC_UNKNOWN "ZZ"
#define GW_CC_NONE "--"

/* The opened databases: a country one, an ASN one, either may be absent. */
struct gw_geo;

/* Opens the databases at |country_path| and |asn_path| (NULL or "" = none;
 * both none gives a valid, empty gw_geo).  Returns 0, or GW_EIO /
 * GW_ENOMEM with a reason naming the file in err; *out is NULL on failure. */
int gw_geo_open(struct gw_geo **out, const char *country_path, const char *asn_path,
                char *err, size_t errlen);

/* Accepts NULL. */
void gw_geo_free(struct gw_geo *g);

bool gw_geo_has_country(const struct gw_geo *g);
bool gw_geo_has_asn(const struct gw_geo *g);

/* "country=GeoLite2-Country/2024-05-03 asn=none" (type and build date of
 * each database) into buf; returns buf. */
const char *gw_geo_describe(const struct gw_geo *g, char *buf, size_t n);

/* One bucket. */
struct gw_viewer_agg {
    char cc[3];         /* ISO 3166-1 alpha-2, or "XP", "ZZ", "--"; NUL-ended */
    uint32_t asn;       /* 0 = unknown */
    uint64_t conns;     /* connections */
    uint64_t bytes_in;  /* sums saturate at UINT64_MAX */
    uint64_t bytes_out;
};

struct gw_viewers {
    struct gw_viewer_agg *aggs; /* in the caller's arena; sorted by (cc, asn) */
    uint32_t n;
    uint32_t lookup_errors; /* database errors (corrupt file): counted as unknown */
};

/* True when |ip| is a public address (see the buckets above). */
bool gw_privacy_ip_public(const struct pa_ip *ip);

/* Reduces |n_conns| connections to buckets, looked up in |geo| (NULL = no
 * databases).  Memory: one block of n_conns * sizeof(struct gw_viewer_agg)
 * from |a|, whatever the addresses.  The output holds no address.  Returns
 * 0, or GW_ENOMEM when the arena cannot give that block (*out is then
 * empty). */
int gw_privacy_reduce(const struct gw_geo *geo, const struct pa_conn *conns, uint32_t n_conns,
                      struct pa_arena *a, struct gw_viewers *out);

/* Appends the stored form of |f| to |out|: pa_frame_encode_flags(f,
 * PA_ENCODE_NO_CONNS) plus a "viewers" key (omitted when v->n is 0)
 * holding [{"cc","asn","conns","in","out"}, ...] in |v|'s order, all one
 * msgpack map.  Returns 0, or GW_ENOMEM (|out| keeps its previous
 * length). */
int gw_privacy_encode(const struct pa_frame *f, const struct gw_viewers *v, struct pa_buf *out);

#endif /* GW_PRIVACY_H */
