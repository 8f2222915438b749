/*
 * panelgatectl - the gateway's admin tool: the panel CA and certificates
 * (pki.h), the registry of servers and the activity log, on the SQLite file
 * the gateway uses (regdb.h) or, with a JetStream engine's --config, on the
 * cluster's registry bucket and activity stream (regkv.h, ctl_kv.c); and
 * `tail`, which follows the JetStream engine's frames stream.
 *
 *   panelgatectl [--db FILE | --config FILE] [--pki DIR] [--actor NAME] [--json]
 *                COMMAND [ARGS]
 *
 * Exit status: 0 success, 1 failure (the reason on stderr), 64 bad usage.
 * Every change to the registry is one transaction with its activity rows;
 * the gateway picks it up by polling meta.registry_generation (or SIGHUP).
 * Private keys are written to files (0600) and never printed.
 *
 * This file: main, the global options, the command table, dispatch and
 * help.  The commands are in ctl_*_cmd.c, what they share in ctl.h.
 */
#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <mbedtls/version.h>
#include <sqlite3.h>

#include "config.h"
#include "ctl.h"
#include "ctl_kv.h"

#ifndef PANELGATE_VERSION
#define PANELGATE_VERSION "0.1.0"
#endif

/* ------------------------------------------------------------ options */

static const struct {
    const char *name;
    bool arg;
    bool multi;
} optdefs[O_COUNT] = {
    [O_DB] = {"db", true, false},         [O_CONFIG] = {"config", true, false},
    [O_PKI] = {"pki", true, false},       [O_ACTOR] = {"actor", true, false},
    [O_JSON] = {"json", false, false},    [O_HELP] = {"help", false, false},
    [O_VERSION] = {"version", false, false},
    [O_CN] = {"cn", true, false},         [O_DAYS] = {"days", true, false},
    [O_RSA] = {"rsa", false, false},      [O_DNS] = {"dns", true, true},
    [O_IP] = {"ip", true, true},          [O_KIND] = {"kind", true, false},
    [O_CSR] = {"csr", true, false},       [O_CERT] = {"cert", true, false},
    [O_OVERLAP] = {"overlap", true, false}, [O_SERVER] = {"server", true, false},
    [O_ACTION] = {"action", true, false}, [O_SINCE] = {"since", true, false},
    [O_UNTIL] = {"until", true, false},   [O_LIMIT] = {"limit", true, false},
    [O_OLDER_THAN] = {"older-than", true, false}, [O_FORMAT] = {"format", true, false},
    [O_OUT] = {"out", true, false},       [O_FORCE] = {"force", false, false},
    [O_YES] = {"yes", false, false},
    [O_FROM_START] = {"from-start", false, false}, [O_LAST] = {"last", true, false},
    [O_NUM] = {"count", true, false},
};

/* ------------------------------------------------------------ the commands */

