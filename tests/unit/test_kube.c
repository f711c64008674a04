/* test_kube.c: unit tests for Kubernetes name checks, base64, kubeconfig and in-cluster discovery, token checks
 * and targets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "playbookd/kube.h"
#include "playbookd/target.h"
#include "playbookd/text.h"

static void test_names(void **state)
{
    (void)state;
    char long_label[65], long_name[300];
    memset(long_label, 'a', 64);
    long_label[64] = 0;
    memset(long_name, 'a', 299);
    long_name[299] = 0;
    assert_true(kube_name_label("default"));
    assert_true(kube_name_label("a-1"));
    assert_true(kube_name_label(long_label + 1)); /* 63 */
    assert_false(kube_name_label(long_label));    /* 64 */
    assert_false(kube_name_label(""));
    assert_false(kube_name_label("-a"));
    assert_false(kube_name_label("a-"));
    assert_false(kube_name_label("Kube"));
    assert_false(kube_name_label("a.b"));
    assert_false(kube_name_label("a/b"));
    assert_true(kube_name_subdomain("mysql-db-7d59548d75-wh44s"));
    assert_true(kube_name_subdomain("ip-10-0-0-1.ec2.internal"));
    assert_false(kube_name_subdomain("../../nodes/x"));
    assert_false(kube_name_subdomain("a/b"));
    assert_false(kube_name_subdomain("a..b"));
    assert_false(kube_name_subdomain(".a"));
    assert_false(kube_name_subdomain("a."));
    assert_false(kube_name_subdomain("a%2fb"));
    assert_false(kube_name_subdomain("a b"));
    assert_false(kube_name_subdomain("a?x=1"));
    assert_false(kube_name_subdomain(long_name));
    assert_true(kube_qualified_name("falco/alert"));
    assert_true(kube_qualified_name("playbookd.io/isolated"));
    assert_true(kube_qualified_name("isolated"));
    assert_false(kube_qualified_name("/x"));
    assert_false(kube_qualified_name("x/"));
    assert_false(kube_qualified_name("a/b/c"));
    assert_true(kube_label_value(""));
    assert_true(kube_label_value("true"));
    assert_false(kube_label_value("-x"));
    assert_false(kube_label_value("a b"));
}

static void test_base64(void **state)
{
    (void)state;
    size_t len;
    char *s = text_base64_decode("aGVsbG8gd29ybGQ=", &len);
    assert_non_null(s);
    assert_int_equal(len, 11);
    assert_string_equal(s, "hello world");
    free(s);
    s = text_base64_decode("aGVs\nbG8=\n", &len);
    assert_string_equal(s, "hello");
    free(s);
    s = text_base64_decode("", &len);
    assert_int_equal(len, 0);
    free(s);
    assert_null(text_base64_decode("aGVsbG8*", &len));
    assert_null(text_base64_decode("aG=Vs", &len));
    assert_null(text_base64_decode("a", &len));
}

/* Writes text to a fresh temporary file; returns its path (static buffer). */
static const char *temp_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/playbookd-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static const char kubeconfig[] = "apiVersion: v1\n"
                                 "kind: Config\n"
                                 "current-context: kind-test\n"
                                 "clusters:\n"
                                 "- name: other\n"
                                 "  cluster: {server: 'https://10.0.0.1:6443'}\n"
                                 "- name: kind-test\n"
                                 "  cluster:\n"
                                 "    server: https://127.0.0.1:6443\n"
                                 "    certificate-authority-data: Q0EgUEVN\n" /* "CA PEM" */
                                 "contexts:\n"
                                 "- name: kind-test\n"
                                 "  context: {cluster: kind-test, user: kind-test}\n"
                                 "- name: files\n"
                                 "  context: {cluster: other, user: files}\n"
                                 "users:\n"
                                 "- name: kind-test\n"
                                 "  user:\n"
                                 "    client-certificate-data: Q0VSVA==\n" /* "CERT" */
                                 "    client-key-data: S0VZ\n"             /* "KEY" */
                                 "- name: files\n"
                                 "  user: {client-certificate: cert.pem, client-key: /abs/key.pem, token: abc}\n";

