/*
 * fuzz_gw_config.c - the gateway's configuration loader (our line reader
 * over inih, the key table, value parsers and cross-field validation) on
 * arbitrary file contents.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    struct gw_config cfg;
    char err[512];
    FILE *f;

    if (!path[0])
        snprintf(path, sizeof path, "/tmp/fuzz_gw_config.%ld.ini", (long)getpid());
    f = fopen(path, "wb");
    if (!f)
        return 0;
    if (size && fwrite(data, 1, size, f) != size) {
        fclose(f);
        return 0;
    }
    fclose(f);

    memset(&cfg, 0, sizeof cfg);
    if (gw_config_defaults(&cfg) == 0 && gw_config_load(&cfg, path, err, sizeof err) == 0)
        (void)gw_config_validate(&cfg, err, sizeof err);
    gw_config_cleanup(&cfg);
    unlink(path);
    return 0;
}
