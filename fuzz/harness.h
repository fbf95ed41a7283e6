/* The libFuzzer entry points of fuzz/harness.c, also called by fuzz/replay.c. */
#ifndef MMAPPER_FUZZ_HARNESS_H
#define MMAPPER_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
