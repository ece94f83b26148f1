/*
 * error.c — status messages and the thread-local "last error".
 *
 * Library code never prints and never exits: it returns a status and leaves
 * a human message here, which the CLI or the server passes on.
 */
#include "core/core.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[512];

const char *ember_strerror(int status)
{
    switch (status) {
#define EMBER_STATUS_CASE(name, code, msg) \
    case code:                             \
        return msg;
        EMBER_STATUS(EMBER_STATUS_CASE)
#undef EMBER_STATUS_CASE
    }
    return "unknown error";
}

const char *ember_last_error(void)
{
    return last_error;
}

void ember_clear_error(void)
{
    last_error[0] = '\0';
}

int ember_fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}
