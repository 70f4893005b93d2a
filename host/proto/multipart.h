/* multipart/form-data bodies (RFC 7578 over RFC 2046): split into parts, each
 * with its form field name, optional filename and content type, and body. The
 * body slices point into the input; names are unquoted into the part itself. */
#ifndef LUBECK_MULTIPART_H
#define LUBECK_MULTIPART_H

#include "slice.h"

#define MULTIPART_MAX_NAME 1024      /* bytes of a field name or filename */
#define MULTIPART_MAX_HEAD 8192      /* bytes of one part's header block */
#define MULTIPART_MAX_PARTS 10000

typedef struct multipart_part {
    slice name;                      /* points into name_buf */
    slice filename;                  /* p NULL: a plain field (no filename parameter) */
    slice content_type;              /* p NULL when the part did not say */
    slice body;
    char name_buf[MULTIPART_MAX_NAME], filename_buf[MULTIPART_MAX_NAME];
} multipart_part;

typedef int (*multipart_fn)(void *ud, const multipart_part *part);   /* nonzero stops */

/* The boundary parameter of a Content-Type value ("multipart/form-data;
 * boundary=xyz", quoted or not). 0, or -1 when it is not multipart/form-data or
 * has no usable boundary (1-70 characters). */
int multipart_boundary(const char *ctype, size_t n, slice *boundary);

/* Calls fn for each part that has a name, in order. Returns the number of parts
 * reported, or -1 with *err set to a short static reason (no opening or closing
 * boundary, a malformed part head, too many parts). */
int multipart_parse(const char *body, size_t n, slice boundary, multipart_fn fn, void *ud,
                    const char **err);

#endif
