/* PostgreSQL's text values: read into C values (host/services/pg_types.c),
 * then to Lua, and Lua lists to array literals (host/lua/lua_pg_types.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lua_pg.h"

static lua_State *L;

static int setup(void **state) { L = luaL_newstate(); return L ? 0 : -1; }
static int teardown(void **state) { lua_close(L); return 0; }

/* The string pg_push_value gives for text of type t. */
static void assert_text(Oid t, const char *in, const char *want)
{
    pg_push_value(L, t, in, strlen(in), 0);
    assert_int_equal(lua_type(L, -1), LUA_TSTRING);
    assert_string_equal(lua_tostring(L, -1), want);
    lua_settop(L, 0);
}

static void assert_number(Oid t, const char *in, double want)
{
    pg_push_value(L, t, in, strlen(in), 0);
    assert_int_equal(lua_type(L, -1), LUA_TNUMBER);
    assert_true(lua_tonumber(L, -1) == want);
    lua_settop(L, 0);
}

static void integers_stay_exact(void **state)
{
    assert_number(PG_INT4, "-2147483648", -2147483648.0);
    assert_number(PG_INT8, "9007199254740992", 9007199254740992.0);
    assert_number(PG_INT8, "-9007199254740992", -9007199254740992.0);
    assert_text(PG_INT8, "9007199254740993", "9007199254740993");
    assert_text(PG_INT8, "-9223372036854775808", "-9223372036854775808");
    assert_number(PG_FLOAT8, "0.1", 0.1);
    assert_text(PG_NUMERIC, "1.10", "1.10");
}

static void timestamps_become_rfc3339(void **state)
{
    assert_text(PG_TIMESTAMP, "2024-02-29 13:14:15.5", "2024-02-29T13:14:15.5");
    assert_text(PG_TIMESTAMPTZ, "2024-02-29 13:14:15+00", "2024-02-29T13:14:15Z");
    assert_text(PG_TIMESTAMPTZ, "2024-02-29 13:14:15-08", "2024-02-29T13:14:15-08:00");
    assert_text(PG_TIMESTAMPTZ, "2024-02-29 13:14:15+05:30", "2024-02-29T13:14:15+05:30");
    assert_text(PG_TIMESTAMPTZ, "infinity", "infinity");
    assert_text(PG_TIMESTAMPTZ, "0044-03-15 12:00:00+00 BC", "0044-03-15 12:00:00+00 BC");
}

static void bytea_hex_is_decoded(void **state)
{
    pg_push_value(L, PG_BYTEA, "\\x00ff41", 8, 0);
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    assert_int_equal(n, 3);
    assert_memory_equal(s, "\0\xff" "A", 3);
    lua_settop(L, 0);
}

static void arrays_become_lists(void **state)
{
    const char *in = "{{1,NULL},{3,4}}";
    pg_push_value(L, 1007, in, strlen(in), 0);   /* int4[] */
    assert_true(lua_istable(L, 1));
    assert_int_equal(lua_objlen(L, 1), 2);
    lua_rawgeti(L, 1, 1);
    lua_rawgeti(L, -1, 2);
    assert_int_equal(lua_type(L, -1), LUA_TLIGHTUSERDATA);   /* NULL: cjson.null */
    assert_null(lua_touserdata(L, -1));
    lua_settop(L, 0);
    assert_text(1007, "{1,2", "{1,2");                          /* malformed: the text */
    assert_text(1007, "{{{{{{{{{1}}}}}}}}}", "{{{{{{{{{1}}}}}}}}}");   /* too deep */
}

static void lists_become_array_literals(void **state)
{
    luaL_dostring(L, "return { 'a \"b\"', 'c\\\\d', 'NULL', '', 1.5, true }");
    lua_pushlightuserdata(L, NULL);
    lua_rawseti(L, 1, 7);
    assert_null(pg_push_array_literal(L, 1, PG_TEXT));
    assert_string_equal(lua_tostring(L, -1), "{\"a \\\"b\\\"\",\"c\\\\d\",\"NULL\",\"\",1.5,t,NULL}");
    lua_settop(L, 0);
    luaL_dostring(L, "return { 'x\\0y' }");
    assert_non_null(pg_push_array_literal(L, 1, PG_TEXT));      /* text holds no NUL */
    assert_null(pg_push_array_literal(L, 1, PG_BYTEA));
    assert_string_equal(lua_tostring(L, -1), "{\"\\\\x780079\"}");
    lua_settop(L, 0);
}

