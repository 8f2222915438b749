/*
 * jstool.c - reads and sets up JetStream streams for the integration tests,
 * with libnats alone (none of the gateway's code: an independent checker).
 *
 *   jstool dump URLS STREAM
 *       "stream replicas=R msgs=M first=F last=L leader=NODE" (NODE: the
 *       stream leader's server name, "-" when none), then one line per
 *       message: "SSEQ SUBJECT MSGID SERVER_ID SEQ TS_MS RECEIVED_MS FORMAT LEN"
 *       (a missing header prints "-")
 *   jstool add-stream URLS STREAM SUBJECT REPLICAS
 *       creates a stream (file storage) with those subjects and replicas
 *   jstool consumer URLS STREAM CONSUMER
 *       "pending=P ack_pending=A redelivered=R delivered=D ack_wait_ms=W":
 *       messages not yet delivered, delivered and not acknowledged,
 *       delivered more than once (of those pending an ack), delivered in all
 *       (the consumer's sequence), and its ack wait
 *   jstool consumers URLS STREAM
 *       "consumers=N": how many consumers the stream has
 *   jstool pub URLS SUBJECT FILE [KEY=VALUE ...]
 *       publishes FILE's bytes with those headers (a message breaking the
 *       contract, for the consumers' tests); prints "stream_seq=S"
 *   jstool kv-put URLS BUCKET KEY VALUE [REPLICAS]
 *       puts VALUE (text) under KEY, making the bucket (file storage,
 *       history 1, REPLICAS, default 3) when missing; prints "revision=R".
 *       For the tests that write the registry bucket as it is documented
 *       (docs/STORAGE.md), or break it on purpose.
 *   jstool kv-del URLS BUCKET KEY
 *       deletes KEY (a delete marker, as panelgatectl erase leaves)
 *
 * URLS is comma-separated.  Exit 0, or 1 with the reason on stderr.
 *
 * For a cluster with TLS or authorization (scripts/nats.sh), from the
 * environment: JSTOOL_CA (CA file: TLS on), JSTOOL_CERT + JSTOOL_KEY (a
 * client certificate), JSTOOL_USER + JSTOOL_PASSWORD, JSTOOL_TOKEN.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

static int die(const char *what, natsStatus s, jsErrCode e)
{
    fprintf(stderr, "jstool: %s: %s (JetStream error %d)\n", what, natsStatus_GetText(s), (int)e);
    return 1;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? v : NULL;
}

/* TLS and credentials from the environment (see the top). */
static natsStatus security(natsOptions *o)
{
    natsStatus s = NATS_OK;
    if (env("JSTOOL_CA") != NULL) {
        s = natsOptions_SetSecure(o, true);
        if (s == NATS_OK)
            s = natsOptions_LoadCATrustedCertificates(o, env("JSTOOL_CA"));
    }
    if (s == NATS_OK && env("JSTOOL_CERT") != NULL)
        s = natsOptions_LoadCertificatesChain(o, env("JSTOOL_CERT"), env("JSTOOL_KEY"));
    if (s == NATS_OK && env("JSTOOL_USER") != NULL)
        s = natsOptions_SetUserInfo(o, env("JSTOOL_USER"), env("JSTOOL_PASSWORD"));
    if (s == NATS_OK && env("JSTOOL_TOKEN") != NULL)
        s = natsOptions_SetToken(o, env("JSTOOL_TOKEN"));
    return s;
}

static int connect(const char *urls, natsConnection **nc, jsCtx **js)
{
    natsOptions *o = NULL;
    char *copy = strdup(urls), *save = NULL;
    const char *list[16];
    int n = 0;
    for (char *t = strtok_r(copy, ",", &save); t && n < 16; t = strtok_r(NULL, ",", &save))
        list[n++] = t;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetServers(o, list, n);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, 3000);
    if (s == NATS_OK)
        s = security(o);
    if (s == NATS_OK)
        s = natsConnection_Connect(nc, o);
    natsOptions_Destroy(o);
    free(copy);
    if (s != NATS_OK)
        return die("connect", s, 0);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    s = natsConnection_JetStream(js, *nc, &jo);
    return s == NATS_OK ? 0 : die("jetstream", s, 0);
}