static const struct cmd commands[] = {
    {"ca", "init", cmd_ca_init, BIT(O_CN) | BIT(O_DAYS) | BIT(O_RSA), 0, 0,
     "ca init [--cn CN] [--days N] [--rsa]",
     "Creates the panel CA in the PKI directory: ca.key (0600), ca.crt and serial (the\n"
     "next serial number). P-256 ECDSA, or RSA-3072 with --rsa; CN 'panelgate panel CA'\n"
     "and 3650 days unless given. Refuses to replace an existing CA."},
    {"cert", "gateway", cmd_cert_gateway, BIT(O_DNS) | BIT(O_IP) | BIT(O_DAYS) | BIT(O_CN), 0, 0,
     "cert gateway --dns NAME... --ip ADDR... [--cn CN] [--days N]",
     "Issues the gateway's server certificate: PKI/gateway.key (0600) and gateway.crt,\n"
     "serverAuth, with each --dns and --ip (repeat them) as subject alternative names;\n"
     "825 days unless given. Refuses to overwrite an existing gateway.key. With --db or\n"
     "--config, records cert_issued in the activity log."},
    {"cert", "agent", cmd_cert_agent, BIT(O_CSR) | BIT(O_DAYS), 1, 1,
     "cert agent NAME [--csr FILE] [--days N]",
     "Issues an agent (clientAuth) certificate PKI/agents/NAME.crt, with a new key\n"
     "PKI/agents/NAME.key (0600), or for the key of a CSR made on the agent host. Does\n"
     "not register anything (see register --cert)."},
    {"register", NULL, cmd_register, BIT(O_KIND) | BIT(O_CSR) | BIT(O_CERT) | BIT(O_DAYS), 1, 1,
     "register NAME --kind nimble|wowza [--csr FILE | --cert FILE] [--days N]",
     "Registers server NAME and pins its public key (SHA-256 of the SPKI). By default\n"
     "makes PKI/agents/NAME.key (0600) and NAME.crt; --csr signs a CSR made on the agent\n"
     "host (the private key never leaves it) and writes NAME.crt only; --cert pins the\n"
     "key of an existing certificate without issuing one."},
    {"rotate", NULL, cmd_rotate, BIT(O_CSR) | BIT(O_OVERLAP) | BIT(O_DAYS), 1, 1,
     "rotate NAME [--csr FILE] [--overlap DURATION] [--days N]",
     "Issues NAME a new certificate for a new key (generated, or from --csr) and pins it.\n"
     "The previous pins stay valid for the overlap (default 7d; 30s, 15m, 12h, 7d), then\n"
     "are refused. The previous files are kept as PKI/agents/NAME.<serial>.crt/.key."},
    {"revoke", NULL, cmd_revoke, 0, 1, 1, "revoke NAME",
     "Revokes server NAME: its next handshake is refused (certificate_revoked) and its\n"
     "open connections are closed when the gateway picks the change up."},
    {"list", NULL, cmd_list, 0, 0, 0, "list",
     "Lists the registered servers: name, kind, status, creation time, number of pins and\n"
     "the current pin (--json: every field, full fingerprints)."},
    {"show", NULL, cmd_show, 0, 1, 1, "show NAME",
     "Shows one server: every field, its pins with their creation and expiry times, its\n"
     "certificate in the PKI directory when there is one, and its last 10 activity rows."},
    {"activity", NULL, cmd_activity,
     BIT(O_SERVER) | BIT(O_ACTION) | BIT(O_SINCE) | BIT(O_UNTIL) | BIT(O_LIMIT), 0, 0,
     "activity [--server NAME] [--action A] [--since T] [--until T] [--limit N]",
     "Prints the activity log, oldest first: time, actor, action, server, details (JSON).\n"
     "T is Unix seconds, YYYY-MM-DD (a whole day for --until), YYYY-MM-DDTHH:MM:SSZ, or a\n"
     "duration ago (30s, 15m, 12h, 7d). --limit N keeps the newest N rows. Actions:\n"
     "register, rotate, revoke, cert_issued, handshake_refused, reload, disconnected,\n"
     "purge, export, erase, import_registry (and the gateway's rate-limit rows)."},
    {"purge", NULL, cmd_purge, BIT(O_OLDER_THAN), 0, 0, "purge --older-than DURATION",
     "Deletes every frame received longer ago than DURATION (30s, 15m, 12h, 30d; 0:\n"
     "every frame received before now), in chunks of 5000 rows per transaction. One\n"
     "purge row, written with the first chunk and updated with each, counts what is\n"
     "deleted (\"complete\": false when the purge did not finish). The gateway does the\n"
     "same by itself with [storage] retention_days."},
    {"export", NULL, cmd_export, BIT(O_FORMAT) | BIT(O_OUT) | BIT(O_FORCE), 1, 1,
     "export NAME [--format json|msgpack] [--out FILE [--force]]",
     "Writes everything stored for server NAME as one document: {\"server\", \"pins\",\n"
     "\"frames\" (seq, ts_ms, received_ms, reported_name, frame), \"activity\"}. json (the\n"
     "default) decodes each stored frame; msgpack embeds it as stored. --out FILE is\n"
     "created 0600 and must not exist yet; --force replaces an existing regular file\n"
     "(a new 0600 file renamed over it). A symbolic link is never followed. Records\n"
     "export."},
    {"erase", NULL, cmd_erase, BIT(O_YES), 1, 1, "erase NAME --yes",
     "Deletes server NAME for good: its frames, pins, activity rows and registration,\n"
     "in one transaction; its next handshake is refused. Leaves one erase row (the\n"
     "name and counts). Without --yes it refuses (exit 64). Export first if needed."},
    {"tail", NULL, cmd_tail,
     BIT(O_FROM_START) | BIT(O_SINCE) | BIT(O_LAST) | BIT(O_NUM) | BIT(O_SERVER), 0, 0,
     "tail [--from-start | --since T | --last N] [--count N] [--server NAME|ID]",
     "Follows the JetStream engine's frames stream (needs --config: its [jetstream]) as a\n"
     "panel consumer would, and prints one JSON object per frame on stdout: stream_seq,\n"
     "server_id, seq, ts_ms, received_ms (the message's headers) and frame (the stored\n"
     "body, decoded as export decodes it). New frames only, unless --from-start (the\n"
     "whole stream), --since T (stored in the stream at or after T: Unix seconds,\n"
     "YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or a duration ago) or --last N (the newest N,\n"
     "then new ones). --server keeps one server's frames (a registered NAME, or the\n"
     "numeric ID). A message that breaks the message contract is one line on stderr\n"
     "(its stream sequence and why) and is skipped. Exits 0 after --count N frames, or\n"
     "on SIGINT/SIGTERM; without --count it follows for ever. It reads through an\n"
     "ephemeral ordered consumer: nothing is acknowledged, the store's durable consumer\n"
     "is not touched, and nothing stays on the server after it exits."},
    {"import-registry", NULL, cmd_import_registry, 0, 0, 0,
     "import-registry --config JSCONF --db FILE",
     "Copies the servers and pins of the SQLite registry FILE into the registry bucket\n"
     "of JSCONF (a configuration with storage_engine = jetstream), keeping every id,\n"
     "status, time and pin (the 8 newest of a server), and sets next_id to the last id\n"
     "FILE handed out. Only into a bucket that has handed out no id yet; one that\n"
     "stopped half way is run again. Writes one import_registry activity row. The\n"
     "activity log and the frames stay in FILE."},
};

