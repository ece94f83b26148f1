/*
 * fuzz_modelfile.c — libFuzzer target for model files: the container
 * reader (src/core/modelfile.c) and ember_model_load with every model's
 * load (src/models/).  The work is in fuzz_modelfile_body.h, which the
 * corpus replay test shares; a broken invariant traps so libFuzzer keeps
 * the input.  Inputs are also tried with a recomputed checksum, so that
 * mutations reach the model-level checks behind it.
 *
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DEMBER_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_modelfile
 *   ./build-fuzz/fuzz_modelfile -max_len=65536 fuzz/corpus/modelfile
 *
 * The seeds in fuzz/corpus/modelfile/ are the good files of
 * tests/models/test_model_files.c (EMBER_SEED_DIR=fuzz/corpus/modelfile).
 */
#include "fuzz_modelfile_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_modelfile_one(data, size) != 0)
        __builtin_trap();
    return 0;
}
