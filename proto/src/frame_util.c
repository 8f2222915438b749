/*
 * frame_util.c - limits, error names and agent kinds for the stats frame.
 */
#include <stdio.h>
#include <string.h>

#include <panelproto/frame.h>

void pa_frame_limits_default(struct pa_frame_limits *lim)
{
    lim->max_frame_bytes = 4u << 20;
    lim->max_arena_bytes = 32u << 20;
    lim->max_depth = 16;
    lim->max_name_len = 255;
    lim->max_str_len = 1024;
    lim->max_server_ips = 64;
    lim->max_vhosts = 256;
    lim->max_apps = 4096;
    lim->max_instances = 16384;
    lim->max_streams = 16384;
    lim->max_conns = 100000;
    lim->max_config_nodes = 4096;
    lim->max_unknown_keys = 64;
}

int pa_frame_limits_check(const struct pa_frame_limits *lim)
{
    if (!lim)
        return PA_FE_ARG;
    if (lim->max_depth < PA_LIMIT_MIN_DEPTH || lim->max_depth > PA_LIMIT_MAX_DEPTH)
        return PA_FE_ARG;
    if (lim->max_frame_bytes == 0 || lim->max_arena_bytes == 0 ||
        lim->max_name_len == 0 || lim->max_str_len == 0)
        return PA_FE_ARG;
    /* the largest string must fit the uint32 lengths msgpack can carry */
    if (lim->max_name_len > UINT32_MAX - 1 || lim->max_str_len > UINT32_MAX - 1)
        return PA_FE_ARG;
    return 0;
}

static const struct {
    int code;
    const char *name;
    const char *text;
} errs[] = {
    {PA_FE_OK, "ok", "success"},
    {PA_FE_EMPTY, "empty", "empty frame"},
    {PA_FE_TRUNCATED, "truncated", "frame is truncated"},
    {PA_FE_TRAILING, "trailing", "bytes after the frame"},
    {PA_FE_TYPE, "type", "wrong type"},
    {PA_FE_MISSING, "missing", "required field missing"},
    {PA_FE_RANGE, "range", "number out of range"},
    {PA_FE_NONFINITE, "nonfinite", "number is not finite"},
    {PA_FE_UTF8, "utf8", "string is not valid UTF-8"},
    {PA_FE_NUL, "nul", "string contains a NUL byte"},
    {PA_FE_IP, "ip", "bad IP address"},
    {PA_FE_DUPKEY, "dupkey", "duplicate key"},
    {PA_FE_EXT, "ext", "msgpack extension type not allowed"},
    {PA_FE_TOO_MANY, "too_many", "too many items"},
    {PA_FE_TOO_LONG, "too_long", "string too long"},
    {PA_FE_TOO_DEEP, "too_deep", "nesting too deep"},
    {PA_FE_TOO_BIG, "too_big", "frame too large"},
    {PA_FE_VERSION, "version", "unsupported protocol version"},
    {PA_FE_INVALID, "invalid", "invalid value"},
    {PA_FE_NOMEM, "nomem", "out of memory for this frame"},
    {PA_FE_ARG, "arg", "invalid argument"},
};

const char *pa_frame_errname(int code)
{
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++)
        if (errs[i].code == code)
            return errs[i].name;
    return "unknown";
}

const char *pa_frame_strerror(int code)
{
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++)
        if (errs[i].code == code)
            return errs[i].text;
    return "unknown error";
}

int pa_frame_error_format(const struct pa_frame_error *e, char *buf, size_t n)
{
    const char *msg = e->msg[0] ? e->msg : pa_frame_strerror(e->code);
    if (e->path[0])
        return snprintf(buf, n, "%s: %s", e->path, msg);
    return snprintf(buf, n, "%s", msg);
}

const char *pa_agent_kind_name(enum pa_agent_kind k)
{
    switch (k) {
    case PA_KIND_NIMBLE:
        return "nimble";
    case PA_KIND_WOWZA:
        return "wowza";
    }
    return "unknown";
}

enum pa_agent_kind pa_agent_kind_parse(const char *s, size_t len)
{
    if (len == 6 && memcmp(s, "nimble", 6) == 0)
        return PA_KIND_NIMBLE;
    if (len == 5 && memcmp(s, "wowza", 5) == 0)
        return PA_KIND_WOWZA;
    return (enum pa_agent_kind)0;
}

void pa_path_put(char *buf, size_t n, size_t *off, const char *s, size_t len)
{
    if (n == 0 || *off + 1 >= n)
        return;
    size_t room = n - 1 - *off;
    if (len > room)
        len = room;
    memcpy(buf + *off, s, len);
    *off += len;
    buf[*off] = '\0';
}

void pa_path_put_key(char *buf, size_t n, size_t *off, const uint8_t *p, size_t len)
{
    size_t shown = len > PA_PATH_KEY_SHOWN ? PA_PATH_KEY_SHOWN : len;
    for (size_t i = 0; i < shown; i++) {
        char tmp[5];
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\') {
            tmp[0] = (char)p[i];
            pa_path_put(buf, n, off, tmp, 1);
        } else {
            snprintf(tmp, sizeof tmp, "\\x%02x", p[i]);
            pa_path_put(buf, n, off, tmp, 4);
        }
    }
    if (shown < len)
        pa_path_put(buf, n, off, "...", 3);
}

void pa_path_put_index(char *buf, size_t n, size_t *off, uint32_t i)
{
    char tmp[16];
    int k = snprintf(tmp, sizeof tmp, "[%u]", i);
    if (k > 0)
        pa_path_put(buf, n, off, tmp, (size_t)k);
}
