/*
 * version_probe.c - the smallest program built against an installed
 * libpanelagent (pkg-config --cflags --libs panelagent): prints what
 * panelagent_version() says and exits 0 when it matches the header.
 */
#include <stdio.h>
#include <string.h>

#include <panelagent.h>

int main(void)
{
    const panelagent_info *i = panelagent_version(PANELAGENT_INFO_AGE);
    if (i == NULL)
        return 1;
    printf("%s protocol=%d mbedtls=%s nghttp2=%s\n", i->version, i->protocol,
           i->mbedtls_version, i->nghttp2_version);
    if (i->version_num != PANELAGENT_VERSION_NUM ||
        strcmp(i->version, PANELAGENT_VERSION_STRING) != 0)
        return 2;
    return panelagent_version(PANELAGENT_INFO_AGE + 1) == NULL ? 0 : 3;
}
