/*
 * admin.h - the admin listener ([admin] listen): GET /metrics (Prometheus
 * text) and GET /healthz, plain HTTP/1.1 on libevent's evhttp, on the
 * gateway's event loop.  Bound to loopback by default; it serves nothing
 * else and reads no request body.
 */
#ifndef GW_ADMIN_H
#define GW_ADMIN_H

#include <stddef.h>

#include "err.h"

struct gw_app;
struct gw_admin;

/* Binds [admin] listen of app->cfg (nothing when it is off: *out NULL,
 * returns 0).  Logs "admin_listening" with the bound address and port.
 * Returns 0 or a GW_E* code (GW_EIO: cannot listen; GW_ENOMEM) with a
 * reason in err. */
int gw_admin_new(struct gw_admin **out, struct gw_app *app, char *err, size_t errlen);

/* The port bound: the configured one, or the one the system picked for
 * port 0 (fuzz/fuzz_gw_admin.c talks to it); 0 for NULL. */
unsigned gw_admin_port(const struct gw_admin *a);

/* NULL is allowed. */
void gw_admin_free(struct gw_admin *a);

/* Takes the snapshot /metrics and /healthz answer from (loop thread). */
struct gw_metrics;
void gw_admin_snapshot(struct gw_app *app, struct gw_metrics *m);

#endif /* GW_ADMIN_H */
