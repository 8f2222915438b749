/*
 * ticket.c - session-ticket keys from a key file (see ticket.h).
 *
 * A ticket is what mbedTLS 2.28's ssl_ticket.c makes, with our keys:
 *
 *   key name (4) | IV (12) | length of the state (2, big endian) |
 *   AES-256-GCM(state) | tag (16)
 *
 * the first 18 bytes being the additional data, the state
 * mbedtls_ssl_session_save's serialization of the session.
 *
 * The key file is text, one key a line (docs/OPERATIONS.md):
 *
 *   panelgate-ticket-keys 1
 *   current  NAME CREATED KEY
 *   previous NAME CREATED KEY
 *
 * NAME 8 hex digits, CREATED Unix seconds, KEY 64 hex digits (256 bits);
 * "#" lines and blank lines are ignored; "previous" is optional.
 */
#include "ticket.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/cipher.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/version.h>

#include "alloc.h"
#include "err.h"
#include "wipe.h"

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define SESSION_START(s) ((s)->MBEDTLS_PRIVATE(start))
#else
#define SESSION_START(s) ((s)->start)
#endif

#define NAME_LEN 4
#define IV_LEN 12
#define KEY_LEN 32
#define TAG_LEN 16
#define AAD_LEN (NAME_LEN + IV_LEN + 2)
#define MIN_TICKET (AAD_LEN + TAG_LEN)
#define FILE_MAX 4096 /* a key file is ~200 bytes; more is not one */
#define MAGIC "panelgate-ticket-keys 1"

/* One key as the file holds it. */
struct file_key {
    bool set;
    unsigned char name[NAME_LEN];
    int64_t created;
    unsigned char key[KEY_LEN];
};

/* What a key file holds: [0] current, [1] previous. */
struct file_keys {
    struct file_key k[2];
};

/* One key in use: its AES-256-GCM context holds the expanded key. */
struct live_key {
    bool set;
    unsigned char name[NAME_LEN];
    int64_t created;
    mbedtls_cipher_context_t ctx;
};

struct gw_ticket {
    pthread_mutex_t mu; /* guards keys[], the RNG */
    char *path, *lock_path, *tmp_path;
    uint32_t lifetime;
    gw_ticket_rng_fn f_rng;
    void *p_rng;
    struct live_key keys[2]; /* [0] current (encrypts), [1] previous */
    /* the file last loaded or written (refresh/new only: one caller) */
    bool read_only;
    struct stat seen;
};

static void wipe_file_keys(struct file_keys *f)
{
    mbedtls_platform_zeroize(f, sizeof *f);
}

/* ---- the file --------------------------------------------------------------- */

