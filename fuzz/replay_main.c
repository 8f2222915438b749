/*
 * replay_main.c - runs a fuzz target's LLVMFuzzerTestOneInput once per input
 * file, without libFuzzer, so ctest can replay the corpora in every build
 * (plain, sanitizer) and a crash found by the fuzzer stays fixed.
 *
 *   replay_<name> PATH...
 *
 * Each PATH is a file, or a directory whose regular files (not recursing,
 * dot files skipped) are replayed in name order.  Each input is handed over
 * in a heap block of exactly its size, so ASan sees any over-read.  Exit
 * status: 0 when every input ran, 1 on an I/O error, 2 on bad usage; a
 * crash or sanitizer finding in the target ends the process as it would
 * under libFuzzer.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int read_file(const char *path, uint8_t **out, size_t *out_len)
{
    int rv = -1;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    FILE *f = fopen(path, "rb");

    *out = NULL;
    *out_len = 0;
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 4096;
            uint8_t *nbuf = realloc(buf, ncap);
            if (!nbuf) {
                fprintf(stderr, "replay: %s: out of memory\n", path);
                goto out;
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                fprintf(stderr, "replay: %s: read error\n", path);
                goto out;
            }
            break;
        }
    }
    /* An exactly-sized copy: reading one byte past the input must trip ASan.
     * For an empty input malloc(0) gives a block with no readable bytes (or
     * NULL, which the caller replaces). */
    *out = malloc(len);
    if (!*out && len) {
        fprintf(stderr, "replay: %s: out of memory\n", path);
        goto out;
    }
    if (len)
        memcpy(*out, buf, len);
    *out_len = len;
    rv = 0;
out:
    free(buf);
    fclose(f);
    return rv;
}

static int replay_file(const char *path, unsigned long *count)
{
    uint8_t *data;
    size_t len;
    static const uint8_t empty[1];

    if (read_file(path, &data, &len) != 0)
        return -1;
    printf("replay: %s (%zu bytes)\n", path, len);
    fflush(stdout);
    LLVMFuzzerTestOneInput(data ? data : empty, len);
    free(data);
    (*count)++;
    return 0;
}

static int skip_entry(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

static int replay_dir(const char *dir, unsigned long *count)
{
    struct dirent **names = NULL;
    int rv = 0;
    int n = scandir(dir, &names, skip_entry, alphasort);

    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        size_t plen = strlen(dir) + 1 + strlen(names[i]->d_name) + 1;
        char *path = malloc(plen);
        struct stat st;

        if (!path) {
            fprintf(stderr, "replay: out of memory\n");
            rv = -1;
        } else {
            snprintf(path, plen, "%s/%s", dir, names[i]->d_name);
            if (stat(path, &st) != 0) {
                fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
                rv = -1;
            } else if (S_ISREG(st.st_mode) && replay_file(path, count) != 0) {
                rv = -1;
            }
        }
        free(path);
        free(names[i]);
    }
    free(names);
    return rv;
}

int main(int argc, char **argv)
{
    unsigned long count = 0;
    int failed = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);

    for (int i = 1; i < argc; i++) {
        struct stat st;

        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            failed = 1;
        } else if (S_ISDIR(st.st_mode)) {
            if (replay_dir(argv[i], &count) != 0)
                failed = 1;
        } else if (replay_file(argv[i], &count) != 0) {
            failed = 1;
        }
    }
    printf("replay: %lu input(s) run%s\n", count, failed ? ", with errors" : "");
    return failed ? 1 : 0;
}
