/*
 * fuzz_regkv_rec.c - a registry bucket value read back
 * (gateway/storage/regkv_rec.c): every gateway's watcher parses the
 * server.* values whoever can write the bucket put there.
 *
 * Checks, on every accepted input: the record is what the layout allows
 * (1..8 pins, none twice, a valid name, kind and status), its entries are
 * one per pin, and encoding it then decoding the text gives the same
 * record, whose encoding is the same text (a fixed point).  On a refused
 * one: GW_EINVAL or GW_ENOMEM, a reason, the record zeroed.  Seeds:
 * fuzz/corpus/regkv_rec/ (hand-made values, good and bad).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "regkv.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct gw_regdb_server zero;
    struct gw_regdb_server s, back;
    struct gw_server e[GW_REGKV_MAX_PINS];
    char err[256] = "";
    size_t n = 0, len = 0, len2 = 0;

    int rv = gw_regkv_rec_decode(data, size, &s, err, sizeof err);
    if (rv != 0) {
        check(rv == GW_EINVAL || rv == GW_ENOMEM);
        check(err[0] != '\0');
        check(memcmp(&s, &zero, sizeof s) == 0);
        return 0;
    }
    check(s.id > 0 && s.n_pins >= 1 && s.n_pins <= GW_REGKV_MAX_PINS);
    check(s.n_pins == s.n_pins_total && gw_regdb_name_ok(s.name));
    check(strcmp(s.kind, "nimble") == 0 || strcmp(s.kind, "wowza") == 0);
    check(strcmp(s.status, "active") == 0 || strcmp(s.status, "revoked") == 0);
    for (unsigned i = 0; i < s.n_pins; i++)
        for (unsigned j = 0; j < i; j++)
            check(memcmp(s.pins[i].spki, s.pins[j].spki, GW_SPKI_LEN) != 0);
    gw_regkv_rec_entries(&s, e, &n);
    check(n == s.n_pins);

    char *txt = gw_regkv_rec_encode(&s, &len);
    if (txt == NULL)
        return 0; /* out of memory */
    check(gw_regkv_rec_decode(txt, len, &back, err, sizeof err) == 0);
    check(memcmp(&s, &back, sizeof s) == 0);
    char *txt2 = gw_regkv_rec_encode(&back, &len2);
    if (txt2 != NULL)
        check(len == len2 && memcmp(txt, txt2, len) == 0);
    gw_free(txt2);
    gw_free(txt);
    return 0;
}