static int hex_val(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Exactly 2*n hex digits at s, then a space, tab, newline or NUL. */
static const char *parse_hex(const char *s, unsigned char *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_val((unsigned char)s[2 * i]), lo = hi < 0 ? -1 : hex_val((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return NULL;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    s += 2 * n;
    return (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\0') ? s : NULL;
}

static const char *skip_blanks(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* One "current|previous NAME CREATED KEY" line (without its newline). */
static bool parse_key_line(const char *s, struct file_key *k)
{
    char *end;
    s = skip_blanks(s);
    if (!(s = parse_hex(s, k->name, NAME_LEN)))
        return false;
    s = skip_blanks(s);
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    long long created = strtoll(s, &end, 10);
    if (errno || created <= 0 || (*end != ' ' && *end != '\t'))
        return false;
    k->created = created;
    s = skip_blanks(end);
    if (!(s = parse_hex(s, k->key, KEY_LEN)))
        return false;
    s = skip_blanks(s);
    if (*s != '\0')
        return false;
    k->set = true;
    return true;
}

/* Parses the text of a key file into f; the reason names the line. */
static int parse_keys(char *text, struct file_keys *f, const char *path, char *err,
                      size_t errlen)
{
    bool magic = false;
    unsigned lineno = 0;

    memset(f, 0, sizeof *f);
    for (char *line = text, *next; line; line = next) {
        lineno++;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        const char *s = skip_blanks(line);
        if (*s == '\0' || *s == '#')
            continue;
        if (!magic) {
            if (strcmp(s, MAGIC) != 0)
                return gw_fail(GW_ECONFIG, err, errlen,
                               "tls.ticket_key_file %s: line %u: not a panelgate ticket key file "
                               "(want '" MAGIC "' first)",
                               path, lineno);
            magic = true;
            continue;
        }
        int which = -1;
        size_t wl = strcspn(s, " \t");
        if (wl == 7 && strncmp(s, "current", 7) == 0)
            which = 0;
        else if (wl == 8 && strncmp(s, "previous", 8) == 0)
            which = 1;
        if (which < 0 || f->k[which].set || !parse_key_line(s + wl, &f->k[which]))
            return gw_fail(GW_ECONFIG, err, errlen,
                           "tls.ticket_key_file %s: line %u: want one 'current' and at most one "
                           "'previous' line: NAME (8 hex digits) CREATED (Unix seconds) KEY "
                           "(64 hex digits)",
                           path, lineno);
    }
    if (!f->k[0].set)
        return gw_fail(GW_ECONFIG, err, errlen, "tls.ticket_key_file %s: no 'current' key line",
                       path);
    if (f->k[1].set && memcmp(f->k[0].name, f->k[1].name, NAME_LEN) == 0)
        return gw_fail(GW_ECONFIG, err, errlen,
                       "tls.ticket_key_file %s: the current and the previous key have the same "
                       "name",
                       path);
    return 0;
}

/* A key file must be a regular file only its owner may read or write. */
static int check_mode(const struct stat *st, const char *path, char *err, size_t errlen)
{
    if (!S_ISREG(st->st_mode))
        return gw_fail(GW_ECONFIG, err, errlen, "tls.ticket_key_file %s: not a regular file",
                       path);
    if (st->st_mode & 077)
        return gw_fail(GW_ECONFIG, err, errlen,
                       "tls.ticket_key_file %s: mode %04o lets group or others at the ticket "
                       "keys; want 0600 or 0400 (chmod 600 %s)",
                       path, (unsigned)(st->st_mode & 07777), path);
    return 0;
}

/* Reads and parses |path|.  GW_ENOTFOUND when it does not exist (no reason
 * written). */
static int read_keys(const char *path, struct file_keys *f, struct stat *st, char *err,
                     size_t errlen)
{
    char buf[FILE_MAX + 1];
    size_t len = 0;
    ssize_t n;
    int rv = GW_EIO;

    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return GW_ENOTFOUND;
        return gw_fail(GW_EIO, err, errlen, "tls.ticket_key_file %s: %s", path, strerror(errno));
    }
    if (fstat(fd, st) != 0) {
        gw_seterr(err, errlen, "tls.ticket_key_file %s: %s", path, strerror(errno));
        goto out;
    }
    if ((rv = check_mode(st, path, err, errlen)) != 0)
        goto out;
    while (len <= FILE_MAX && (n = read(fd, buf + len, FILE_MAX + 1 - len)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rv = gw_fail(GW_EIO, err, errlen, "tls.ticket_key_file %s: %s", path, strerror(errno));
            goto out;
        }
        len += (size_t)n;
    }
    if (len > FILE_MAX) {
        rv = gw_fail(GW_ECONFIG, err, errlen,
                     "tls.ticket_key_file %s: larger than %d bytes: not a ticket key file", path,
                     FILE_MAX);
        goto out;
    }
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) {
        rv = gw_fail(GW_ECONFIG, err, errlen, "tls.ticket_key_file %s: not a text file", path);
        goto out;
    }
    rv = parse_keys(buf, f, path, err, errlen);
out:
    mbedtls_platform_zeroize(buf, sizeof buf);
    close(fd);
    if (rv != 0)
        wipe_file_keys(f);
    return rv;
}

static void put_hex(char *out, const unsigned char *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int format_key(char *out, size_t cap, const char *label, const struct file_key *k)
{
    char name[2 * NAME_LEN + 1], key[2 * KEY_LEN + 1];
    put_hex(name, k->name, NAME_LEN);
    put_hex(key, k->key, KEY_LEN);
    int n = snprintf(out, cap, "%s %s %" PRId64 " %s\n", label, name, k->created, key);
    mbedtls_platform_zeroize(key, sizeof key);
    return n;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes f to a temporary file (mode 0600), syncs it and renames it over
 * the key file; *st is the new file's.  The caller holds the lock. */
static int write_keys(struct gw_ticket *t, const struct file_keys *f, struct stat *st,
                      char *err, size_t errlen)
{
    char text[512];
    int len, rv = GW_EIO;

    len = snprintf(text, sizeof text,
                   "# panelgate session-ticket keys (docs/OPERATIONS.md, [tls] "
                   "ticket_key_file).\n# Secret: mode 0600, never copied beyond the gateways "
                   "that share it.\n" MAGIC "\n");
    len += format_key(text + len, sizeof text - (size_t)len, "current", &f->k[0]);
    if (f->k[1].set)
        len += format_key(text + len, sizeof text - (size_t)len, "previous", &f->k[1]);

    unlink(t->tmp_path); /* a leftover of a crash: made anew with our mode */
    int fd = open(t->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        gw_seterr(err, errlen, "tls.ticket_key_file %s: %s", t->tmp_path, strerror(errno));
        goto out;
    }
    if (fchmod(fd, 0600) != 0 || write_all(fd, text, (size_t)len) != 0 || fsync(fd) != 0 ||
        fstat(fd, st) != 0) {
        gw_seterr(err, errlen, "tls.ticket_key_file %s: %s", t->tmp_path, strerror(errno));
        close(fd);
        unlink(t->tmp_path);
        goto out;
    }
    close(fd);
    if (rename(t->tmp_path, t->path) != 0) {
        gw_seterr(err, errlen, "tls.ticket_key_file %s: %s", t->path, strerror(errno));
        unlink(t->tmp_path);
        goto out;
    }
    /* what the next look compares with: the rename changed the ctime */
    if (stat(t->path, st) != 0) {
        gw_seterr(err, errlen, "tls.ticket_key_file %s: %s", t->path, strerror(errno));
        goto out;
    }
    rv = 0;
out:
    mbedtls_platform_zeroize(text, sizeof text);
    gw_wipe_vector_regs();
    return rv;
}

/* flock of "<file>.lock": the key file itself is replaced by rename.  With
 * |wait| false (on the event loop) a lock another gateway holds gives
 * GW_EFULL at once: the rotation is tried again at the next look. */
static int lock_file(struct gw_ticket *t, bool wait, int *fd_out, char *err, size_t errlen)
{
    int fd = open(t->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return gw_fail(GW_EIO, err, errlen, "tls.ticket_key_file %s: %s", t->lock_path,
                       strerror(errno));
    while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
        if (errno == EWOULDBLOCK) {
            close(fd);
            return GW_EFULL;
        }
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            return gw_fail(GW_EIO, err, errlen, "tls.ticket_key_file %s: flock: %s",
                           t->lock_path, strerror(e));
        }
    }
    *fd_out = fd;
    return 0;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static bool due(const struct file_keys *f, int64_t now, uint32_t lifetime)
{
    return !f->k[0].set || now - f->k[0].created >= (int64_t)lifetime;
}

/* Under the lock: reads the file again (another gateway may have rotated
 * it meanwhile), and when there is none or its current key is due, makes a
 * new current key, keeps the old one as previous and writes the file. */
static int rotate_locked(struct gw_ticket *t, bool wait, int64_t now, struct file_keys *f,
                         struct stat *st, char *err, size_t errlen)
{
    int lk = -1;
    int rv = lock_file(t, wait, &lk, err, errlen);
    if (rv != 0)
        return rv;
    rv = read_keys(t->path, f, st, err, errlen);
    if (rv == GW_ENOTFOUND) {
        memset(f, 0, sizeof *f);
        rv = 0;
    }
    if (rv == 0 && due(f, now, t->lifetime)) {
        struct file_key fresh = {.set = true, .created = now};
        pthread_mutex_lock(&t->mu);
        do {
            rv = t->f_rng(t->p_rng, fresh.name, NAME_LEN) ||
                 t->f_rng(t->p_rng, fresh.key, KEY_LEN);
        } while (rv == 0 && f->k[0].set && memcmp(fresh.name, f->k[0].name, NAME_LEN) == 0);
        pthread_mutex_unlock(&t->mu);
        if (rv != 0) {
            rv = gw_fail(GW_ETLS, err, errlen, "tls.ticket_key_file: the RNG failed");
        } else {
            f->k[1] = f->k[0];
            f->k[0] = fresh;
            rv = write_keys(t, f, st, err, errlen);
        }
        mbedtls_platform_zeroize(&fresh, sizeof fresh);
    }
    close(lk); /* releases the flock */
    return rv;
}

/* ---- keys in use --------------------------------------------------------------- */

static void live_free(struct live_key *k)
{
    mbedtls_cipher_free(&k->ctx); /* zeroizes the expanded key */
    memset(k, 0, sizeof *k);
}

static int live_setup(struct live_key *k, const struct file_key *f)
{
    memset(k, 0, sizeof *k);
    mbedtls_cipher_init(&k->ctx);
    if (!f->set)
        return 0;
    const mbedtls_cipher_info_t *ci = mbedtls_cipher_info_from_type(MBEDTLS_CIPHER_AES_256_GCM);
    if (!ci || mbedtls_cipher_setup(&k->ctx, ci) != 0 ||
        mbedtls_cipher_setkey(&k->ctx, f->key, 8 * KEY_LEN, MBEDTLS_ENCRYPT) != 0) {
        live_free(k);
        return GW_ETLS;
    }
    memcpy(k->name, f->name, NAME_LEN);
    k->created = f->created;
    k->set = true;
    return 0;
}

/* Puts f's keys in use (the old ones are freed); *changed when they differ. */
static int install(struct gw_ticket *t, const struct file_keys *f, int *changed, char *err,
                   size_t errlen)
{
    struct live_key nk[2], old[2];
    if (live_setup(&nk[0], &f->k[0]) != 0 || live_setup(&nk[1], &f->k[1]) != 0) {
        live_free(&nk[0]);
        return gw_fail(GW_ETLS, err, errlen, "tls.ticket_key_file %s: AES-256-GCM key setup failed",
                       t->path);
    }
    pthread_mutex_lock(&t->mu);
    bool differ = memcmp(nk[0].name, t->keys[0].name, NAME_LEN) != 0 ||
                  nk[1].set != t->keys[1].set ||
                  memcmp(nk[1].name, t->keys[1].name, NAME_LEN) != 0;
    memcpy(old, t->keys, sizeof old);
    memcpy(t->keys, nk, sizeof nk);
    pthread_mutex_unlock(&t->mu);
    live_free(&old[0]);
    live_free(&old[1]);
    if (changed)
        *changed = differ;
    return 0;
}

static char *concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = gw_malloc(la + lb + 1);
    if (s) {
        memcpy(s, a, la);
        memcpy(s + la, b, lb + 1);
    }
    return s;
}

int gw_ticket_new(struct gw_ticket **out, const char *path, uint32_t lifetime_s,
                  gw_ticket_rng_fn f_rng, void *p_rng, int64_t now_s, char *err, size_t errlen)
{
    struct file_keys f;
    int rv = GW_ENOMEM;

    *out = NULL;
    memset(&f, 0, sizeof f);
    struct gw_ticket *t = gw_calloc(1, sizeof *t);
    if (!t)
        return gw_fail(GW_ENOMEM, err, errlen, "out of memory");
    pthread_mutex_init(&t->mu, NULL);
    mbedtls_cipher_init(&t->keys[0].ctx);
    mbedtls_cipher_init(&t->keys[1].ctx);
    t->lifetime = lifetime_s;
    t->f_rng = f_rng;
    t->p_rng = p_rng;
    t->path = gw_strdup(path);
    t->lock_path = concat(path, ".lock");
    t->tmp_path = concat(path, ".tmp");
    if (!t->path || !t->lock_path || !t->tmp_path) {
        gw_seterr(err, errlen, "out of memory");
        goto fail;
    }
    rv = read_keys(path, &f, &t->seen, err, errlen);
    if (rv == 0)
        t->read_only = !(t->seen.st_mode & S_IWUSR);
    if (rv == GW_ENOTFOUND || (rv == 0 && !t->read_only && due(&f, now_s, lifetime_s)))
        rv = rotate_locked(t, true, now_s, &f, &t->seen, err, errlen);
    if (rv == 0)
        rv = install(t, &f, NULL, err, errlen);
    wipe_file_keys(&f);
    gw_wipe_vector_regs();
    if (rv != 0)
        goto fail;
    *out = t;
    return 0;
fail:
    gw_ticket_free(t);
    return rv;
}

int gw_ticket_refresh(struct gw_ticket *t, int64_t now_s, int *changed, char *err,
                      size_t errlen)
{
    struct file_keys f;
    struct stat st;
    int rv = 0, ch = 0;
    bool have = false;

    if (changed)
        *changed = 0;
    memset(&f, 0, sizeof f);
    if (stat(t->path, &st) != 0 || !same_file(&st, &t->seen)) {
        rv = read_keys(t->path, &f, &st, err, errlen);
        if (rv == 0) {
            have = true;
            t->read_only = !(st.st_mode & S_IWUSR);
        } else if (rv != GW_ENOTFOUND || t->read_only) {
            if (rv == GW_ENOTFOUND)
                gw_seterr(err, errlen, "tls.ticket_key_file %s: gone", t->path);
            goto out; /* keep the keys in use */
        }
        /* gone and ours to write: made anew below */
    }
    pthread_mutex_lock(&t->mu);
    bool stale = now_s - t->keys[0].created >= (int64_t)t->lifetime;
    pthread_mutex_unlock(&t->mu);
    if (have)
        stale = due(&f, now_s, t->lifetime);
    if (!t->read_only && (rv == GW_ENOTFOUND || stale)) {
        rv = rotate_locked(t, false, now_s, &f, &st, err, errlen);
        if (rv == GW_EFULL) /* another gateway holds the lock: due again next time */
            rv = 0;
        else if (rv != 0)
            goto out;
        else
            have = true;
    }
    if (have) {
        if ((rv = install(t, &f, &ch, err, errlen)) != 0)
            goto out;
        t->seen = st;
    }
    rv = 0;
out:
    wipe_file_keys(&f);
    gw_wipe_vector_regs();
    if (changed)
        *changed = ch;
    return rv;
}

void gw_ticket_current(struct gw_ticket *t, char name_hex[9], int64_t *created_s)
{
    pthread_mutex_lock(&t->mu);
    put_hex(name_hex, t->keys[0].name, NAME_LEN);
    *created_s = t->keys[0].created;
    pthread_mutex_unlock(&t->mu);
}

void gw_ticket_free(struct gw_ticket *t)
{
    if (!t)
        return;
    live_free(&t->keys[0]);
    live_free(&t->keys[1]);
    pthread_mutex_destroy(&t->mu);
    gw_free(t->path);
    gw_free(t->lock_path);
    gw_free(t->tmp_path);
    gw_free(t);
}

/* ---- the mbedTLS callbacks ------------------------------------------------------- */

int gw_ticket_write(void *p_ticket, const mbedtls_ssl_session *session, unsigned char *start,
                    const unsigned char *end, size_t *tlen, uint32_t *lifetime)
{
    struct gw_ticket *t = p_ticket;
    unsigned char *iv = start + NAME_LEN, *len_bytes = iv + IV_LEN, *state = len_bytes + 2;
    size_t clear_len = 0, ciph_len = 0;
    int ret;

    *tlen = 0;
    if (end - start < MIN_TICKET)
        return MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL;
    pthread_mutex_lock(&t->mu);
    struct live_key *k = &t->keys[0];
    if (!k->set) {
        ret = MBEDTLS_ERR_SSL_INTERNAL_ERROR;
        goto out;
    }
    *lifetime = t->lifetime;
    memcpy(start, k->name, NAME_LEN);
    if ((ret = t->f_rng(t->p_rng, iv, IV_LEN)) != 0)
        goto out;
    if ((ret = mbedtls_ssl_session_save(session, state, (size_t)(end - state), &clear_len)) != 0)
        goto out;
    if (clear_len > 65535) {
        ret = MBEDTLS_ERR_SSL_INTERNAL_ERROR;
        goto out;
    }
    len_bytes[0] = (unsigned char)(clear_len >> 8);
    len_bytes[1] = (unsigned char)clear_len;
    ret = mbedtls_cipher_auth_encrypt_ext(&k->ctx, iv, IV_LEN, start, AAD_LEN, state, clear_len,
                                          state, (size_t)(end - state), &ciph_len, TAG_LEN);
    if (ret == 0 && ciph_len != clear_len + TAG_LEN)
        ret = MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    if (ret == 0)
        *tlen = AAD_LEN + ciph_len;
out:
    pthread_mutex_unlock(&t->mu);
    if (ret != 0)
        mbedtls_platform_zeroize(state, (size_t)(end - state));
    return ret;
}

int gw_ticket_parse(void *p_ticket, mbedtls_ssl_session *session, unsigned char *buf,
                    size_t len)
{
    struct gw_ticket *t = p_ticket;
    unsigned char *iv = buf + NAME_LEN, *state = buf + AAD_LEN;
    size_t clear_len = 0;
    int ret = MBEDTLS_ERR_SSL_INVALID_MAC;

    if (len < MIN_TICKET)
        return MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
    size_t enc_len = (size_t)buf[NAME_LEN + IV_LEN] << 8 | buf[NAME_LEN + IV_LEN + 1];
    if (len != AAD_LEN + enc_len + TAG_LEN)
        return MBEDTLS_ERR_SSL_BAD_INPUT_DATA;

    pthread_mutex_lock(&t->mu);
    struct live_key *k = NULL;
    for (int i = 0; i < 2; i++)
        if (t->keys[i].set && memcmp(buf, t->keys[i].name, NAME_LEN) == 0)
            k = &t->keys[i];
    if (k) /* an unknown name: a key rotated out, or another site's */
        ret = mbedtls_cipher_auth_decrypt_ext(&k->ctx, iv, IV_LEN, buf, AAD_LEN, state,
                                              enc_len + TAG_LEN, state, enc_len, &clear_len,
                                              TAG_LEN);
    pthread_mutex_unlock(&t->mu);
    if (ret == MBEDTLS_ERR_CIPHER_AUTH_FAILED)
        ret = MBEDTLS_ERR_SSL_INVALID_MAC;
    if (ret == 0 && clear_len != enc_len)
        ret = MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    if (ret == 0)
        ret = mbedtls_ssl_session_load(session, state, clear_len);
    if (ret == 0) {
        /* the lifetime the ticket was issued for, as ssl_ticket.c checks it */
        int64_t now = (int64_t)time(NULL), start = (int64_t)SESSION_START(session);
        if (now < start || now - start > (int64_t)t->lifetime)
            ret = MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED;
    }
    mbedtls_platform_zeroize(state, enc_len); /* the session's master secret */
    return ret;
}
