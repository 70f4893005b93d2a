/* Unit tests for host/proto/router.c: templates, regexes, method filtering, 404/405,
 * bad patterns and capture names, as docs/reference.md (Routes) describes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "router.h"

static char err[256];

/* Adds a route that must be accepted; on failure the message shows why. */
static int add_ok(router *r, const char *pat, unsigned methods)
{
    err[0] = '\0';
    int idx = router_add(r, pat, strlen(pat), methods, err, sizeof err);
    if (idx < 0)
        fail_msg("router_add('%s') failed: %s", pat, err);
    return idx;
}

/* Adds a route that must be refused; returns the message. */
static const char *add_bad(router *r, const char *pat, size_t len)
{
    int before = router_count(r);
    err[0] = '\0';
    assert_int_equal(router_add(r, pat, len, ROUTER_ANY, err, sizeof err), -1);
    assert_int_equal(router_count(r), before);
    assert_true(strlen(err) > 0);
    return err;
}

static router_result match(router *r, const char *path, unsigned method, router_match *m)
{
    return router_match_path(r, path, strlen(path), method, m);
}

static void assert_capture(const router_match *m, int i, const char *want)
{
    assert_true(i < m->ncaptures);
    assert_non_null(m->captures[i].p);
    assert_int_equal(m->captures[i].n, strlen(want));
    assert_memory_equal(m->captures[i].p, want, strlen(want));
}

static void assert_unset(const router_match *m, int i)
{
    assert_true(i < m->ncaptures);
    assert_null(m->captures[i].p);
    assert_int_equal(m->captures[i].n, 0);
}

static int setup(void **state)
{
    *state = router_new();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    router_free(*state);
    return 0;
}

static void test_method_bit(void **state)
{
    (void)state;
    assert_int_equal(router_method_bit("GET", 3), ROUTER_GET);
    assert_int_equal(router_method_bit("HEAD", 4), ROUTER_HEAD);
    assert_int_equal(router_method_bit("POST", 4), ROUTER_POST);
    assert_int_equal(router_method_bit("PUT", 3), ROUTER_PUT);
    assert_int_equal(router_method_bit("PATCH", 5), ROUTER_PATCH);
    assert_int_equal(router_method_bit("DELETE", 6), ROUTER_DELETE);
    assert_int_equal(router_method_bit("OPTIONS", 7), ROUTER_OPTIONS);
    /* The name comes from a frame and is not NUL-terminated: only len counts. */
    assert_int_equal(router_method_bit("GETTING", 3), ROUTER_GET);
    assert_int_equal(router_method_bit("GET", 2), ROUTER_OTHER);
    assert_int_equal(router_method_bit("get", 3), ROUTER_OTHER);
    assert_int_equal(router_method_bit("PROPFIND", 8), ROUTER_OTHER);
    assert_int_equal(router_method_bit("", 0), ROUTER_OTHER);
}

