/* Models: a schema compiled once from a declaration (field kinds, bounds,
 * patterns, choices, required, defaults) and a validator that walks a value
 * against it, building the cleaned copy (defaults filled in, unknown fields
 * dropped) or reporting errors keyed by field path ("tags.3", list positions
 * from 1).
 *
 * The walk knows nothing of Lua: it reads the input and builds the output
 * through a model_io, a small stack-shaped value interface. lua_model.c
 * implements it over Lua tables; the unit tests and fuzz targets over plain C
 * values. */
#ifndef LUBECK_MODEL_H
#define LUBECK_MODEL_H

#include <stddef.h>

typedef enum model_kind {
    MODEL_STRING, MODEL_INTEGER, MODEL_NUMBER, MODEL_BOOLEAN, MODEL_EMAIL, MODEL_URL,
    MODEL_UUID, MODEL_DATETIME, MODEL_LIST, MODEL_OBJECT,
} model_kind;

#define MODEL_MAX_DEPTH 32       /* nesting of lists and objects in one schema */
#define MODEL_MAX_ERRORS 100     /* a walk stops reporting (and walking) after this */
#define MODEL_MAX_INTEGER 9007199254740992.0   /* 2^53: integers are exact up to here */

typedef struct model model;              /* named fields */
typedef struct model_field model_field;  /* one kind with its options */

/* ---- building a schema. Setters return 0, or -1 with a reason in err. ---- */

model *model_new(void);
/* Adds a field; m takes ownership of f (also on failure). Names are unique. */
int model_add(model *m, const char *name, size_t len, model_field *f, char *err, size_t errlen);
/* Frees m and its fields; models referenced by MODEL_OBJECT fields are borrowed. */
void model_free(model *m);
int model_nfields(const model *m);

model_field *model_field_new(model_kind kind);
void model_field_free(model_field *f);
/* min/max: characters for strings, items for lists, values for numbers. */
void model_field_bounds(model_field *f, int has_min, double min, int has_max, double max);
void model_field_flags(model_field *f, int required, int is_private);
/* An opaque reference the io resolves in put_default (e.g. a Lua registry ref). */
void model_field_default(model_field *f, long ref);
int model_field_pattern(model_field *f, const char *re, size_t len, char *err, size_t errlen);
int model_field_choice(model_field *f, const char *s, size_t len);
/* The item kind of a MODEL_LIST (owned) / the model of a MODEL_OBJECT (borrowed). */
void model_field_item(model_field *list, model_field *item);
void model_field_object(model_field *f, const model *m);
int model_field_depth(const model_field *f);   /* 1 for a scalar */

/* ---- the value interface ---- */

typedef enum model_type {
    MODEL_T_ABSENT, MODEL_T_NULL, MODEL_T_BOOLEAN, MODEL_T_NUMBER, MODEL_T_STRING,
    MODEL_T_TABLE, MODEL_T_OTHER,
} model_type;

/* The input is a stack: the walk looks at its top, descends with push_index /
 * push_field and comes back with pop. The output is a second stack the walk
 * builds the cleaned value on. */
typedef struct model_io {
    void *ud;
    int coerce;          /* form input: "42", "true", "" stand for 42, true, absent */
    model_type (*type)(void *ud);
    int (*boolean)(void *ud);
    double (*number)(void *ud);
    const char *(*string)(void *ud, size_t *len);
    long (*seq_len)(void *ud);          /* items of a list, or -1 when it is not one */
    void (*push_index)(void *ud, long i);   /* 1-based */
    void (*push_field)(void *ud, const char *name, size_t len);
    void (*pop)(void *ud);
    void (*new_object)(void *ud, int nfields);
    void (*new_list)(void *ud, long n);
    void (*set_field)(void *ud, const char *name, size_t len);   /* pops into the object below */
    void (*set_index)(void *ud, long i);                         /* pops into the list below */
    void (*put_copy)(void *ud);         /* the input top, as it is */
    void (*put_number)(void *ud, double v);
    void (*put_boolean)(void *ud, int v);
    void (*put_default)(void *ud, long ref);
    /* path is "" for the value itself; the first error of a path is the one kept */
    void (*error)(void *ud, const char *path, const char *msg);
} model_io;

/* Validates the input top against m. Returns 0 with the cleaned value on the
 * output stack, or the number of errors reported (the output stack then holds
 * leftovers the caller discards). */
int model_validate(const model *m, const model_io *io);

/* ---- the checks, also usable alone ---- */

/* Code points of valid UTF-8 (no overlongs, surrogates, or > U+10FFFF), else -1. */
long model_utf8_length(const char *s, size_t n);
/* 1 when s is, by syntax: an RFC 5321/5322 addr-spec (dot-atom or quoted local
 * part, host name or address literal domain); an RFC 3986 URI with scheme http
 * or https and a non-empty host; an RFC 4122 UUID (8-4-4-4-12 hex); an RFC 3339
 * date-time (calendar-checked, leap years included). */
int model_check_email(const char *s, size_t n);
int model_check_url(const char *s, size_t n);
int model_check_uuid(const char *s, size_t n);
int model_check_datetime(const char *s, size_t n);

/* JSON text a decoder accepts silently but an API should refuse: an object with
 * the same key twice (after unescaping), or nesting deeper than max_depth.
 * Returns 0, or -1 with a reason in err. Does not check the rest of the syntax. */
int model_json_check(const char *s, size_t n, int max_depth, char *err, size_t errlen);

#endif