static void test_kubeconfig_embedded(void **state)
{
    (void)state;
    struct kube_endpoint ep;
    struct error err;
    const char *path = temp_file(kubeconfig);
    struct config_kube cfg = {.kubeconfig = (char *)path};
    assert_int_equal(kube_endpoint_load(&ep, &cfg, &err), 0);
    assert_string_equal(ep.server, "https://127.0.0.1:6443");
    assert_int_equal(ep.ca_len, 6);
    assert_memory_equal(ep.ca_data, "CA PEM", 6);
    assert_string_equal(ep.cert_data, "CERT");
    assert_string_equal(ep.key_data, "KEY");
    assert_null(ep.token);
    assert_null(ep.token_file);
    kube_endpoint_free(&ep);

    cfg.context = (char *)"files"; /* paths are relative to the kubeconfig */
    assert_int_equal(kube_endpoint_load(&ep, &cfg, &err), 0);
    assert_string_equal(ep.server, "https://10.0.0.1:6443");
    assert_string_equal(ep.cert_file, "/tmp/cert.pem");
    assert_string_equal(ep.key_file, "/abs/key.pem");
    assert_string_equal(ep.token, "abc");
    kube_endpoint_free(&ep);
    unlink(path);
}

static void expect_kubeconfig_error(const char *text, const char *context, const char *expected)
{
    struct kube_endpoint ep;
    struct error err = {{0}};
    const char *path = temp_file(text);
    struct config_kube cfg = {.kubeconfig = (char *)path, .context = (char *)context};
    assert_int_equal(kube_endpoint_load(&ep, &cfg, &err), -1);
    if (strstr(err.msg, expected) == NULL)
        fail_msg("expected \"%s\" in \"%s\"", expected, err.msg);
    unlink(path);
}

static void test_kubeconfig_errors(void **state)
{
    (void)state;
    expect_kubeconfig_error(kubeconfig, "nope", "no context named 'nope'");
    expect_kubeconfig_error("clusters: []\n", NULL, "no current-context");
    expect_kubeconfig_error("current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n"
                            "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:8080'}}]\n",
                            NULL, "3:40: key 'server': the API server must be https");
    expect_kubeconfig_error("current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n"
                            "clusters: [{name: c, cluster: {server: 'https://x', insecure-skip-tls-verify: true}}]\n",
                            NULL, "TLS verification cannot be turned off");
    expect_kubeconfig_error("current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
                            "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
                            "users: [{name: u, user: {exec: {command: aws}}}]\n",
                            NULL, "not supported: use a token or a client certificate");
    expect_kubeconfig_error("current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
                            "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
                            "users: [{name: u, user: {client-certificate-data: '!!'}}]\n",
                            NULL, "not valid base64");
    expect_kubeconfig_error("[1, 2]\n", NULL, "a kubeconfig is a map");
    expect_kubeconfig_error("current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
                            "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
                            "users: [{name: u, user: {token: \"abc\\r\\nX-Injected: 1\"}}]\n",
                            NULL, "4:33: key 'token': the user's token: the token holds a control character or space");
}

/* kube_token_check on a copy of text[0..len) (which may hold NULs); expects the token, or an error (NULL). */
static void check_token(const char *text, size_t len, const char *expected)
{
    char buf[64];
    struct error err = {{0}};
    memcpy(buf, text, len);
    buf[len] = 0;
    int rc = kube_token_check("f", buf, &len, &err);
    if (expected == NULL) {
        assert_int_equal(rc, -1);
        assert_null(strstr(err.msg, "s3c")); /* never the token itself */
        return;
    }
    if (rc != 0)
        fail_msg("rejected \"%s\": %s", expected, err.msg);
    assert_string_equal(buf, expected);
    assert_int_equal(len, strlen(expected));
}

#define TOKEN(lit, expected) check_token(lit, sizeof(lit) - 1, expected)

static void test_token_check(void **state)
{
    (void)state;
    TOKEN("s3cr3t.en-_~+/=", "s3cr3t.en-_~+/=");
    TOKEN("s3cr3t\n", "s3cr3t");
    TOKEN("s3cr3t\r\n", "s3cr3t");
    TOKEN("s3cr3t \t\n  ", "s3cr3t");
    TOKEN("s3cr3t\r\nX-Injected: yes", NULL);
    TOKEN("s3cr3t\nX-Injected: yes\n", NULL);
    TOKEN("s3cr3t\n\n", NULL); /* one line end is removed, not two */
    TOKEN("s3cr3t\r", NULL);
    TOKEN("s3c\0r3t", NULL);
    TOKEN("s3c r3t", NULL);
    TOKEN("s3cr3t\x7f", NULL);
    TOKEN("", NULL);
    TOKEN("\n", NULL);
    TOKEN(" \r\n", NULL);
    char buf[8] = "\n";
    size_t len = 1;
    struct error err;
    assert_int_equal(kube_token_check("/var/run/token", buf, &len, &err), -1);
    assert_string_equal(err.msg, "/var/run/token: the token is empty");
}

