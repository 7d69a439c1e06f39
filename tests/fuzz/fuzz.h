/* The libFuzzer entry point of fuzz_wire.c, shared with the plain driver
 * fuzz_smoke.c that runs it on a fixed corpus in every test run. */
#ifndef BYPAX_TESTS_FUZZ_H
#define BYPAX_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Runs every wire entry point on data; aborts when a property fails. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