static void numbers_read_back_exactly(void **state)
{
    char out[64];
    pg_format_number(9007199254740992.0, out, sizeof out);
    assert_string_equal(out, "9007199254740992");
    pg_format_number(0.1, out, sizeof out);
    assert_string_equal(out, "0.1");
    pg_format_number(1.0 / 3, out, sizeof out);
    assert_string_equal(out, "0.3333333333333333");   /* 16 digits suffice */
    pg_format_number(-1.0 / 0.0, out, sizeof out);
    assert_string_equal(out, "-Infinity");
}

/* ---- the C readers, no Lua ---------------------------------------------------- */

static void the_readers_say_when_text_is_not_their_shape(void **state)
{
    double v;
    assert_int_equal(pg_text_integer("-42", 3, &v), 0);
    assert_true(v == -42);
    assert_int_equal(pg_text_integer("9007199254740993", 16, &v), -1);   /* a double would round it */
    assert_int_equal(pg_text_integer("12x", 3, &v), -1);
    assert_int_equal(pg_text_float("-Infinity", 9, &v), 0);
    assert_true(v < 0 && v * 0 != 0);
    assert_int_equal(pg_text_float("", 0, &v), -1);
    char ts[64];
    size_t n;
    assert_int_equal(pg_text_timestamp("2024-02-29 13:14:15-08", 22, 1, ts, &n), 0);
    assert_memory_equal(ts, "2024-02-29T13:14:15-08:00", n);
    assert_int_equal(n, 25);
    assert_int_equal(pg_text_timestamp("infinity", 8, 1, ts, &n), -1);
    char *raw;
    assert_int_equal(pg_text_bytea("\\x00ff41", 8, &raw, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(raw, "\0\xff" "A", 3);
    free(raw);
    assert_int_equal(pg_text_bytea("\\x0g", 4, &raw, &n), -1);   /* not hex */
}

/* The events of pg_array_read written out: ( ) for lists, <text> or N. */
typedef struct { char out[256]; size_t n; } trace;

static void say(trace *t, const char *s, size_t len)
{
    if (t->n + len < sizeof t->out) { memcpy(t->out + t->n, s, len); t->n += len; t->out[t->n] = 0; }
}
static int ev_open(void *ud) { say(ud, "(", 1); return 0; }
static int ev_close(void *ud) { say(ud, ")", 1); return 0; }
static int ev_element(void *ud, const char *s, size_t n)
{
    if (!s) { say(ud, "N", 1); return 0; }
    say(ud, "<", 1);
    say(ud, s, n);
    say(ud, ">", 1);
    return 0;
}
static const pg_array_reader tracer = { ev_open, ev_element, ev_close };

static const char *read_array(const char *in)
{
    static trace t;
    memset(&t, 0, sizeof t);
    if (pg_array_read(in, strlen(in), &tracer, &t) != 0) return "malformed";
    return t.out;
}

static void arrays_are_read_as_events(void **state)
{
    assert_string_equal(read_array("{1,NULL,\"NULL\"}"), "(<1>N<NULL>)");
    assert_string_equal(read_array("{{1, 2},{}}"), "((<1><2>)())");
    assert_string_equal(read_array("{\"a \\\"b\\\"\",c d}"), "(<a \"b\">" "<c d>)");
    assert_string_equal(read_array("[0:1]={7,8}"), "(<7><8>)");
    assert_string_equal(read_array("{1,2"), "malformed");
    assert_string_equal(read_array("{1,,2}"), "malformed");
    assert_string_equal(read_array("{1} x"), "malformed");
    assert_string_equal(read_array("{{{{{{{{1}}}}}}}}"), "((((((((<1>))))))))");   /* 8 deep */
    assert_string_equal(read_array("{{{{{{{{{1}}}}}}}}}"), "malformed");                   /* 9 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(integers_stay_exact),
        cmocka_unit_test(timestamps_become_rfc3339),
        cmocka_unit_test(bytea_hex_is_decoded),
        cmocka_unit_test(arrays_become_lists),
        cmocka_unit_test(lists_become_array_literals),
        cmocka_unit_test(numbers_read_back_exactly),
        cmocka_unit_test(the_readers_say_when_text_is_not_their_shape),
        cmocka_unit_test(arrays_are_read_as_events),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