static const struct cmd *cmd_table(size_t *n)
{
    *n = sizeof commands / sizeof commands[0];
    return commands;
}

/* ------------------------------------------------------------ help */

static void print_cmd_usage(FILE *f, const struct cmd *cmd)
{
    fprintf(f, "usage: panelgatectl [global options] %s\n\n%s\n", cmd->synopsis, cmd->help);
}

static void print_usage(FILE *f)
{
    fputs("usage: panelgatectl [global options] COMMAND [ARGS]\n"
          "\n"
          "The panel's PKI, the registry of servers and the activity log; tail follows\n"
          "the JetStream engine's frames stream.\n"
          "\n"
          "Global options (before or after the command):\n"
          "  --db FILE       the gateway's SQLite file (its [storage] sqlite_path, or\n"
          "                  [registry] registry_path when that is set)\n"
          "  --config FILE   read that path from the gateway's configuration file (and,\n"
          "                  for tail, its [jetstream] section). With [storage]\n"
          "                  storage_engine = jetstream, the registry commands work on\n"
          "                  the cluster's registry bucket and activity stream instead,\n"
          "                  and --db names a panelgate-store's database (export's\n"
          "                  frames)\n"
          "  --pki DIR       the PKI directory (default $PANELGATE_PKI, else ./pki)\n"
          "  --actor NAME    who is acting, for the activity log (default $SUDO_USER,\n"
          "                  else the OS user)\n"
          "  --json          machine-readable output\n"
          "  --help, --version\n"
          "\n"
          "Commands:\n",
          f);
    size_t n;
    const struct cmd *cmds = cmd_table(&n);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "  %s\n", cmds[i].synopsis);
    fputs("\n'panelgatectl COMMAND --help' describes one command.\n"
          "Exit status: 0 success, 1 failure, 64 bad usage.\n",
          f);
}

/* ------------------------------------------------------------ main */

static int set_actor(struct ctl *c)
{
    const char *a = c->val[O_ACTOR];
    char buf[64];
    if (a == NULL) {
        const char *su = getenv("SUDO_USER");
        if (su != NULL && *su != '\0') {
            a = su;
        } else {
            struct passwd *pw = getpwuid(geteuid());
            if (pw != NULL && pw->pw_name != NULL && *pw->pw_name != '\0') {
                a = pw->pw_name;
            } else {
                snprintf(buf, sizeof buf, "uid:%u", (unsigned)geteuid());
                a = buf;
            }
        }
    }
    size_t n = strlen(a);
    if (n == 0 || n >= sizeof c->actor)
        return ctl_usage_err(c->cmd, "bad --actor: 1 to %zu characters", sizeof c->actor - 1);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)a[i] < 0x20 || a[i] == 0x7f)
            return ctl_usage_err(c->cmd, "bad --actor: control characters");
    memcpy(c->actor, a, n + 1);
    return EX_OK;
}