static const char *hdr(natsMsg *m, const char *key)
{
    const char *v = NULL;
    return natsMsgHeader_Get(m, key, &v) == NATS_OK && v != NULL ? v : "-";
}

static int dump(jsCtx *js, const char *stream)
{
    jsStreamInfo *si = NULL;
    jsErrCode e = 0;
    natsStatus s = js_GetStreamInfo(&si, js, stream, NULL, &e);
    if (s != NATS_OK)
        return die("stream info", s, e);
    uint64_t first = si->State.FirstSeq, last = si->State.LastSeq;
    const char *leader = si->Cluster != NULL && si->Cluster->Leader != NULL &&
                                 *si->Cluster->Leader != '\0'
                             ? si->Cluster->Leader
                             : "-";
    printf("stream replicas=%" PRId64 " msgs=%" PRIu64 " first=%" PRIu64 " last=%" PRIu64
           " leader=%s\n",
           si->Config->Replicas, si->State.Msgs, first, last, leader);
    jsStreamInfo_Destroy(si);
    for (uint64_t q = first; q > 0 && q <= last; q++) {
        natsMsg *m = NULL;
        e = 0;
        s = js_GetMsg(&m, js, stream, q, NULL, &e);
        if (s == NATS_NOT_FOUND || e == JSNoMessageFoundErr)
            continue;
        if (s != NATS_OK)
            return die("get message", s, e);
        printf("%" PRIu64 " %s %s %s %s %s %s %s %d\n", q, natsMsg_GetSubject(m),
               hdr(m, "Nats-Msg-Id"), hdr(m, "Panelgate-Server-Id"), hdr(m, "Panelgate-Seq"),
               hdr(m, "Panelgate-Ts-Ms"), hdr(m, "Panelgate-Received-Ms"),
               hdr(m, "Panelgate-Format"), natsMsg_GetDataLength(m));
        natsMsg_Destroy(m);
    }
    return 0;
}

static int add_stream(jsCtx *js, const char *stream, const char *subject, int replicas)
{
    jsStreamConfig sc;
    jsStreamInfo *si = NULL;
    jsErrCode e = 0;
    const char *subjects[1] = {subject};
    jsStreamConfig_Init(&sc);
    sc.Name = stream;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Replicas = replicas;
    natsStatus s = js_AddStream(&si, js, &sc, NULL, &e);
    if (s != NATS_OK)
        return die("add stream", s, e);
    jsStreamInfo_Destroy(si);
    return 0;
}

static int consumer(jsCtx *js, const char *stream, const char *name)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode e = 0;
    natsStatus s = js_GetConsumerInfo(&ci, js, stream, name, NULL, &e);
    if (s != NATS_OK)
        return die("consumer info", s, e);
    printf("pending=%" PRIu64 " ack_pending=%" PRId64 " redelivered=%" PRId64
           " delivered=%" PRIu64 " ack_wait_ms=%" PRId64 "\n",
           ci->NumPending, ci->NumAckPending, ci->NumRedelivered, ci->Delivered.Consumer,
           ci->Config->AckWait / 1000000);
    jsConsumerInfo_Destroy(ci);
    return 0;
}

static int consumers(jsCtx *js, const char *stream)
{
    jsStreamInfo *si = NULL;
    jsErrCode e = 0;
    natsStatus s = js_GetStreamInfo(&si, js, stream, NULL, &e);
    if (s != NATS_OK)
        return die("stream info", s, e);
    printf("consumers=%" PRId64 "\n", si->State.Consumers);
    jsStreamInfo_Destroy(si);
    return 0;
}

