/*
 * ctl_pki_cmd.c - panelgatectl's PKI commands: ca init, cert gateway and
 * cert agent (the panel CA, the gateway's server identity, an agent
 * identity that is not registered).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ctl.h"

#define CA_DAYS 3650u

/* ------------------------------------------------------------ ca init */

int cmd_ca_init(struct ctl *c)
{
    char err[1024], kp[PATH_BUF], cp[PATH_BUF];
    int rv = ctl_ca_paths(c, kp, cp);
    if (rv != EX_OK)
        return rv;
    if (ctl_exists(kp) || ctl_exists(cp))
        return ctl_fail("a CA already exists in %s (%s): refusing to replace it", c->pki,
                        ctl_exists(kp) ? kp : cp);
    if ((rv = ctl_need_rng(c)) != EX_OK)
        return rv;
    enum pki_key_type kt = (c->given & BIT(O_RSA)) ? PKI_KEY_RSA_3072 : PKI_KEY_EC_P256;
    if (pki_ca_init(c->pki, c->val[O_CN], kt, c->days ? c->days : CA_DAYS, &c->rng, err,
                    sizeof err) != 0)
        return ctl_fail("%s", err);
    struct crtinfo ci;
    if (ctl_file_describe(cp, &ci) != 0)
        return ctl_fail("%s: written but cannot be read back", cp);
    if (c->json) {
        cJSON *o = ctl_crt_json(&ci, cp);
        cJSON_AddStringToObject(o, "dir", c->pki);
        cJSON_AddStringToObject(o, "key", kp);
        cJSON_AddStringToObject(o, "key_type", kt == PKI_KEY_RSA_3072 ? "rsa3072" : "p256");
        ctl_json_print(o);
        cJSON_Delete(o);
    } else {
        printf("CA created in %s\n", c->pki);
        ctl_crt_text("certificate", &ci, cp);
        printf("  %-12s %s (0600; keep it offline or at least private)\n", "key", kp);
    }
    return EX_OK;
}

/* ------------------------------------------------------------ cert gateway, cert agent */

int cmd_cert_gateway(struct ctl *c)
{
    char kp[PATH_BUF], cp[PATH_BUF], err[1024];
    unsigned char *pem = NULL;
    struct pki_ca ca;
    struct subject s;
    int rv;

    if (c->n_dns + c->n_ip == 0)
        return ctl_usage_err(c->cmd, "cert gateway: give at least one --dns NAME or --ip ADDR");
    if (ctl_join(kp, sizeof kp, c->pki, "gateway.key") != 0 ||
        ctl_join(cp, sizeof cp, c->pki, "gateway.crt") != 0)
        return ctl_fail("%s: path too long", c->pki);
    memset(&ca, 0, sizeof ca);
    ctl_subject_init(&s);
    if ((rv = ctl_need_ca(c, &ca)) != EX_OK)
        goto out;
    if (ctl_exists(kp)) {
        rv = ctl_fail("%s already exists: refusing to overwrite a private key (move it away to "
                      "make a new gateway identity)",
                      kp);
        goto out;
    }
    if (ctl_have_reg(c) && (rv = ctl_need_reg(c, true)) != EX_OK)
        goto out;
    if ((rv = ctl_subject_make(c, &s, NULL)) != EX_OK)
        goto out;
    pem = calloc(1, PEM_BUF);
    if (pem == NULL) {
        rv = ctl_fail("out of memory");
        goto out;
    }
    struct pki_issue req = {
        .profile = PKI_PROFILE_SERVER,
        .common_name = c->val[O_CN] ? c->val[O_CN] : (c->n_dns ? c->dns[0] : c->ip[0]),
        .n_dns = c->n_dns,
        .n_ip = c->n_ip,
        .days = c->days ? c->days : LEAF_DAYS,
    };
    memcpy(req.dns, c->dns, sizeof req.dns);
    memcpy(req.ip, c->ip, sizeof req.ip);
    if (pki_issue(&ca, &req, s.pk, &c->rng, pem, PEM_BUF, err, sizeof err) != 0) {
        rv = ctl_fail("%s", err);
        goto out;
    }
    struct written w = {0};
    snprintf(w.key, sizeof w.key, "%s", kp);
    snprintf(w.crt, sizeof w.crt, "%s", cp);
    struct crtinfo ci;
    if ((rv = ctl_write_recorded(c, &w, &s, pem, "server", &ci)) != EX_OK)
        goto out;
    if (c->json) {
        cJSON *o = ctl_crt_json(&ci, cp);
        cJSON_AddStringToObject(o, "key", kp);
        cJSON *d = cJSON_AddArrayToObject(o, "dns");
        for (unsigned i = 0; i < c->n_dns; i++)
            cJSON_AddItemToArray(d, cJSON_CreateString(c->dns[i]));
        d = cJSON_AddArrayToObject(o, "ip");
        for (unsigned i = 0; i < c->n_ip; i++)
            cJSON_AddItemToArray(d, cJSON_CreateString(c->ip[i]));
        ctl_json_print(o);
        cJSON_Delete(o);
    } else {
        printf("gateway certificate issued\n");
        ctl_crt_text("certificate", &ci, cp);
        printf("  %-12s %s (0600)\n", "key", kp);
        printf("  %-12s", "names");
        for (unsigned i = 0; i < c->n_dns; i++)
            printf(" DNS:%s", c->dns[i]);
        for (unsigned i = 0; i < c->n_ip; i++)
            printf(" IP:%s", c->ip[i]);
        printf("\n");
    }
    rv = EX_OK;
out:
    free(pem);
    ctl_subject_free(&s);
    pki_ca_free(&ca);
    return rv;
}

int cmd_cert_agent(struct ctl *c)
{
    const char *name = c->pos[0];
    const char *csr = c->val[O_CSR];
    unsigned char *pem = NULL;
    struct pki_ca ca;
    struct subject s;
    struct written w;
    int rv;

    if ((rv = ctl_check_name(c, name)) != EX_OK)
        return rv;
    memset(&ca, 0, sizeof ca);
    ctl_subject_init(&s);
    if ((rv = ctl_need_ca(c, &ca)) != EX_OK || (rv = ctl_agent_paths(c, name, &w)) != EX_OK ||
        (rv = ctl_refuse_existing(&w, csr == NULL, name)) != EX_OK)
        goto out;
    if (ctl_have_reg(c) && (rv = ctl_need_reg(c, true)) != EX_OK)
        goto out;
    struct crtinfo ci;
    if ((rv = ctl_issue_agent(c, &ca, name, &s, csr, &pem)) != EX_OK ||
        (rv = ctl_write_recorded(c, &w, &s, pem, "client", &ci)) != EX_OK)
        goto out;
    if (c->json) {
        cJSON *o = ctl_crt_json(&ci, w.crt);
        ctl_json_add_key(o, &s, &w);
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddBoolToObject(o, "registered", false);
        ctl_json_print(o);
        cJSON_Delete(o);
    } else {
        printf("agent certificate issued for %s (not registered)\n", name);
        ctl_crt_text("certificate", &ci, w.crt);
        if (s.generated)
            printf("  %-12s %s (0600)\n", "key", w.key);
        else
            printf("  %-12s stays on the agent host (signed from %s)\n", "key", csr);
    }
    rv = EX_OK;
out:
    free(pem);
    ctl_subject_free(&s);
    pki_ca_free(&ca);
    return rv;
}
