/*
 * client_queue.c - the queue of a panelagent_client and what works on it
 * from the application's threads: submit, flush and the counters, plus the
 * events that carry acks and errors to the callbacks.
 *
 * The queue is a list in ascending seq, shared under the client's |mu|.
 * An item stays in it until the gateway acknowledges it (202), refuses it
 * for good (4xx), it is dropped to make room (DROP_OLDEST) or reported
 * undelivered at close.
 *
 * Events (acks, errors) are queued under |mu| and delivered by the I/O
 * thread after the lock is released, so a callback may submit.  Each one
 * is counted when queued (ev_queued) and when its callback has returned
 * (ev_delivered): flush waits for both the queue and the callbacks of the
 * frames it waited for.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client_internal.h"

int64_t pa_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t pa_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void pa_client_log(struct panelagent_client *cl, int level, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (cl->o.log_fn == NULL)
        return;
    va_start(ap, fmt);
    if (vsnprintf(line, sizeof line, fmt, ap) < 0)
        line[0] = '\0';
    va_end(ap);
    cl->o.log_fn(level, line, cl->o.log_ud);
}

void pa_client_wake(struct panelagent_client *cl)
{
    uint64_t one = 1;
    if (cl->wake_fd < 0)
        return;
    ssize_t n = write(cl->wake_fd, &one, sizeof one);
    (void)n; /* EAGAIN: a wake-up is pending anyway */
}

int pa_client_on_io_thread(const struct panelagent_client *cl)
{
    return cl->thr_started && pthread_equal(pthread_self(), cl->thr);
}

/* ---- events --------------------------------------------------------------------- */

void pa_event_push(struct panelagent_client *cl, int err, uint64_t seq, const char *detail)
{
    if (err == 0 ? cl->o.ack_fn == NULL : cl->o.error_fn == NULL)
        return;
    struct pa_event *e = malloc(sizeof *e);
    if (e == NULL)
        return; /* out of memory: the event is lost, the counters are not */
    e->next = NULL;
    e->err = err;
    e->seq = seq;
    snprintf(e->detail, sizeof e->detail, "%s", detail ? detail : "");
    if (cl->ev_tail != NULL)
        cl->ev_tail->next = e;
    else
        cl->ev_head = e;
    cl->ev_tail = e;
    cl->ev_queued++;
}

void pa_deliver_events(struct panelagent_client *cl)
{
    for (;;) {
        pthread_mutex_lock(&cl->mu);
        struct pa_event *e = cl->ev_head;
        cl->ev_head = cl->ev_tail = NULL;
        pthread_mutex_unlock(&cl->mu);
        if (e == NULL)
            return;
        while (e != NULL) {
            struct pa_event *next = e->next;
            if (e->err == 0)
                cl->o.ack_fn(e->seq, cl->o.ack_ud);
            else
                cl->o.error_fn(e->err, e->seq, e->detail, cl->o.error_ud);
            free(e);
            e = next;
            /* after the callback returned: flush may be waiting for it */
            pthread_mutex_lock(&cl->mu);
            cl->ev_delivered++;
            pthread_cond_broadcast(&cl->cv);
            pthread_mutex_unlock(&cl->mu);
        }
    }
}

/* ---- the queue (mu held) ------------------------------------------------------------ */

void pa_item_free(struct pa_item *it)
{
    if (it == NULL)
        return;
    free(it->data);
    free(it);
}

void pa_queue_insert(struct panelagent_client *cl, struct pa_item *it)
{
    struct pa_item *p = cl->tail;
    while (p != NULL && p->seq > it->seq)
        p = p->prev;
    it->prev = p;
    it->next = p ? p->next : cl->head;
    if (it->next != NULL)
        it->next->prev = it;
    else
        cl->tail = it;
    if (p != NULL)
        p->next = it;
    else
        cl->head = it;
    cl->n_items++;
    cl->n_bytes += it->len;
    if (it->seq > cl->max_seq)
        cl->max_seq = it->seq;
}

void pa_queue_remove(struct panelagent_client *cl, struct pa_item *it)
{
    if (it->prev != NULL)
        it->prev->next = it->next;
    else
        cl->head = it->next;
    if (it->next != NULL)
        it->next->prev = it->prev;
    else
        cl->tail = it->prev;
    cl->n_items--;
    cl->n_bytes -= it->len;
    if (it->inflight)
        cl->n_inflight--;
    pa_item_free(it);
    pthread_cond_broadcast(&cl->cv);
}

/* ---- submit --------------------------------------------------------------------- */