static int pub(jsCtx *js, const char *subject, const char *file, int nh, char **hv)
{
    static char data[1 << 20];
    FILE *f = fopen(file, "rb");
    if (f == NULL) {
        perror(file);
        return 1;
    }
    size_t n = fread(data, 1, sizeof data, f);
    fclose(f);
    natsMsg *m = NULL;
    jsPubAck *pa = NULL;
    jsErrCode e = 0;
    natsStatus s = natsMsg_Create(&m, subject, NULL, data, (int)n);
    for (int i = 0; s == NATS_OK && i < nh; i++) {
        char *eq = strchr(hv[i], '=');
        if (eq == NULL) {
            fprintf(stderr, "jstool: header '%s': not KEY=VALUE\n", hv[i]);
            natsMsg_Destroy(m);
            return 1;
        }
        *eq = '\0';
        s = natsMsgHeader_Add(m, hv[i], eq + 1);
    }
    if (s == NATS_OK)
        s = js_PublishMsg(&pa, js, m, NULL, &e);
    natsMsg_Destroy(m);
    if (s != NATS_OK)
        return die("publish", s, e);
    printf("stream_seq=%" PRIu64 "\n", pa->Sequence);
    jsPubAck_Destroy(pa);
    return 0;
}

static int kv_bind(jsCtx *js, const char *bucket, int replicas, kvStore **kv)
{
    natsStatus s = js_KeyValue(kv, js, bucket);
    if (s == NATS_NOT_FOUND && replicas > 0) {
        kvConfig kc;
        kvConfig_Init(&kc);
        kc.Bucket = bucket;
        kc.History = 1;
        kc.StorageType = js_FileStorage;
        kc.Replicas = replicas;
        s = js_CreateKeyValue(kv, js, &kc);
    }
    return s == NATS_OK ? 0 : die("bucket", s, 0);
}

static int kv_put(jsCtx *js, const char *bucket, const char *key, const char *value,
                  int replicas)
{
    kvStore *kv = NULL;
    uint64_t rev = 0;
    if (kv_bind(js, bucket, replicas, &kv) != 0)
        return 1;
    natsStatus s = kvStore_PutString(&rev, kv, key, value);
    kvStore_Destroy(kv);
    if (s != NATS_OK)
        return die("put", s, 0);
    printf("revision=%" PRIu64 "\n", rev);
    return 0;
}

static int kv_del(jsCtx *js, const char *bucket, const char *key)
{
    kvStore *kv = NULL;
    if (kv_bind(js, bucket, 0, &kv) != 0)
        return 1;
    natsStatus s = kvStore_Delete(kv, key);
    kvStore_Destroy(kv);
    return s == NATS_OK ? 0 : die("delete", s, 0);
}

int main(int argc, char **argv)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    int rc;

    if (argc == 4 && strcmp(argv[1], "dump") == 0) {
        if ((rc = connect(argv[2], &nc, &js)) == 0)
            rc = dump(js, argv[3]);
    } else if (argc == 6 && strcmp(argv[1], "add-stream") == 0) {
        if ((rc = connect(argv[2], &nc, &js)) == 0)
            rc = add_stream(js, argv[3], argv[4], atoi(argv[5]));
    } else if (argc == 5 && strcmp(argv[1], "consumer") == 0) {
        if ((rc = connect(argv[2], &nc, &js)) == 0)
            rc = consumer(js, argv[3], argv[4]);
    } else if (argc == 4 && strcmp(argv[1], "consumers") == 0) {
        if ((rc = connect(argv[2], &nc, &js)) == 0)
            rc = consumers(js, argv[3]);
    } else if (argc >= 5 && strcmp(argv[1], "pub") == 0) {
        if ((rc = connect(argv[2], &nc, &js)) == 0)
            rc = pub(js, argv[3], argv[4], argc - 5, argv + 5);
    } else if ((argc == 6 || argc == 7) && strcmp(argv[1], "kv-put") == 0) {
        if ((rc = connect(argv[2], &nc, &js)) == 0)
            rc = kv_put(js, argv[3], argv[4], argv[5], argc == 7 ? atoi(argv[6]) : 3);
    } else if (argc == 5 && strcmp(argv[1], "kv-del") == 0) {
        if ((rc = connect(argv[2], &nc, &js)) == 0)
            rc = kv_del(js, argv[3], argv[4]);
    } else {
        fprintf(stderr, "usage: jstool dump URLS STREAM | add-stream URLS STREAM SUBJECT REPLICAS"
                        " | consumer URLS STREAM CONSUMER | consumers URLS STREAM"
                        " | pub URLS SUBJECT FILE [KEY=VALUE ...]"
                        " | kv-put URLS BUCKET KEY VALUE [REPLICAS] | kv-del URLS BUCKET KEY\n");
        return 2;
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return rc;
}
