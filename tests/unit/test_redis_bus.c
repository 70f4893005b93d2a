/* redis_url_parse: what --redis and the app's redis option accept. (The link
 * itself runs against a real redis-server in tests/e2e/test_channels.py.) */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "redis_bus.h"

static void accepts_host_port_db_and_password(void **state)
{
    (void)state;
    static const struct { const char *url, *host; int port, db; const char *password; } cases[] = {
        { "redis://127.0.0.1:6380/2", "127.0.0.1", 6380, 2, "" },
        { "redis://cache.local", "cache.local", 6379, 0, "" },
        { "redis://cache.local/", "cache.local", 6379, 0, "" },
        { "redis://10.0.0.5:7000", "10.0.0.5", 7000, 0, "" },
        { "redis://10.0.0.5/15", "10.0.0.5", 6379, 15, "" },
        { "redis://:s3cret@10.0.0.5:6379/1", "10.0.0.5", 6379, 1, "s3cret" },
        { "redis://s3cret@10.0.0.5", "10.0.0.5", 6379, 0, "s3cret" },
        { "redis://:p@ss@h:1/0", "h", 1, 0, "p@ss" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        redis_url u;
        char err[256] = "";
        assert_int_equal(redis_url_parse(cases[i].url, &u, err, sizeof err), 0);
        assert_string_equal(u.host, cases[i].host);
        assert_int_equal(u.port, cases[i].port);
        assert_int_equal(u.db, cases[i].db);
        assert_string_equal(u.password, cases[i].password);
    }
}

static void refuses_what_it_cannot_use_and_says_why(void **state)
{
    (void)state;
    static const struct { const char *url, *why; } cases[] = {
        { "127.0.0.1:6379", "starts with redis://" },
        { "http://127.0.0.1:6379/0", "starts with redis://" },
        { "redis://", "no host" },
        { "redis://:6379/0", "no host" },
        { "redis://h:0/0", "bad port" },
        { "redis://h:65536", "bad port" },
        { "redis://h:port/0", "bad port" },
        { "redis://h:/0", "bad port" },
        { "redis://h:6379/zero", "the database must be a number" },
        { "redis://h:6379/0/extra", "the database must be a number" },
        { "redis://user:pw@h", "only a password is supported" },
        { "redis://:@h", "bad password" },
        { "redis://h/0@x", "the database must be a number" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        redis_url u;
        char err[256] = "";
        assert_int_equal(redis_url_parse(cases[i].url, &u, err, sizeof err), -1);
        if (!strstr(err, cases[i].why)) fail_msg("%s: got \"%s\", want \"%s\"", cases[i].url, err, cases[i].why);
        if (!strstr(err, cases[i].url)) fail_msg("%s: the error does not name the url: %s", cases[i].url, err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_host_port_db_and_password),
        cmocka_unit_test(refuses_what_it_cannot_use_and_says_why),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
