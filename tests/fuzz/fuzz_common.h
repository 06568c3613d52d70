/* Shared by the libFuzzer targets: an assertion that stops the run with a
 * readable line (libFuzzer then saves the input as a crash artifact). */
#ifndef TCPX_P2P_FUZZ_COMMON_H
#define TCPX_P2P_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_ASSERT(cond)                                                 \
  do {                                                                    \
    if (!(cond)) {                                                        \
      fprintf(stderr, "fuzz assertion failed at %s:%d: %s\n", __FILE__,   \
              __LINE__, #cond);                                           \
      abort();                                                            \
    }                                                                     \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
