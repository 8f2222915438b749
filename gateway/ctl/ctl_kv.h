/*
 * ctl_kv.h - panelgatectl's JetStream registry backend (ctl_reg_ops over
 * regkv.h): chosen when --config names a configuration whose [storage]
 * storage_engine is jetstream.  In the panelgatectl program (it needs
 * gw_storage, a layer gw_ctl does not link).
 */
#ifndef GW_CTL_KV_H
#define GW_CTL_KV_H

#include <stdint.h>

#include "config.h"
#include "ctl.h"

/* Takes |cfg| (moved: the caller must not clean it up) and makes the
 * bucket of its [jetstream] c's registry; connects only when a command
 * opens it.  An exit status. */
int ctl_kv_setup(struct ctl *c, struct gw_config *cfg);
void ctl_kv_free(struct ctl *c);

/* The configuration's own SQLite path ([registry] registry_path or
 * [storage] sqlite_path), or NULL. */
const char *ctl_kv_sqlite_path(const struct ctl *c);

/* Server |name|'s id on the bucket, without a message on stderr: 0,
 * GW_ENOTFOUND (no such server, or no registry on the cluster), or
 * another GW_E* with the reason in err. */
int ctl_kv_find_id(struct ctl *c, const char *name, int64_t *id, char *err, size_t errlen);

#endif /* GW_CTL_KV_H */
