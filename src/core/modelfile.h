/*
 * modelfile.h — the model file container: named tensors in one
 * self-contained, checksummed, mmap-able file.
 *
 * Layout (little-endian):
 *   [0, 64)        header: magic "EMBERMF\0", u32 version, u32 n_sections,
 *                  u64 file_size, u64 table_offset, zero padding
 *   sections       each 64-byte aligned, raw array data
 *   table          n_sections entries of 128 bytes: char name[56] (NUL-
 *                  terminated), u32 dtype, u32 ndim, u64 shape[4],
 *                  u64 offset, u64 nbytes, 16 reserved bytes
 *   [size-16, size) trailer: u64 XXH3 of bytes [0, size-16), magic "EMBEREND"
 * A reader checks the magics, the version, the size, the checksum and
 * every section's bounds, alignment and byte count before it hands out a
 * pointer, so a truncated, corrupt or foreign file is refused with a
 * message and never read out of bounds.
 */
#ifndef EMBER_MODELFILE_H
#define EMBER_MODELFILE_H

#include "core/core.h"

#define MF_VERSION 1
#define MF_MAX_SECTIONS 4096

typedef enum { MF_U8 = 1, MF_U32, MF_U64, MF_I64, MF_F32, MF_F64 } mf_dtype;

typedef struct mf_writer mf_writer;
typedef struct mf_reader mf_reader;

mf_writer *mf_writer_new(void);
void mf_writer_free(mf_writer *w);
/* Adds a section; data is borrowed until mf_writer_write returns.  ndim
 * 1..4.  Names are unique, at most 55 bytes. */
int mf_add(mf_writer *w, const char *name, mf_dtype dtype, size_t ndim, const uint64_t *shape,
           const void *data);
int mf_add_1d(mf_writer *w, const char *name, mf_dtype dtype, uint64_t n, const void *data);
/* Writes path atomically (a temporary file, fsync, rename). */
int mf_writer_write(mf_writer *w, const char *path);

/* Maps and validates a file. */
int mf_open(const char *path, mf_reader **out);
/* Validates a buffer (copied); used by tests and the fuzz target. */
int mf_open_mem(const void *data, size_t len, mf_reader **out);
void mf_close(mf_reader *r);
/* A section's data, or NULL with the message set when it is absent or has
 * another dtype / ndim.  shape (4 entries) receives its shape. */
const void *mf_get(const mf_reader *r, const char *name, mf_dtype dtype, size_t ndim,
                   uint64_t *shape);
/* A 1-d section that must hold exactly n elements (n = UINT64_MAX: any;
 * *n_out receives the count). */
const void *mf_get_1d(const mf_reader *r, const char *name, mf_dtype dtype, uint64_t n,
                      uint64_t *n_out);
bool mf_has(const mf_reader *r, const char *name);
const char *mf_path(const mf_reader *r);

#endif
