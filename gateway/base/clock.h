/*
 * clock.h - the gateway's two clocks, in milliseconds.
 *
 * Wall time is for timestamps (what is stored and logged); the monotonic
 * clock is for intervals and buckets, which a step of the wall clock must
 * not stretch or shrink.
 */
#ifndef GW_CLOCK_H
#define GW_CLOCK_H

#include <stdint.h>

/* Unix time (CLOCK_REALTIME). */
int64_t gw_now_ms(void);

/* CLOCK_MONOTONIC: any origin, never steps. */
int64_t gw_mono_ms(void);

#endif /* GW_CLOCK_H */