static void test_in_cluster(void **state)
{
    (void)state;
    struct kube_endpoint ep;
    struct error err;
    struct config_kube cfg = {.sa_dir = (char *)"/sa"};
    unsetenv("KUBECONFIG");
    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    assert_int_equal(kube_endpoint_load(&ep, &cfg, &err), 0);
    assert_string_equal(ep.server, "https://[fd00::1]:443");
    assert_string_equal(ep.token_file, "/sa/token");
    assert_string_equal(ep.ca_file, "/sa/ca.crt");
    kube_endpoint_free(&ep);
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    assert_int_equal(kube_endpoint_load(&ep, &cfg, &err), 0);
    assert_string_equal(ep.server, "https://10.96.0.1:443");
    kube_endpoint_free(&ep);
    setenv("KUBERNETES_SERVICE_HOST", "evil/path?", 1);
    assert_int_equal(kube_endpoint_load(&ep, &cfg, &err), -1);
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443x", 1);
    assert_int_equal(kube_endpoint_load(&ep, &cfg, &err), -1);
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    assert_int_equal(kube_endpoint_load(&ep, &cfg, &err), -1);
    assert_non_null(strstr(err.msg, "not in a cluster"));
}

/* Parses an alert from JSON and runs target_pod / target_pod_or_host on it. */
static enum outcome target_of(const char *json, bool or_host, struct target *t, struct action_result *res)
{
    static struct alert a;
    static bool parsed;
    struct error err;
    static const char *const protected_items[] = {"kube-system"};
    static const struct string_list protected = {.items = (char **)protected_items, .n = 1};
    static const struct playbook_env env = {.protected_namespaces = &protected};
    if (parsed)
        alert_free(&a);
    parsed = false;
    if (json == NULL)
        return OUTCOME_OK;
    assert_int_equal(alert_parse(&a, json, strlen(json), &err), 0);
    parsed = true;
    memset(res, 0, sizeof(*res));
    return or_host ? target_pod_or_host(&a, &env, t, res) : target_pod(&a, &env, t, res);
}

#define ALERT(fields, extra) "{\"rule\":\"R\",\"priority\":\"Notice\"" extra ",\"output_fields\":{" fields "}}"

static void expect_skip(const char *json, bool or_host, const char *reason)
{
    struct target t;
    struct action_result res;
    assert_int_equal(target_of(json, or_host, &t, &res), OUTCOME_SKIPPED);
    if (strstr(res.reason, reason) == NULL)
        fail_msg("expected \"%s\" in \"%s\"", reason, res.reason);
}

