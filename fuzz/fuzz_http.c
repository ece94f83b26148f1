/*
 * fuzz_http.c — libFuzzer target for the HTTP API: every input is one
 * request through serve_handle() (src/serve/handler.c), the function the
 * libmicrohttpd glue calls, against a live server state (model, event
 * store, per-user history, keys).  The input format and the checks are in
 * fuzz_http_body.h, which the corpus replay test shares; a broken check
 * traps so libFuzzer keeps the input.
 *
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DEMBER_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_http
 *   ./build-fuzz/fuzz_http -max_len=4096 -dict=fuzz/http.dict fuzz/corpus/http
 */
#include "fuzz_http_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_http_one(data, size) != 0)
        __builtin_trap();
    return 0;
}
