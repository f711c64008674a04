/*
 * test_config_http.c: unit tests for http.alerts, the alert input's settings: defaults, the loopback rule
 * without authentication, and every error's text with file:line:column (the token never in it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "playbookd/config.h"

#include "config_check.h"

#define TOPICS "playbooks:\n  kill: {type: delete-pod}\ntopics: {falco.>: [kill]}\n"
#define TOKEN "0123456789abcdef"

static void test_defaults_and_what_is_accepted(void **state)
{
    (void)state;
    struct config *cfg = load_ok(TOPICS);
    assert_null(cfg->http.alerts.listen); /* no input */
    config_destroy(cfg);
    cfg = load_ok("http: {alerts: {listen: \"127.0.0.1:8443\"}}\n" TOPICS); /* loopback: no auth needed */
    assert_string_equal(cfg->http.alerts.path, "/");
    assert_null(cfg->http.alerts.token);
    assert_false(cfg->http.alerts.insecure);
    config_destroy(cfg);
    const char *ok[] = {
        "http: {alerts: {listen: \"[::1]:8443\"}}\n",
        "http: {alerts: {listen: \"0.0.0.0:8443\", token: " TOKEN "}}\n",
        "http: {alerts: {listen: \":8443\", tls: {cert: c, key: k, client_ca: ca}}}\n",
        "http: {alerts: {listen: \"0.0.0.0:8443\", insecure: true}}\n",
        "http: {listen: \"0.0.0.0:8080\", alerts: {listen: \"127.0.0.1:8443\", path: /falco/alerts}}\n",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml), "%s%s", ok[i], TOPICS);
        config_destroy(load_ok(yaml));
    }
}

static void test_errors(void **state)
{
    (void)state;
    check_error("http: {alerts: {path: /}}\n" TOPICS, NAME ":1:16: key 'alerts': alerts needs 'listen', such as "
                                                           "\"0.0.0.0:8443\"");
    check_error("http: {alerts: {listen: \"0.0.0.0:8443\"}}\n" TOPICS,
                NAME ":1:25: key 'listen': '0.0.0.0:8443' is not a loopback address and nothing authenticates the "
                     "clients: set a token or tls.client_ca, or insecure: true to take alerts from anyone who can "
                     "connect");
    check_error("http: {alerts: {listen: \"10.0.0.1:8443\", tls: {cert: c, key: k}}}\n" TOPICS,
                NAME ":1:25: key 'listen': '10.0.0.1:8443' is not a loopback address and nothing authenticates the "
                     "clients: set a token or tls.client_ca, or insecure: true to take alerts from anyone who can "
                     "connect");
    check_error("http: {alerts: {listen: \"127.0.0.1\"}}\n" TOPICS,
                NAME ":1:25: key 'listen': expected HOST:PORT, e.g. 0.0.0.0:8080");
    check_error("http: {listen: \":8080\", alerts: {listen: \"127.0.0.1:8080\"}}\n" TOPICS,
                NAME ":1:42: key 'listen': the alert input needs a port of its own, not http.listen's");
    check_error("http: {alerts: {listen: \"127.0.0.1:1\", path: alerts}}\n" TOPICS,
                NAME ":1:46: key 'path': a path starts with '/' and has no spaces");
    check_error("http: {alerts: {listen: \"127.0.0.1:1\", token: tooshort}}\n" TOPICS,
                NAME ":1:47: key 'token': a token is at least 16 printable characters without spaces (it is not "
                     "shown)");
    check_error("http: {alerts: {listen: \"127.0.0.1:1\", tls: {cert: c}}}\n" TOPICS,
                NAME ":1:45: key 'tls': tls cert and key go together");
    check_error("http: {alerts: {listen: \"127.0.0.1:1\", tls: {client_ca: ca}}}\n" TOPICS,
                NAME ":1:45: key 'tls': tls client_ca needs the server's cert and key");
    check_error("http: {alerts: {listen: \"127.0.0.1:1\", insecure: maybe}}\n" TOPICS,
                NAME ":1:50: key 'insecure': expected true or false");
    check_error("http: {alerts: {listen: \"127.0.0.1:1\", cert: c}}\n" TOPICS,
                NAME ":1:40: key 'cert': unknown key (valid: listen, path, token, tls, insecure)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_what_is_accepted),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
