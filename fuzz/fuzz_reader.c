/*
 * fuzz_reader.c — libFuzzer target for the interaction-file reader
 * (src/data/reader.c).  The work is in fuzz_reader_body.h, which the corpus
 * replay test shares; a broken invariant traps so libFuzzer keeps the input.
 *
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DEMBER_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_reader
 *   ./build-fuzz/fuzz_reader -max_len=4096 -dict=fuzz/reader.dict fuzz/corpus/reader
 */
#include "fuzz_reader_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_reader_one(data, size) != 0)
        __builtin_trap();
    return 0;
}