static void test_targets(void **state)
{
    (void)state;
    struct target t;
    struct action_result res;
    assert_int_equal(
        target_of(ALERT("\"k8s.ns.name\":\"default\",\"k8s.pod.name\":\"web-0\","
                        "\"k8s.pod.uid\":\"0b6f4a3e-1111-2222-3333-444455556666\",\"container.id\":\"abc\"",
                        ""),
                  false, &t, &res),
        OUTCOME_OK);
    assert_string_equal(t.ns, "default");
    assert_string_equal(t.pod, "web-0");
    assert_string_equal(t.uid, "0b6f4a3e-1111-2222-3333-444455556666");
    assert_string_equal(res.target, "pod default/web-0");

    expect_skip(ALERT("\"container.id\":\"host\"", ",\"hostname\":\"node-1\""), false, "host event");
    expect_skip(ALERT("\"k8s.ns.name\":\"default\",\"k8s.pod.name\":\"../../nodes/x\"", ""), false, "invalid name");
    expect_skip(ALERT("\"k8s.ns.name\":\"default\",\"k8s.pod.name\":\"a/b\"", ""), false, "invalid name");
    expect_skip(ALERT("\"k8s.ns.name\":\"Default\",\"k8s.pod.name\":\"a\"", ""), false, "invalid name");
    expect_skip(ALERT("\"k8s.ns.name\":\"default\",\"k8s.pod.name\":\"a\",\"k8s.pod.uid\":\"x/../y\"", ""), false,
                "invalid name");
    expect_skip(ALERT("\"k8s.ns.name\":\"kube-system\",\"k8s.pod.name\":\"coredns-1\"", ""), false,
                "protected namespace kube-system");
    expect_skip(ALERT("\"k8s.ns.name\":null,\"k8s.pod.name\":42", ",\"source\":\"k8s_audit\""), false, "names no pod");
    expect_skip(ALERT("\"ka.target.name\":\"x\"", ",\"source\":\"k8s_audit\",\"hostname\":\"falco-1\""), true,
                "names no pod");

    /* Host events: the node named by hostname. */
    assert_int_equal(target_of(ALERT("\"container.id\":\"host\"", ",\"hostname\":\"node-1\""), true, &t, &res),
                     OUTCOME_OK);
    assert_true(t.host);
    assert_string_equal(t.node, "node-1");
    assert_string_equal(res.target, "node node-1");
    assert_int_equal(
        target_of(ALERT("\"k8s.pod.name\":null", ",\"hostname\":\"node-2\",\"source\":\"syscall\""), true, &t, &res),
        OUTCOME_OK);
    assert_string_equal(t.node, "node-2");
    expect_skip(ALERT("\"container.id\":\"host\"", ",\"hostname\":\"../x\""), true, "invalid name");
    expect_skip(ALERT("\"container.id\":\"host\"", ""), true, "without a hostname");
    target_of(NULL, false, &t, &res); /* frees the last alert */
}

static void test_query_escape(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(kube_query_escape(out, sizeof(out), "app=cart,t in (a,b)"), 0);
    assert_string_equal(out, "app%3Dcart%2Ct%20in%20%28a%2Cb%29");
    assert_int_equal(kube_query_escape(out, sizeof(out), "eyJ2Ijo+/=&#-_.~"), 0);
    assert_string_equal(out, "eyJ2Ijo%2B%2F%3D%26%23-_.~");
    assert_int_equal(kube_query_escape(out, sizeof(out), ""), 0);
    assert_string_equal(out, "");
    assert_int_equal(kube_query_escape(out, 8, "abcdefgh"), -1); /* no room for all and the NUL */
    assert_int_equal(kube_query_escape(out, 0, ""), -1);
}

/* The message of an answer (kube_response_take): "Reason: message", valid UTF-8 when cut (found by
 * fuzz_kube_status), nothing of a Status string or body that is not UTF-8. */
static const char *message_of(long status, const char *body, struct kube_response *resp)
{
    struct http_response http = {.status = status, .body = strdup(body), .body_len = strlen(body)};
    memset(resp, 0, sizeof(*resp));
    kube_response_take(resp, &http);
    kube_response_free(resp);
    return resp->message;
}

static void test_status_message(void **state)
{
    (void)state;
    struct kube_response resp;
    char body[600], want[sizeof(resp.message)];
    assert_string_equal(message_of(409, "{\"reason\":\"Conflict\",\"message\":\"modified\"}", &resp),
                        "Conflict: modified");
    assert_string_equal(message_of(404, "{\"message\":\"gone\"}", &resp), "gone");
    assert_string_equal(message_of(502, "Bad Gateway", &resp), "Bad Gateway");
    assert_string_equal(message_of(502, "\xff\xfe", &resp), "");
    assert_string_equal(message_of(500, "{\"reason\":\"\xc3\",\"message\":\"m\"}", &resp), "m");
    assert_string_equal(message_of(200, "{\"message\":\"not read\"}", &resp), "");
    strcpy(body, "{\"reason\":\"RR\",\"message\":\"");
    for (int i = 0; i < 150; i++)
        strcat(body, "\xc3\xa9"); /* 300 bytes of é: cut between two of them */
    strcat(body, "\"}");
    message_of(422, body, &resp);
    assert_true(text_utf8_valid(resp.message, strlen(resp.message)));
    assert_int_equal(strlen(resp.message), sizeof(want) - 2); /* "RR: " and 97 é: 199 bytes would cut one */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_query_escape),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_kubeconfig_embedded),
        cmocka_unit_test(test_kubeconfig_errors),
        cmocka_unit_test(test_token_check),
        cmocka_unit_test(test_in_cluster),
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_status_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