int panelagent_client_submit_take(panelagent_client *cl, panelagent_frame *f,
                                  uint64_t *seq_out, char *err, size_t errlen)
{
    struct pa_buf b;
    struct pa_item *it = NULL;
    uint64_t seq = 0, now;
    int rv;

    if (seq_out != NULL)
        *seq_out = 0;
    if (cl == NULL || f == NULL) {
        panelagent_frame_free(f);
        pa_seterr(err, errlen, "no client or no frame");
        return PANELAGENT_EINVAL;
    }
    pthread_mutex_lock(&cl->mu);
    rv = cl->closing ? PANELAGENT_ECLOSED : PANELAGENT_OK;
    if (rv == PANELAGENT_OK && cl->o.queue_policy == PANELAGENT_QUEUE_REJECT_NEW &&
        cl->n_items >= (uint64_t)cl->o.queue_max_frames) {
        cl->st[PANELAGENT_STAT_REJECTED_FULL]++;
        rv = PANELAGENT_EAGAIN;
    }
    pthread_mutex_unlock(&cl->mu);
    if (rv != PANELAGENT_OK) {
        panelagent_frame_free(f);
        pa_seterr(err, errlen, "%s", panelagent_strerror(rv));
        return rv;
    }

    now = pa_unix_ms();
    pthread_mutex_lock(&cl->seq_mu);
    rv = pa_seq_next(cl->seq, now, &seq, err, errlen);
    pthread_mutex_unlock(&cl->seq_mu);
    if (rv != PANELAGENT_OK) {
        panelagent_frame_free(f);
        return rv;
    }
    pa_buf_init(&b, NULL);
    rv = pa_builder_encode(f, seq, now, &b, err, errlen);
    panelagent_frame_free(f);
    if (rv != PANELAGENT_OK) {
        pa_buf_cleanup(&b);
        return rv;
    }
    it = calloc(1, sizeof *it);
    if (it == NULL) {
        pa_buf_cleanup(&b);
        pa_seterr(err, errlen, "out of memory");
        return PANELAGENT_ENOMEM;
    }
    it->seq = seq;
    it->data = b.data; /* the item owns the encoded bytes now */
    it->len = b.len;

    pthread_mutex_lock(&cl->mu);
    if (cl->closing) {
        rv = PANELAGENT_ECLOSED;
        goto unlock;
    }
    if (it->len > (uint64_t)cl->o.queue_max_bytes) {
        cl->st[PANELAGENT_STAT_REJECTED_FULL]++;
        rv = PANELAGENT_EAGAIN;
        goto unlock;
    }
    while (cl->n_items + 1 > (uint64_t)cl->o.queue_max_frames ||
           cl->n_bytes + it->len > (uint64_t)cl->o.queue_max_bytes) {
        struct pa_item *old = NULL;
        if (cl->o.queue_policy == PANELAGENT_QUEUE_DROP_OLDEST)
            for (old = cl->head; old != NULL && old->inflight; old = old->next)
                ;
        if (old == NULL) {
            cl->st[PANELAGENT_STAT_REJECTED_FULL]++;
            rv = PANELAGENT_EAGAIN;
            goto unlock;
        }
        char d[96];
        snprintf(d, sizeof d, "frame %" PRIu64 " dropped from the full queue", old->seq);
        pa_event_push(cl, PANELAGENT_EDROPPED, old->seq, d);
        cl->st[PANELAGENT_STAT_DROPPED_OLDEST]++;
        pa_queue_remove(cl, old);
    }
    pa_queue_insert(cl, it);
    it = NULL;
    cl->st[PANELAGENT_STAT_SUBMITTED]++;
    rv = PANELAGENT_OK;
unlock:
    pthread_mutex_unlock(&cl->mu);
    pa_item_free(it);
    pa_client_wake(cl); /* also for the EDROPPED events */
    if (rv != PANELAGENT_OK) {
        pa_seterr(err, errlen, "%s", panelagent_strerror(rv));
        return rv;
    }
    if (seq_out != NULL)
        *seq_out = seq;
    return PANELAGENT_OK;
}

/* ---- flush / stat --------------------------------------------------------------------- */

int panelagent_client_flush(panelagent_client *cl, int timeout_ms)
{
    struct timespec dl;
    int rv = PANELAGENT_OK;

    if (cl == NULL)
        return PANELAGENT_EINVAL;
    if (pa_client_on_io_thread(cl))
        return PANELAGENT_EBUSY;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&cl->mu);
    uint64_t mark = cl->max_seq;
    /* First every frame up to |mark| leaves the queue; its ack or error is
     * queued in the same locked section.  Then the callbacks of every
     * event queued by that time must have returned: a caller that flushed
     * has seen the outcome of what it flushed. */
    int queue_done = 0;
    uint64_t ev_mark = 0;
    while (!cl->stop) {
        if (!queue_done && !(cl->head != NULL && cl->head->seq <= mark)) {
            queue_done = 1;
            ev_mark = cl->ev_queued;
        }
        if (queue_done && cl->ev_delivered >= ev_mark)
            break;
        int e = timeout_ms < 0 ? pthread_cond_wait(&cl->cv, &cl->mu)
                               : pthread_cond_timedwait(&cl->cv, &cl->mu, &dl);
        if (e == ETIMEDOUT) {
            if (!queue_done && !(cl->head != NULL && cl->head->seq <= mark)) {
                queue_done = 1;
                ev_mark = cl->ev_queued;
            }
            if (!queue_done || cl->ev_delivered < ev_mark)
                rv = PANELAGENT_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&cl->mu);
    return rv;
}

int panelagent_client_stat(panelagent_client *cl, panelagent_stat id, uint64_t *out)
{
    if (cl == NULL || out == NULL || id < PANELAGENT_STAT_SUBMITTED ||
        id > PANELAGENT_STAT_UNDELIVERED)
        return PANELAGENT_EINVAL;
    pthread_mutex_lock(&cl->mu);
    if (id == PANELAGENT_STAT_QUEUED)
        *out = cl->n_items;
    else if (id == PANELAGENT_STAT_QUEUED_BYTES)
        *out = cl->n_bytes;
    else
        *out = cl->st[id];
    pthread_mutex_unlock(&cl->mu);
    return PANELAGENT_OK;
}
