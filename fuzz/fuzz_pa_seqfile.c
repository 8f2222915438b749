/*
 * fuzz_pa_seqfile.c - libpanelagent's seq file (seqstore.c) read back from
 * whatever a crash, a full disk or a careless operator left in it: the
 * input is the file's whole content.
 *
 * The contract (seqstore.c, docs/PROTOCOL.md section 4): the file holds
 * one decimal high-water mark (1 to 20 digits, at most UINT64_MAX) and an
 * optional newline; no seq at or below it may ever be handed out again.
 * This target parses the input by that rule on its own and checks that
 * pa_seq_open
 *   - refuses anything else with PANELAGENT_ECONFIG, a reason that says
 *     "corrupt", no store, and the file left as it was (the mark it may
 *     still hold is the operator's to recover);
 *   - for a mark too close to UINT64_MAX to reserve a block, refuses with
 *     PANELAGENT_ECONFIG ("exhausted") and no store;
 *   - otherwise loads exactly the mark, has written max(mark, now) + block
 *     before returning, hands out seqs above the mark and the clock, and
 *     after a reopen (a restart) hands out seqs above every one before.
 * The files live in a private directory under /dev/shm (or $TMPDIR) so
 * the fsyncs cost little.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_internal.h"

#define NOW_MS 1700000000000ull /* the clock, in November 2023 */
#define BLOCK 1000u

static char dir[256], path[300];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_pa_seqfile: %s%s%s\n", what, detail ? ": " : "",
            detail ? detail : "");
    abort();
}

static void cleanup(void)
{
    char tmp[310];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(path);
    unlink(tmp);
    rmdir(dir);
}

static void setup(void)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fuzz_pa_seqfile.XXXXXX", base ? base : "/tmp");
    if (mkdtemp(dir) == NULL)
        die("mkdtemp", strerror(errno));
    snprintf(path, sizeof path, "%s/seq", dir);
    atexit(cleanup);
}

static void write_all(const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        die("create", strerror(errno));
    for (size_t off = 0; off < size;) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0)
            die("write", strerror(errno));
        off += (size_t)w;
    }
    close(fd);
}

/* The file's content, up to |cap| bytes; its length. */
static size_t read_all(uint8_t *buf, size_t cap)
{
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("open", strerror(errno));
    for (ssize_t r; n < cap && (r = read(fd, buf + n, cap - n)) > 0;)
        n += (size_t)r;
    close(fd);
    return n;
}

/* The contract's reading of a file: 1 when |data| is a valid mark. */
static int parse(const uint8_t *data, size_t size, uint64_t *mark)
{
    size_t digits = size > 0 && data[size - 1] == '\n' ? size - 1 : size;
    uint64_t v = 0;

    if (digits == 0 || digits > 20)
        return 0;
    for (size_t i = 0; i < digits; i++) {
        if (data[i] < '0' || data[i] > '9')
            return 0;
        unsigned d = (unsigned)(data[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *mark = v;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t back[1 << 16];
    struct pa_seqstore *s = (struct pa_seqstore *)1;
    char err[512], want[32];
    uint64_t mark = 0, seq = 0, seq2 = 0;

    if (dir[0] == '\0')
        setup();
    if (size > sizeof back)
        return -1; /* not a seq file: keep the copy below exact */
    write_all(data, size);
    err[0] = '\0';
    int valid = parse(data, size, &mark);
    int rv = pa_seq_open(&s, path, BLOCK, NOW_MS, err, sizeof err);

    if (!valid) {
        if (rv != PANELAGENT_ECONFIG || s != NULL || strstr(err, "corrupt") == NULL)
            die("a corrupt file was not refused as corrupt", err);
        if (read_all(back, sizeof back) != size || memcmp(back, data, size) != 0)
            die("a corrupt file was overwritten", NULL);
        return 0;
    }
    uint64_t base = mark > NOW_MS ? mark : NOW_MS;
    if (base > UINT64_MAX - BLOCK) {
        if (rv != PANELAGENT_ECONFIG || s != NULL || strstr(err, "exhausted") == NULL)
            die("a mark with no room for a block was not refused", err);
        return 0;
    }
    if (rv != PANELAGENT_OK || s == NULL)
        die("a valid file was refused", err);
    if (pa_seq_last(s) != mark)
        die("the loaded mark is not the file's", NULL);
    /* the next block is reserved on disk before any seq is handed out */
    int wl = snprintf(want, sizeof want, "%llu\n", (unsigned long long)(base + BLOCK));
    if (read_all(back, sizeof back) != (size_t)wl || memcmp(back, want, (size_t)wl) != 0)
        die("the reserved mark was not written", want);
    if (pa_seq_next(s, NOW_MS, &seq, err, sizeof err) != PANELAGENT_OK)
        die("no seq from a fresh store", err);
    if (seq <= mark || seq < NOW_MS)
        die("a seq at or below the mark, or behind the clock", NULL);
    pa_seq_close(s);

    /* a restart with the clock far behind: still above everything */
    s = NULL;
    rv = pa_seq_open(&s, path, BLOCK, 1, err, sizeof err);
    if (rv != PANELAGENT_OK) {
        if (rv != PANELAGENT_ECONFIG || strstr(err, "exhausted") == NULL)
            die("reopening a file the store wrote failed", err);
        return 0; /* the mark is within a block of UINT64_MAX */
    }
    if (pa_seq_next(s, 1, &seq2, err, sizeof err) == PANELAGENT_OK && seq2 <= seq)
        die("a seq was handed out again after a restart", NULL);
    pa_seq_close(s);
    return 0;
}
