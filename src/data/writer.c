/*
 * writer.c — interactions out as TSV ("user item rating timestamp").
 *
 * Ids go back through the id maps, ratings print as %g (4 -> "4", 3.5 ->
 * "3.5"), timestamps as integers.  The file is written next to its final
 * path under a temporary name and renamed into place only after every
 * write, the flush, fsync and fclose succeeded, so a failed write never
 * leaves a partial file at the path (rename(2) is atomic within a
 * directory).
 */
#include "data/data.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Opens "<path>.tmp.<pid>.<n>" exclusively (mode 0666 less the umask). */
static int open_temp(const char *path, char **tmp_out, FILE **f_out)
{
    size_t len = strlen(path) + 64;
    char *tmp = ember_alloc(len, 1);
    if (!tmp)
        return EMBER_ENOMEM;
    for (unsigned n = 0; n < 100; n++) {
        snprintf(tmp, len, "%s.tmp.%ld.%u", path, (long)getpid(), n);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno == EEXIST)
            continue;
        if (fd < 0) {
            int e = errno;
            free(tmp);
            return ember_fail(EMBER_EIO, "%s: cannot create: %s", path, strerror(e));
        }
        FILE *f = fdopen(fd, "w");
        if (!f) {
            int e = errno;
            close(fd);
            unlink(tmp);
            free(tmp);
            return ember_fail(EMBER_EIO, "%s: %s", path, strerror(e));
        }
        *tmp_out = tmp;
        *f_out = f;
        return EMBER_OK;
    }
    free(tmp);
    return ember_fail(EMBER_EIO, "%s: cannot find a free temporary name", path);
}

/* "\t<rating>\t<timestamp>\n"; whole ratings below 1e6 take a path that
 * prints what %g would, without the float formatting. */
static void put_number_fields(FILE *f, float rating, int64_t ts)
{
    char buf[64];
    int n;
    if (rating > -1e6f && rating < 1e6f && rating == (float)(int32_t)rating && !signbit(rating))
        n = snprintf(buf, sizeof buf, "\t%" PRId32 "\t%" PRId64 "\n", (int32_t)rating, ts);
    else
        n = snprintf(buf, sizeof buf, "\t%g\t%" PRId64 "\n", (double)rating, ts);
    fwrite(buf, 1, (size_t)n, f);
}

int data_write_tsv(const char *path, const ember_coo *c, const ember_idmap *users,
                   const ember_idmap *items)
{
    if (!path || !c || !users || !items)
        return ember_fail(EMBER_EINVAL, "data_write_tsv: path, rows and id maps are required");
    char *tmp = NULL;
    FILE *f = NULL;
    int st = open_temp(path, &tmp, &f);
    if (st)
        return st;
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    fputs("user\titem\trating\ttimestamp\n", f);
    for (size_t k = 0; k < c->n && !ferror(f); k++) {
        const char *u = ember_idmap_name(users, c->user[k]);
        const char *i = ember_idmap_name(items, c->item[k]);
        if (!u || !i) {
            st = ember_fail(EMBER_EINVAL, "%s: row %zu has a %s index outside the id map", path, k,
                            u ? "item" : "user");
            break;
        }
        fputs(u, f);
        putc('\t', f);
        fputs(i, f);
        put_number_fields(f, c->rating[k], c->ts[k]);
    }
    if (st == EMBER_OK && (ferror(f) || fflush(f) != 0 || fsync(fileno(f)) != 0))
        st = ember_fail(EMBER_EIO, "%s: write failed: %s", path, strerror(errno));
    if (fclose(f) != 0 && st == EMBER_OK)
        st = ember_fail(EMBER_EIO, "%s: close failed: %s", path, strerror(errno));
    if (st == EMBER_OK && rename(tmp, path) != 0)
        st = ember_fail(EMBER_EIO, "%s: cannot rename into place: %s", path, strerror(errno));
    if (st != EMBER_OK)
        unlink(tmp);
    free(tmp);
    return st;
}
