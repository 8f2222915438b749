/*
 * wipe.h - what a wipe of memory cannot reach: the CPU's vector registers.
 *
 * memcpy and memset move data through the SIMD registers (on x86-64 the
 * C library picks SSE2, AVX2 or AVX-512 forms, the last using ymm16-ymm31
 * so as to need no vzeroupper).  What the last large copy moved stays in
 * those registers until something else overwrites them; they are part of
 * a thread's saved state, which a core file and a ptrace attach show
 * (docs/PRIVACY.md).  explicit_bzero of a buffer does not clear them.
 */
#ifndef GW_WIPE_H
#define GW_WIPE_H

/* Zeroes the vector registers of the calling thread that the C library's
 * copies use: on x86-64 xmm0-15 (SSE), ymm0-15 (AVX, vzeroall) and
 * zmm16-31 (AVX-512), whichever the CPU has.  Elsewhere it does nothing.
 * Call it on the thread that handled personal data, once the buffers are
 * wiped. */
void gw_wipe_vector_regs(void);

#endif /* GW_WIPE_H */