/* The registry backend: --config with storage_engine = jetstream is the
 * cluster's bucket and stream (--db then names a panelgate-store's
 * database, for export's frames); else the SQLite file of --db, or the
 * one --config names. */
static int set_db(struct ctl *c)
{
    char err[1024];
    c->reg = &ctl_sqlite_reg;
    if (c->val[O_DB] != NULL &&
        snprintf(c->db_path, sizeof c->db_path, "%s", c->val[O_DB]) >= (int)sizeof c->db_path)
        return ctl_usage_err(c->cmd, "--db: path too long");
    if (c->val[O_CONFIG] == NULL)
        return EX_OK;
    struct gw_config cfg;
    memset(&cfg, 0, sizeof cfg);
    int rv = EX_OK;
    if (gw_config_defaults(&cfg) != 0) {
        rv = ctl_fail("out of memory");
    } else if (gw_config_load(&cfg, c->val[O_CONFIG], err, sizeof err) != 0) {
        rv = ctl_fail("%s", err);
    } else if (gw_config_is_jetstream(&cfg)) {
        if (cfg.js_servers == NULL || *cfg.js_servers == '\0')
            rv = ctl_fail("%s: [jetstream] servers: required, and not set", c->val[O_CONFIG]);
        else
            return ctl_kv_setup(c, &cfg); /* takes cfg */
    } else if (c->val[O_DB] == NULL) {
        const char *p = cfg.registry_path ? cfg.registry_path : cfg.sqlite_path;
        if (p == NULL || *p == '\0')
            rv = ctl_fail("%s: no [storage] sqlite_path", c->val[O_CONFIG]);
        else
            snprintf(c->db_path, sizeof c->db_path, "%s", p);
    }
    gw_config_cleanup(&cfg);
    return rv;
}

static int find_opt(const char *name, size_t len)
{
    for (int i = 0; i < O_COUNT; i++)
        if (strlen(optdefs[i].name) == len && strncmp(optdefs[i].name, name, len) == 0)
            return i;
    return -1;
}

static void version(void)
{
    printf("panelgatectl %s (mbedTLS %s, SQLite %s, cJSON %s)\n", PANELGATE_VERSION,
           MBEDTLS_VERSION_STRING, sqlite3_libversion(), cJSON_Version());
}