static void test_template_segment(void **state)
{
    router *r = *state;
    router_match m;
    assert_int_equal(add_ok(r, "/users/:id", ROUTER_ANY), 0);
    assert_int_equal(router_ncaptures(r, 0), 1);
    assert_string_equal(router_capture_name(r, 0, 0), "id");

    assert_int_equal(match(r, "/users/42", ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 0);
    assert_int_equal(m.ncaptures, 1);
    assert_capture(&m, 0, "42");

    assert_int_equal(match(r, "/users/", ROUTER_GET, &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(r, "/users", ROUTER_GET, &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(r, "/users/42/x", ROUTER_GET, &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(r, "/users/42/", ROUTER_GET, &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(r, "/x/users/42", ROUTER_GET, &m), ROUTER_NOT_FOUND);
}

static void test_template_rest(void **state)
{
    router *r = *state;
    router_match m;
    add_ok(r, "/files/*path", ROUTER_ANY);
    assert_string_equal(router_capture_name(r, 0, 0), "path");

    assert_int_equal(match(r, "/files/", ROUTER_GET, &m), ROUTER_FOUND);
    assert_capture(&m, 0, "");   /* matched but empty: p set, n 0 */
    assert_int_equal(match(r, "/files/a/b.txt", ROUTER_GET, &m), ROUTER_FOUND);
    assert_capture(&m, 0, "a/b.txt");
    /* A decoded newline is still part of the rest of the path. */
    assert_int_equal(match(r, "/files/a\nb", ROUTER_GET, &m), ROUTER_FOUND);
    assert_capture(&m, 0, "a\nb");
    assert_int_equal(match(r, "/files", ROUTER_GET, &m), ROUTER_NOT_FOUND);
}

static void test_template_literals(void **state)
{
    router *r = *state;
    router_match m;
    add_ok(r, "/a.b", ROUTER_ANY);
    add_ok(r, "/x+(y)?[z]{1}|$^\\d", ROUTER_ANY);
    assert_int_equal(router_ncaptures(r, 1), 0);

    assert_int_equal(match(r, "/a.b", ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(match(r, "/axb", ROUTER_GET, &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(r, "/x+(y)?[z]{1}|$^\\d", ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 1);
    assert_int_equal(match(r, "/xxyz", ROUTER_GET, &m), ROUTER_NOT_FOUND);
}

static void test_template_two_names(void **state)
{
    router *r = *state;
    router_match m;
    add_ok(r, "/v1/:a/:b", ROUTER_ANY);
    assert_int_equal(router_ncaptures(r, 0), 2);
    assert_string_equal(router_capture_name(r, 0, 0), "a");
    assert_string_equal(router_capture_name(r, 0, 1), "b");

    assert_int_equal(match(r, "/v1/x/yz", ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(m.ncaptures, 2);
    assert_capture(&m, 0, "x");
    assert_capture(&m, 1, "yz");
    assert_int_equal(match(r, "/v1/x", ROUTER_GET, &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(r, "/v1//y", ROUTER_GET, &m), ROUTER_NOT_FOUND);
}

static void test_template_name_then_literal(void **state)
{
    router *r = *state;
    router_match m;
    add_ok(r, "/u/:id.json", ROUTER_ANY);
    assert_int_equal(match(r, "/u/42.json", ROUTER_GET, &m), ROUTER_FOUND);
    assert_capture(&m, 0, "42");
    assert_int_equal(match(r, "/u/42.xml", ROUTER_GET, &m), ROUTER_NOT_FOUND);
}

static void test_template_bare_colon_star(void **state)
{
    router *r = *state;
    router_match m;
    /* ':' or '*' not followed by a name start is an ordinary character. */
    add_ok(r, "/t/10:30/:/*/a*", ROUTER_ANY);
    assert_int_equal(router_ncaptures(r, 0), 0);
    assert_int_equal(match(r, "/t/10:30/:/*/a*", ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(match(r, "/t/10:30/:/*/aaa", ROUTER_GET, &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(r, "/t/10x30/:/*/a*", ROUTER_GET, &m), ROUTER_NOT_FOUND);
}

static void test_regex_positional(void **state)
{
    router *r = *state;
    router_match m;
    add_ok(r, "^/hello/(\\w+)$", ROUTER_ANY);
    assert_int_equal(router_ncaptures(r, 0), 1);
    assert_null(router_capture_name(r, 0, 0));

    assert_int_equal(match(r, "/hello/bob", ROUTER_GET, &m), ROUTER_FOUND);
    assert_capture(&m, 0, "bob");
    assert_int_equal(match(r, "/hello/bob/x", ROUTER_GET, &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(r, "/hello/", ROUTER_GET, &m), ROUTER_NOT_FOUND);
    /* '$' is the end of the path, not "before a final newline". */
    assert_int_equal(match(r, "/hello/bob\n", ROUTER_GET, &m), ROUTER_NOT_FOUND);
}

static void test_regex_named(void **state)
{
    router *r = *state;
    router_match m;
    add_ok(r, "^/hello/(?<name>\\w+)$", ROUTER_ANY);
    assert_string_equal(router_capture_name(r, 0, 0), "name");
    assert_int_equal(match(r, "/hello/ann", ROUTER_GET, &m), ROUTER_FOUND);
    assert_capture(&m, 0, "ann");
}

static void test_regex_optional_unset(void **state)
{
    router *r = *state;
    router_match m;
    add_ok(r, "^/p(/(\\d+))?$", ROUTER_ANY);      /* trailing groups unset */
    add_ok(r, "^/q/(a)?(b)$", ROUTER_ANY);        /* an unset group before a set one */

    assert_int_equal(match(r, "/p", ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(m.ncaptures, 2);
    assert_unset(&m, 0);
    assert_unset(&m, 1);
    assert_int_equal(match(r, "/p/7", ROUTER_GET, &m), ROUTER_FOUND);
    assert_capture(&m, 0, "/7");
    assert_capture(&m, 1, "7");

    assert_int_equal(match(r, "/q/b", ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 1);
    assert_unset(&m, 0);
    assert_capture(&m, 1, "b");
}

static void test_regex_prefix_and_anchoring(void **state)
{
    router *r = *state;
    router_match m;
    add_ok(r, "^/static/", ROUTER_ANY);
    add_ok(r, "^/x", ROUTER_ANY);
    add_ok(r, "^/c|/d", ROUTER_ANY);   /* both branches anchored at the start */

    assert_int_equal(match(r, "/static/css/site.css", ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 0);
    assert_int_equal(match(r, "/xyz", ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 1);
    assert_int_equal(match(r, "/ax", ROUTER_GET, &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(r, "/a/static/", ROUTER_GET, &m), ROUTER_NOT_FOUND);
    assert_int_equal(match(r, "/d/e", ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 2);
    assert_int_equal(match(r, "/e/d", ROUTER_GET, &m), ROUTER_NOT_FOUND);
}

static void test_first_match_wins(void **state)
{
    router *r = *state;
    router_match m;
    add_ok(r, "/users/new", ROUTER_ANY);
    add_ok(r, "/users/:id", ROUTER_ANY);
    add_ok(r, "^/users/(.*)$", ROUTER_ANY);

    assert_int_equal(match(r, "/users/new", ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 0);
    assert_int_equal(m.ncaptures, 0);
    assert_int_equal(match(r, "/users/7", ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 1);
    assert_int_equal(match(r, "/users/7/edit", ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 2);
    assert_capture(&m, 0, "7/edit");
}

static void test_methods_and_405(void **state)
{
    router *r = *state;
    router_match m;
    add_ok(r, "/x", ROUTER_GET);
    add_ok(r, "/x", ROUTER_POST);

    assert_int_equal(match(r, "/x", ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 0);
    assert_int_equal(match(r, "/x", ROUTER_POST, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 1);
    assert_int_equal(match(r, "/x", ROUTER_HEAD, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 0);

    assert_int_equal(match(r, "/x", ROUTER_PUT, &m), ROUTER_METHOD_NOT_ALLOWED);
    assert_int_equal(m.allowed, ROUTER_GET | ROUTER_HEAD | ROUTER_POST);
    assert_int_equal(match(r, "/x", ROUTER_OPTIONS, &m), ROUTER_METHOD_NOT_ALLOWED);
    assert_int_equal(m.allowed, ROUTER_GET | ROUTER_HEAD | ROUTER_POST);
    assert_int_equal(match(r, "/x", ROUTER_OTHER, &m), ROUTER_METHOD_NOT_ALLOWED);

    assert_int_equal(match(r, "/y", ROUTER_PUT, &m), ROUTER_NOT_FOUND);
    assert_int_equal(m.allowed, 0);
    assert_int_equal(m.route, -1);
}

static void test_405_only_counts_matching_routes(void **state)
{
    router *r = *state;
    router_match m;
    add_ok(r, "/a", ROUTER_GET);
    add_ok(r, "/b", ROUTER_DELETE);
    add_ok(r, "^/a$", ROUTER_PUT | ROUTER_PATCH);
    add_ok(r, "/a", ROUTER_GET);   /* adds nothing new to the union */

    assert_int_equal(match(r, "/a", ROUTER_POST, &m), ROUTER_METHOD_NOT_ALLOWED);
    assert_int_equal(m.allowed, ROUTER_GET | ROUTER_HEAD | ROUTER_PUT | ROUTER_PATCH);
    assert_int_equal(match(r, "/b", ROUTER_POST, &m), ROUTER_METHOD_NOT_ALLOWED);
    assert_int_equal(m.allowed, ROUTER_DELETE);
}

static void test_head_only_and_any(void **state)
{
    router *r = *state;
    router_match m;
    add_ok(r, "/h", ROUTER_HEAD);           /* HEAD does not imply GET */
    add_ok(r, "/any", ROUTER_POST);
    add_ok(r, "/any", ROUTER_ANY);          /* a later catch-all still takes the rest */

    assert_int_equal(match(r, "/h", ROUTER_HEAD, &m), ROUTER_FOUND);
    assert_int_equal(match(r, "/h", ROUTER_GET, &m), ROUTER_METHOD_NOT_ALLOWED);
    assert_int_equal(m.allowed, ROUTER_HEAD);

    assert_int_equal(match(r, "/any", ROUTER_POST, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 1);
    assert_int_equal(match(r, "/any", ROUTER_OTHER, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 2);
    assert_int_equal(match(r, "/any", ROUTER_DELETE, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 2);
}

static void test_bad_patterns(void **state)
{
    router *r = *state;
    char many[400];

    assert_string_equal(add_bad(r, "^/(", 3),
                        "bad route pattern '^/(': missing closing parenthesis at offset 3");
    assert_non_null(strstr(add_bad(r, "users/:id", 9), "must start with '/'"));
    assert_non_null(strstr(add_bad(r, "", 0), "must start with '/'"));
    assert_non_null(strstr(add_bad(r, "/a/:x/*x", 8), "duplicate name 'x'"));
    assert_non_null(strstr(add_bad(r, "^/(*UTF)x", 9), "bad route pattern"));
    assert_non_null(strstr(add_bad(r, "^(*UTF)/x", 9), "UTF"));

    /* One more group than a match can report. */
    strcpy(many, "^/");
    for (int i = 0; i <= ROUTER_MAX_CAPTURES; i++)
        strcat(many, "(a)");
    assert_non_null(strstr(add_bad(r, many, strlen(many)), "capture"));
    strcpy(many, "/");
    for (int i = 0; i <= ROUTER_MAX_CAPTURES; i++)
        sprintf(many + strlen(many), ":n%d/", i);
    assert_non_null(strstr(add_bad(r, many, strlen(many)), "captures"));
    /* PCRE2 caps group names at 32 characters. */
    assert_non_null(strstr(add_bad(r, "/:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 35), "longer"));

    /* Method bits the router does not know are a caller bug. */
    assert_int_equal(router_add(r, "/m", 2, 1u << 12, err, sizeof err), -1);
    /* A NULL err is allowed. */
    assert_int_equal(router_add(r, "^(", 2, ROUTER_ANY, NULL, 0), -1);
    assert_int_equal(router_count(r), 0);

    /* The router still works after refusals. */
    assert_int_equal(add_ok(r, "/ok", ROUTER_ANY), 0);
}

static void test_max_captures_accepted(void **state)
{
    router *r = *state;
    router_match m;
    char pat[200], path[100];
    strcpy(pat, "^/");
    strcpy(path, "/");
    for (int i = 0; i < ROUTER_MAX_CAPTURES; i++) {
        strcat(pat, "(.)");
        path[1 + i] = (char)('A' + i);
    }
    path[1 + ROUTER_MAX_CAPTURES] = '\0';
    add_ok(r, pat, ROUTER_ANY);
    assert_int_equal(router_ncaptures(r, 0), ROUTER_MAX_CAPTURES);
    assert_int_equal(match(r, path, ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(m.ncaptures, ROUTER_MAX_CAPTURES);
    assert_capture(&m, ROUTER_MAX_CAPTURES - 1, "`");   /* 'A' + 31 */
}

static void test_capture_names(void **state)
{
    router *r = *state;
    add_ok(r, "^/(\\d+)/(?<slug>[a-z]+)/(?:x)(y)?$", ROUTER_ANY);
    assert_int_equal(router_ncaptures(r, 0), 3);   /* (?:) is not a capture */
    assert_null(router_capture_name(r, 0, 0));
    assert_string_equal(router_capture_name(r, 0, 1), "slug");
    assert_null(router_capture_name(r, 0, 2));
    assert_null(router_capture_name(r, 0, 3));
    assert_null(router_capture_name(r, 0, -1));
    assert_null(router_capture_name(r, 1, 0));
    assert_int_equal(router_ncaptures(r, 1), -1);
    assert_int_equal(router_ncaptures(r, -1), -1);
}

static void test_thousand_routes(void **state)
{
    router *r = *state;
    router_match m;
    char pat[64];
    for (int i = 0; i < 1000; i++) {
        if (i % 2)
            snprintf(pat, sizeof pat, "/r%d/:id", i);
        else
            snprintf(pat, sizeof pat, "^/r%d/(\\d+)$", i);
        assert_int_equal(add_ok(r, pat, i % 3 ? ROUTER_GET : ROUTER_POST), i);
    }
    assert_int_equal(router_count(r), 1000);

    /* Odd routes are templates, even ones regexes; multiples of 3 take POST only. */
    assert_int_equal(match(r, "/r999/abc", ROUTER_POST, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 999);
    assert_capture(&m, 0, "abc");
    assert_int_equal(match(r, "/r998/12", ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 998);
    assert_capture(&m, 0, "12");
    assert_int_equal(match(r, "/r997/abc", ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 997);
    assert_int_equal(match(r, "/r997/abc", ROUTER_POST, &m), ROUTER_METHOD_NOT_ALLOWED);
    assert_int_equal(m.allowed, ROUTER_GET | ROUTER_HEAD);
    assert_int_equal(match(r, "/r1000/1", ROUTER_GET, &m), ROUTER_NOT_FOUND);
}

static void test_binary_bytes(void **state)
{
    router *r = *state;
    router_match m;
    static const char cafe[] = "/caf\xc3\xa9";
    static const char bin[] = "/b/\x00\xff\n";     /* NUL, invalid UTF-8, newline */
    static const char bad_utf8[] = "/re/\xc3\x28\xff";

    add_ok(r, cafe, ROUTER_ANY);
    add_ok(r, "/b/:x", ROUTER_ANY);
    add_ok(r, "^/re/(.+)$", ROUTER_ANY);
    assert_int_equal(router_add(r, "/n\0ul", 5, ROUTER_ANY, err, sizeof err), 3);

    assert_int_equal(router_match_path(r, cafe, sizeof cafe - 1, ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 0);
    assert_int_equal(match(r, "/caf\xc3\xa8", ROUTER_GET, &m), ROUTER_NOT_FOUND);

    assert_int_equal(router_match_path(r, bin, sizeof bin - 1, ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 1);
    assert_int_equal(m.captures[0].n, 3);
    assert_ptr_equal(m.captures[0].p, bin + 3);

    assert_int_equal(router_match_path(r, bad_utf8, sizeof bad_utf8 - 1, ROUTER_GET, &m),
                     ROUTER_FOUND);
    assert_int_equal(m.route, 2);
    assert_memory_equal(m.captures[0].p, "\xc3\x28\xff", 3);

    /* A NUL in the pattern is a literal NUL, not the end of it. */
    assert_int_equal(router_match_path(r, "/n\0ul", 5, ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 3);
    assert_int_equal(router_match_path(r, "/n", 2, ROUTER_GET, &m), ROUTER_NOT_FOUND);
}

static void test_path_length_is_respected(void **state)
{
    router *r = *state;
    router_match m;
    add_ok(r, "/users/:id", ROUTER_ANY);
    /* The path is a slice of a bigger buffer: bytes past len must not count. */
    const char *buf = "/users/42/more";
    assert_int_equal(router_match_path(r, buf, 9, ROUTER_GET, &m), ROUTER_FOUND);
    assert_ptr_equal(m.captures[0].p, buf + 7);
    assert_int_equal(m.captures[0].n, 2);
    assert_int_equal(router_match_path(r, buf, 7, ROUTER_GET, &m), ROUTER_NOT_FOUND);
    /* An empty path matches nothing here and must not crash. */
    assert_int_equal(router_match_path(r, NULL, 0, ROUTER_GET, &m), ROUTER_NOT_FOUND);
}

static void test_runaway_regex_is_bounded(void **state)
{
    router *r = *state;
    router_match m;
    char path[64];
    /* Catastrophic backtracking: without a match limit this would run for ages.
     * The route that gives up counts as not matching and the scan goes on. */
    add_ok(r, "^/(a+)+$", ROUTER_ANY);
    add_ok(r, "^/", ROUTER_ANY);
    memset(path, 'a', sizeof path);
    path[0] = '/';
    path[sizeof path - 1] = 'b';
    assert_int_equal(router_match_path(r, path, sizeof path, ROUTER_GET, &m), ROUTER_FOUND);
    assert_int_equal(m.route, 1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_method_bit),
        T(test_template_segment),
        T(test_template_rest),
        T(test_template_literals),
        T(test_template_two_names),
        T(test_template_name_then_literal),
        T(test_template_bare_colon_star),
        T(test_regex_positional),
        T(test_regex_named),
        T(test_regex_optional_unset),
        T(test_regex_prefix_and_anchoring),
        T(test_first_match_wins),
        T(test_methods_and_405),
        T(test_405_only_counts_matching_routes),
        T(test_head_only_and_any),
        T(test_bad_patterns),
        T(test_max_captures_accepted),
        T(test_capture_names),
        T(test_thousand_routes),
        T(test_binary_bytes),
        T(test_path_length_is_respected),
        T(test_runaway_regex_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
