/*
 * seqstore.c - seq that only goes up, for the life of the registration and
 * across restarts (docs/PROTOCOL.md section 4):
 *
 *     seq = max(last + 1, unix_time_ms)
 *
 * With a seq file, the file holds a high-water mark (hwm): no seq above it
 * has ever been handed out... and none at or below it may be handed out
 * again.  Before a seq above the current hwm is used, hwm = seq + block is
 * written (temp file + fsync + rename + fsync of the directory), so there
 * is one fsync per |block| (a minute of the clock when seq follows the
 * clock) instead of one per frame, and after a crash the next seq starts
 * above everything that may have been used.
 *
 * File format: the decimal hwm and a newline, nothing else.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client_internal.h"

struct pa_seqstore {
    char *path; /* NULL: memory only */
    uint64_t last; /* the last seq handed out (or the stored hwm) */
    uint64_t hwm;  /* persisted mark; seqs <= hwm are safe to hand out */
    uint64_t block;
};

static int read_file(struct pa_seqstore *s, int *missing, char *err, size_t errlen)
{
    char buf[64];
    size_t n = 0;
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);

    *missing = 0;
    if (fd < 0) {
        if (errno == ENOENT) {
            *missing = 1;
            return PANELAGENT_OK;
        }
        pa_seterr(err, errlen, "seq file %s: cannot open: %s", s->path, strerror(errno));
        return PANELAGENT_EIO;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            pa_seterr(err, errlen, "seq file %s: cannot read: %s", s->path, strerror(errno));
            close(fd);
            return PANELAGENT_EIO;
        }
        if (r == 0 || n + (size_t)r >= sizeof buf - 1) {
            n += (size_t)r;
            break;
        }
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';

    /* digits, one optional newline, nothing else; fits in uint64 */
    uint64_t v = 0;
    size_t i = 0;
    for (; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) {
        unsigned d = (unsigned)(buf[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            i = 0;
            break;
        }
        v = v * 10 + d;
    }
    if (i == 0 || i > 20 || !(i == n || (i + 1 == n && buf[i] == '\n'))) {
        pa_seterr(err, errlen,
                  "seq file %s is corrupt (expected one decimal number); remove it only if "
                  "the clock is known to be past every seq this agent ever sent",
                  s->path);
        return PANELAGENT_ECONFIG;
    }
    s->hwm = v;
    s->last = v;
    return PANELAGENT_OK;
}

static int write_file(struct pa_seqstore *s, uint64_t hwm, char *err, size_t errlen)
{
    char buf[32], *tmp = NULL, *dir = NULL;
    int fd = -1, dfd = -1, rv = PANELAGENT_EIO;
    size_t plen = strlen(s->path);
    int len = snprintf(buf, sizeof buf, "%llu\n", (unsigned long long)hwm);

    tmp = malloc(plen + 5);
    dir = malloc(plen + 2);
    if (tmp == NULL || dir == NULL) {
        pa_seterr(err, errlen, "out of memory");
        rv = PANELAGENT_ENOMEM;
        goto out;
    }
    memcpy(tmp, s->path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    memcpy(dir, s->path, plen + 1);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        pa_seterr(err, errlen, "seq file %s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    for (int off = 0; off < len;) {
        ssize_t w = write(fd, buf + off, (size_t)(len - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            pa_seterr(err, errlen, "seq file %s: cannot write: %s", tmp, strerror(errno));
            goto out_unlink;
        }
        off += (int)w;
    }
    if (fsync(fd) != 0) {
        pa_seterr(err, errlen, "seq file %s: fsync: %s", tmp, strerror(errno));
        goto out_unlink;
    }
    if (close(fd) != 0) {
        fd = -1;
        pa_seterr(err, errlen, "seq file %s: close: %s", tmp, strerror(errno));
        goto out_unlink;
    }
    fd = -1;
    if (rename(tmp, s->path) != 0) {
        pa_seterr(err, errlen, "seq file %s: rename: %s", s->path, strerror(errno));
        goto out_unlink;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        pa_seterr(err, errlen, "seq file %s: fsync of its directory: %s", s->path,
                  strerror(errno));
        goto out;
    }
    s->hwm = hwm;
    rv = PANELAGENT_OK;
    goto out;
out_unlink:
    unlink(tmp);
out:
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    free(tmp);
    free(dir);
    return rv;
}

int pa_seq_open(struct pa_seqstore **out, const char *path, uint64_t block, uint64_t now_ms,
                char *err, size_t errlen)
{
    struct pa_seqstore *s;
    int rv = PANELAGENT_EINTERNAL, missing = 0;

    *out = NULL;
    s = calloc(1, sizeof *s);
    if (s == NULL) {
        pa_seterr(err, errlen, "out of memory");
        return PANELAGENT_ENOMEM;
    }
    s->block = block ? block : 1;
    if (path != NULL) {
        s->path = strdup(path);
        if (s->path == NULL) {
            pa_seterr(err, errlen, "out of memory");
            rv = PANELAGENT_ENOMEM;
            goto fail;
        }
        if ((rv = read_file(s, &missing, err, errlen)) != PANELAGENT_OK)
            goto fail;
        /* Write at once: a file that cannot be written is a configuration
         * error now, not a surprise at the first submit. */
        uint64_t base = s->hwm > now_ms ? s->hwm : now_ms;
        if (base > UINT64_MAX - s->block) {
            pa_seterr(err, errlen, "seq file %s: seq space exhausted", s->path);
            rv = PANELAGENT_ECONFIG;
            goto fail;
        }
        if ((rv = write_file(s, base + s->block, err, errlen)) != PANELAGENT_OK)
            goto fail;
        (void)missing;
    }
    *out = s;
    return PANELAGENT_OK;
fail:
    pa_seq_close(s);
    return rv;
}

int pa_seq_next(struct pa_seqstore *s, uint64_t now_ms, uint64_t *out, char *err,
                size_t errlen)
{
    uint64_t seq;

    if (s->last == UINT64_MAX) {
        pa_seterr(err, errlen, "seq space exhausted");
        return PANELAGENT_EIO;
    }
    seq = s->last + 1 > now_ms ? s->last + 1 : now_ms;
    if (s->path != NULL && seq > s->hwm) {
        uint64_t hwm = seq <= UINT64_MAX - s->block ? seq + s->block : UINT64_MAX;
        int rv = write_file(s, hwm, err, errlen);
        if (rv != PANELAGENT_OK)
            return rv;
    }
    s->last = seq;
    *out = seq;
    return PANELAGENT_OK;
}

uint64_t pa_seq_last(const struct pa_seqstore *s)
{
    return s ? s->last : 0;
}

void pa_seq_close(struct pa_seqstore *s)
{
    if (s == NULL)
        return;
    free(s->path);
    free(s);
}
