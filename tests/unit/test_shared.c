/* The zone behind lubeck.shared (host/services/shared.c), in plain C: each kind
 * of value, deleting, counting, the refusals a handler sees (too large, not
 * found, not a number, a full zone), expiry, and two processes counting in one
 * zone at once without losing a step. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shared.h"

#define S(x) x, strlen(x)

static char buf[SHARED_DATA_MAX];

static shared_value get(shared_zone *z, const char *name, const char *key)
{
    shared_value v;
    const char *err = NULL;
    assert_int_equal(shared_get(z, S(name), S(key), &v, buf, &err), 0);
    return v;
}

static int set(shared_zone *z, const char *name, const char *key, shared_value v, double ttl,
               const char **err)
{
    return shared_set(z, S(name), S(key), &v, ttl, err);
}

static shared_value str(const char *s)
{
    return (shared_value){ .type = SHARED_STRING, .str = s, .len = strlen(s) };
}

static void test_kinds_of_value(void **state)
{
    shared_zone *z = shared_zone_new(64);
    const char *err = NULL;
    assert_int_equal(set(z, "d", "s", str("text"), 0, &err), 0);
    assert_int_equal(set(z, "d", "n", (shared_value){ .type = SHARED_NUMBER, .number = 1.5 }, 0, &err), 0);
    assert_int_equal(set(z, "d", "b", (shared_value){ .type = SHARED_BOOLEAN, .number = 0 }, 0, &err), 0);
    shared_value v = get(z, "d", "s");
    assert_int_equal(v.type, SHARED_STRING);
    assert_int_equal(v.len, 4);
    assert_memory_equal(v.str, "text", 4);
    v = get(z, "d", "n");
    assert_int_equal(v.type, SHARED_NUMBER);
    assert_true(v.number == 1.5);
    v = get(z, "d", "b");
    assert_int_equal(v.type, SHARED_BOOLEAN);
    assert_true(v.number == 0);
    /* the same key in another dict is another entry */
    assert_int_equal(get(z, "other", "s").type, SHARED_NIL);
    assert_int_equal(get(z, "d", "missing").type, SHARED_NIL);
    /* a string value with NULs and a string written over a number */
    assert_int_equal(set(z, "d", "n", (shared_value){ .type = SHARED_STRING, .str = "a\0b", .len = 3 }, 0, &err), 0);
    v = get(z, "d", "n");
    assert_int_equal(v.type, SHARED_STRING);
    assert_int_equal(v.len, 3);
    assert_memory_equal(v.str, "a\0b", 3);
    /* nil deletes */
    assert_int_equal(set(z, "d", "s", (shared_value){ .type = SHARED_NIL }, 0, &err), 0);
    assert_int_equal(get(z, "d", "s").type, SHARED_NIL);
    shared_zone_free(z);
}

static void test_refusals(void **state)
{
    shared_zone *z = shared_zone_new(64);
    const char *err = NULL;
    char big[SHARED_DATA_MAX + 1];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(set(z, "d", "k", str(big + 2), 0, &err), -1);   /* "d\0k" + 470 bytes: one too many */
    assert_string_equal(err, "too large");
    assert_int_equal(set(z, "d", "k", str(big + 3), 0, &err), 0);    /* 472 in all: the most a slot holds */
    assert_int_equal(get(z, "d", "k").len, SHARED_DATA_MAX - 3);
    char key[SHARED_KEY_MAX + 1];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = 0;
    assert_int_equal(set(z, "d", key + 1, str("v"), 0, &err), -1);    /* "d\0" + 255 bytes: one too many */
    assert_string_equal(err, "key too long");
    assert_int_equal(set(z, "d", key + 2, str("v"), 0, &err), 0);
    shared_value v;
    assert_int_equal(shared_get(z, S("d"), S(key + 1), &v, buf, &err), -1);
    assert_string_equal(err, "key too long");
    shared_zone_free(z);
}

static void test_incr(void **state)
{
    shared_zone *z = shared_zone_new(64);
    const char *err = NULL;
    double n = 0;
    assert_int_equal(shared_incr(z, S("d"), S("c"), 1, 0, 0, 0, &n, &err), -1);
    assert_string_equal(err, "not found");
    assert_int_equal(shared_incr(z, S("d"), S("c"), 2, 1, 10, 0, &n, &err), 0);
    assert_true(n == 12);
    assert_int_equal(shared_incr(z, S("d"), S("c"), -0.5, 1, 10, 0, &n, &err), 0);   /* init only when missing */
    assert_true(n == 11.5);
    assert_true(get(z, "d", "c").number == 11.5);
    assert_int_equal(set(z, "d", "s", str("x"), 0, &err), 0);
    assert_int_equal(shared_incr(z, S("d"), S("s"), 1, 1, 0, 0, &n, &err), -1);
    assert_string_equal(err, "not a number");
    shared_zone_free(z);
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void test_expiry(void **state)
{
    shared_zone *z = shared_zone_new(64);
    const char *err = NULL;
    double n;
    assert_int_equal(set(z, "d", "short", str("v"), 0.05, &err), 0);
    assert_int_equal(set(z, "d", "kept", str("v"), 0, &err), 0);
    assert_int_equal(shared_incr(z, S("d"), S("c"), 1, 1, 0, 0.05, &n, &err), 0);
    assert_int_equal(get(z, "d", "short").type, SHARED_STRING);
    sleep_ms(100);
    assert_int_equal(get(z, "d", "short").type, SHARED_NIL);
    assert_int_equal(get(z, "d", "c").type, SHARED_NIL);
    assert_int_equal(get(z, "d", "kept").type, SHARED_STRING);
    shared_zone_free(z);
}

static void test_full_zone(void **state)
{
    shared_zone *z = shared_zone_new(8);   /* a quarter stays free: 6 entries */
    const char *err = NULL;
    char key[8];
    for (int i = 0; i < 6; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(set(z, "d", key, str("v"), 0, &err), 0);
    }
    assert_int_equal(set(z, "d", "k6", str("v"), 0, &err), -1);
    assert_string_equal(err, "no memory");
    double n;
    assert_int_equal(shared_incr(z, S("d"), S("k6"), 1, 1, 0, 0, &n, &err), -1);
    assert_string_equal(err, "no memory");
    assert_int_equal(set(z, "d", "k0", str("new"), 0, &err), 0);   /* an existing key still takes a value */
    assert_int_equal(set(z, "d", "k1", (shared_value){ .type = SHARED_NIL }, 0, &err), 0);
    assert_int_equal(set(z, "d", "k6", str("v"), 0, &err), 0);
    shared_zone_free(z);
}

static void test_two_processes_count_together(void **state)
{
    enum { STEPS = 20000 };
    shared_zone *z = shared_zone_new(64);
    const char *err = NULL;
    double n;
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        for (int i = 0; i < STEPS; i++)
            if (shared_incr(z, S("d"), S("c"), 1, 1, 0, 0, &n, &err) != 0) _exit(1);
        _exit(0);
    }
    for (int i = 0; i < STEPS; i++) assert_int_equal(shared_incr(z, S("d"), S("c"), 1, 1, 0, 0, &n, &err), 0);
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(get(z, "d", "c").number == 2 * STEPS);
    shared_zone_free(z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds_of_value),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_incr),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_full_zone),
        cmocka_unit_test(test_two_processes_count_together),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
