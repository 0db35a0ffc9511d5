// Test hooks of our SHA-256 compression (sha256_process.c), which tools/setup adds to
// libmbedcrypto.a: the hardware and the portable paths must compute the same digests.

#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// Nonzero when this CPU has the SHA extensions (and SSE4.1), i.e. when the hardware path
// is what mbedTLS uses unless forced off.
int lwm2md_sha256_has_sha_ni(void);

// Nonzero: every compression from now on takes the portable path; zero: back to the
// choice made from CPUID. For tests only.
void lwm2md_sha256_force_portable_for_test(int force);

#ifdef __cplusplus
}
#endif