static int run(int argc, char **argv)
{
    struct ctl c;
    const char *words[16];
    unsigned n_words = 0;
    bool only_pos = false;
    int rv;

    memset(&c, 0, sizeof c);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            if (n_words == sizeof words / sizeof words[0])
                return ctl_usage_err(NULL, "too many arguments");
            words[n_words++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (strcmp(a, "-h") == 0)
            a = "--help";
        else if (strcmp(a, "-V") == 0)
            a = "--version";
        if (a[1] != '-')
            return ctl_usage_err(NULL, "unknown option '%s'", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        int o = find_opt(name, eq ? (size_t)(eq - name) : strlen(name));
        if (o < 0)
            return ctl_usage_err(NULL, "unknown option '%s'", a);
        const char *v = NULL;
        if (optdefs[o].arg) {
            if (eq != NULL)
                v = eq + 1;
            else if (i + 1 < argc)
                v = argv[++i];
            else
                return ctl_usage_err(NULL, "option --%s needs a value", optdefs[o].name);
        } else if (eq != NULL) {
            return ctl_usage_err(NULL, "option --%s takes no value", optdefs[o].name);
        }
        if (optdefs[o].multi) {
            /* repeated: --dns a --dns b */
            const char **arr = o == O_DNS ? c.dns : c.ip;
            unsigned *n = o == O_DNS ? &c.n_dns : &c.n_ip;
            if (*n == PKI_MAX_SANS)
                return ctl_usage_err(NULL, "at most %d --%s values", PKI_MAX_SANS,
                                     optdefs[o].name);
            arr[(*n)++] = v;
        } else if (c.given & BIT(o)) {
            return ctl_usage_err(NULL, "option --%s given twice", optdefs[o].name);
        }
        c.given |= BIT(o);
        c.val[o] = v;
    }

    if (c.given & BIT(O_VERSION)) {
        version();
        return EX_OK;
    }
    if (n_words == 0) {
        if (c.given & BIT(O_HELP)) {
            print_usage(stdout);
            return EX_OK;
        }
        print_usage(stderr);
        return EX_USAGE;
    }
    if (strcmp(words[0], "help") == 0) {
        if (n_words == 1) {
            print_usage(stdout);
            return EX_OK;
        }
        words[0] = words[1];
        words[1] = n_words > 2 ? words[2] : NULL;
        n_words = n_words > 2 ? 2 : 1;
        c.given |= BIT(O_HELP);
    }
    bool family = false;
    size_t n_cmds;
    const struct cmd *cmds = cmd_table(&n_cmds);
    for (size_t i = 0; i < n_cmds && c.cmd == NULL; i++) {
        if (strcmp(cmds[i].w1, words[0]) != 0)
            continue;
        family = true;
        if (cmds[i].w2 == NULL || (n_words > 1 && strcmp(cmds[i].w2, words[1]) == 0))
            c.cmd = &cmds[i];
    }
    if (c.cmd == NULL) {
        if (!family)
            return ctl_usage_err(NULL, "unknown command '%s'", words[0]);
        fprintf(stderr, "panelgatectl: %s: %s%s\n", words[0],
                n_words > 1 ? "unknown subcommand " : "missing subcommand",
                n_words > 1 ? words[1] : "");
        for (size_t i = 0; i < n_cmds; i++)
            if (strcmp(cmds[i].w1, words[0]) == 0)
                fprintf(stderr, "usage: panelgatectl [global options] %s\n", cmds[i].synopsis);
        return EX_USAGE;
    }
    if (c.given & BIT(O_HELP)) {
        print_cmd_usage(stdout, c.cmd);
        return EX_OK;
    }
    unsigned skip = c.cmd->w2 ? 2 : 1;
    for (unsigned i = skip; i < n_words; i++)
        c.pos[c.n_pos++] = words[i];
    if (c.n_pos < c.cmd->min_pos)
        return ctl_usage_err(c.cmd, "%s: missing NAME", c.cmd->w1);
    if (c.n_pos > c.cmd->max_pos)
        return ctl_usage_err(c.cmd, "unexpected argument '%s'", c.pos[c.cmd->max_pos]);
    for (int o = O_CN; o < O_COUNT; o++)
        if ((c.given & BIT(o)) && !(c.cmd->opts & BIT(o)))
            return ctl_usage_err(c.cmd, "option --%s does not apply to '%s%s%s'",
                                 optdefs[o].name, c.cmd->w1, c.cmd->w2 ? " " : "",
                                 c.cmd->w2 ? c.cmd->w2 : "");
    if (c.val[O_DAYS] != NULL) {
        unsigned long long d;
        if (ctl_parse_uint(c.val[O_DAYS], 36500, &d) != 0 || d == 0)
            return ctl_usage_err(c.cmd, "bad --days '%s': 1 to 36500", c.val[O_DAYS]);
        c.days = (unsigned)d;
    }
    c.json = (c.given & BIT(O_JSON)) != 0;
    c.pki = c.val[O_PKI];
    if (c.pki == NULL)
        c.pki = getenv("PANELGATE_PKI");
    if (c.pki == NULL || *c.pki == '\0')
        c.pki = "pki";
    if ((rv = set_actor(&c)) != EX_OK || (rv = set_db(&c)) != EX_OK)
        return rv;

    rv = c.cmd->run(&c);

    if (c.db != NULL)
        sqlite3_close(c.db);
    ctl_kv_free(&c);
    if (c.rng_ok)
        pki_rng_free(&c.rng);
    return rv;
}

int main(int argc, char **argv)
{
    int rv = run(argc, argv);
    if (fflush(stdout) != 0 && rv == EX_OK)
        rv = ctl_fail("cannot write the output: %s", strerror(errno));
    return rv;
}
