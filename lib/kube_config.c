/*
 * kube_config.c: finds the API server and credentials: a kubeconfig in the form kind and kubectl write
 * (server, certificate-authority(-data), client-certificate(-data), client-key(-data), token), or, in a
 * pod, KUBERNETES_SERVICE_HOST/PORT and the service account's token and ca.crt. https only; there is no
 * way to skip TLS verification.
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/kube.h"
#include "playbookd/text.h"

#define KUBECONFIG_MAX (1024 * 1024)

static const char *scalar(const struct config_node *map, const char *key)
{
    const struct config_node *n = config_node_get(map, key);
    return n != NULL && n->kind == NODE_SCALAR && n->value[0] ? n->value : NULL;
}

/* The item of a kubeconfig list (clusters, contexts, users) with this name, or NULL. */
static const struct config_node *named(const struct config_node *root, const char *list, const char *name)
{
    const struct config_node *seq = config_node_get(root, list);
    if (seq == NULL || seq->kind != NODE_SEQ)
        return NULL;
    for (size_t i = 0; i < seq->n_children; i++) {
        const char *n = scalar(&seq->children[i], "name");
        if (n != NULL && strcmp(n, name) == 0)
            return &seq->children[i];
    }
    return NULL;
}

/* A path as written, or relative to the kubeconfig's directory. */
static char *resolve_path(const char *dir, const char *path)
{
    if (path[0] == '/')
        return strdup(path);
    size_t n = strlen(dir) + strlen(path) + 2;
    char *out = malloc(n);
    if (out != NULL)
        snprintf(out, n, "%s/%s", dir, path);
    return out;
}

/* Sets *file or *data from the `key` / `key-data` pair of map. */
static int load_pem(const struct config_node *map, const char *key, const char *dir, char **file, char **data,
                    size_t *len, struct error *err)
{
    char data_key[64];
    snprintf(data_key, sizeof(data_key), "%s-data", key);
    const char *b64 = scalar(map, data_key), *path = scalar(map, key);
    if (b64 != NULL) {
        *data = text_base64_decode(b64, len);
        if (*data == NULL)
            return config_node_error(err, config_node_get(map, data_key), "not valid base64");
    } else if (path != NULL && (*file = resolve_path(dir, path)) == NULL) {
        return error_set(err, "out of memory");
    }
    return 0;
}

static int load_cluster(struct kube_endpoint *ep, const struct config_node *cluster, const char *dir, struct error *err)
{
    const char *server = scalar(cluster, "server");
    const char *insecure = scalar(cluster, "insecure-skip-tls-verify");
    if (server == NULL)
        return config_node_error(err, cluster, "the cluster has no server");
    if (strncmp(server, "https://", 8) != 0)
        return config_node_error(err, config_node_get(cluster, "server"), "the API server must be https");
    if (insecure != NULL && strcmp(insecure, "true") == 0)
        return config_node_error(err, config_node_get(cluster, "insecure-skip-tls-verify"),
                                 "TLS verification cannot be turned off");
    if ((ep->server = strdup(server)) == NULL)
        return error_set(err, "out of memory");
    return load_pem(cluster, "certificate-authority", dir, &ep->ca_file, &ep->ca_data, &ep->ca_len, err);
}

static int load_user(struct kube_endpoint *ep, const struct config_node *user, const char *dir, struct error *err)
{
    static const char *const unsupported[] = {"exec", "auth-provider", "username", "password", NULL};
    for (const char *const *u = unsupported; *u != NULL; u++)
        if (config_node_get(user, *u) != NULL)
            return config_node_error(err, config_node_get(user, *u),
                                     "not supported: use a token or a client certificate");
    const char *token = scalar(user, "token"), *token_file = scalar(user, "tokenFile");
    if (token != NULL && (ep->token = strdup(token)) == NULL)
        return error_set(err, "out of memory");
    size_t len = token ? strlen(token) : 0;
    struct error why;
    if (token != NULL && kube_token_check("the user's token", ep->token, &len, &why) != 0)
        return config_node_error(err, config_node_get(user, "token"), "%s", why.msg);
    if (token_file != NULL && (ep->token_file = resolve_path(dir, token_file)) == NULL)
        return error_set(err, "out of memory");
    if (load_pem(user, "client-certificate", dir, &ep->cert_file, &ep->cert_data, &ep->cert_len, err) != 0 ||
        load_pem(user, "client-key", dir, &ep->key_file, &ep->key_data, &ep->key_len, err) != 0)
        return -1;
    bool cert = ep->cert_file || ep->cert_data, key = ep->key_file || ep->key_data;
    if (cert != key)
        return config_node_error(err, user, "client-certificate and client-key go together");
    return 0;
}

static int load_context(struct kube_endpoint *ep, const struct config_node *root, const char *want, const char *dir,
                        struct error *err)
{
    const char *name = want ? want : scalar(root, "current-context");
    if (name == NULL)
        return config_node_error(err, root, "no current-context, and kubernetes.context is not set");
    const struct config_node *ctx = named(root, "contexts", name);
    const struct config_node *body = config_node_get(ctx, "context");
    if (body == NULL)
        return config_node_error(err, root, "no context named '%.64s'", name);
    const char *cluster_name = scalar(body, "cluster"), *user_name = scalar(body, "user");
    const struct config_node *cluster =
        config_node_get(named(root, "clusters", cluster_name ? cluster_name : ""), "cluster");
    const struct config_node *user = config_node_get(named(root, "users", user_name ? user_name : ""), "user");
    if (cluster == NULL)
        return config_node_error(err, body, "context '%.64s' names no known cluster", name);
    if (load_cluster(ep, cluster, dir, err) != 0)
        return -1;
    return user == NULL ? 0 : load_user(ep, user, dir, err);
}

static int load_kubeconfig(struct kube_endpoint *ep, const char *path, const char *context, struct error *err)
{
    size_t len;
    struct config_node *root = NULL;
    char *text = text_read_file(path, KUBECONFIG_MAX, &len, err), *copy = strdup(path);
    int rc = -1;
    if (text != NULL && copy != NULL && config_tree_read(&root, path, text, len, false, err) == 0)
        rc = root->kind == NODE_MAP ? load_context(ep, root, context, dirname(copy), err)
                                    : config_node_error(err, root, "a kubeconfig is a map");
    config_tree_free(root);
    free(text);
    free(copy);
    return rc;
}

static int load_in_cluster(struct kube_endpoint *ep, const char *sa_dir, struct error *err)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
    if (host == NULL || port == NULL || !*host || !*port)
        return error_set(err, "no kubeconfig given (kubernetes.kubeconfig or $KUBECONFIG) and not in a cluster "
                              "(KUBERNETES_SERVICE_HOST/PORT are not set)");
    if (strspn(host, "0123456789abcdefABCDEF.:-") != strlen(host) && !kube_name_subdomain(host))
        return error_set(err, "KUBERNETES_SERVICE_HOST is not a host name or address");
    if (strspn(port, "0123456789") != strlen(port) || strlen(port) > 5)
        return error_set(err, "KUBERNETES_SERVICE_PORT is not a port number");
    bool v6 = strchr(host, ':') != NULL;
    size_t n = strlen(host) + strlen(port) + 16;
    ep->server = malloc(n);
    ep->token_file = resolve_path(sa_dir, "token");
    ep->ca_file = resolve_path(sa_dir, "ca.crt");
    if (ep->server == NULL || ep->token_file == NULL || ep->ca_file == NULL)
        return error_set(err, "out of memory");
    snprintf(ep->server, n, v6 ? "https://[%s]:%s" : "https://%s:%s", host, port);
    return 0;
}

int kube_endpoint_load(struct kube_endpoint *ep, const struct config_kube *cfg, struct error *err)
{
    memset(ep, 0, sizeof(*ep));
    const char *path = cfg->kubeconfig;
    char first[4096] = "";
    if (path == NULL && getenv("KUBECONFIG") != NULL && *getenv("KUBECONFIG")) {
        snprintf(first, sizeof(first), "%.*s", (int)strcspn(getenv("KUBECONFIG"), ":"), getenv("KUBECONFIG"));
        path = first;
    }
    int rc = path ? load_kubeconfig(ep, path, cfg->context, err) : load_in_cluster(ep, cfg->sa_dir, err);
    if (rc != 0)
        kube_endpoint_free(ep);
    return rc;
}

void kube_endpoint_free(struct kube_endpoint *ep)
{
    free(ep->server);
    free(ep->ca_file);
    free(ep->cert_file);
    free(ep->key_file);
    free(ep->ca_data);
    free(ep->cert_data);
    free(ep->key_data);
    free(ep->token);
    free(ep->token_file);
    memset(ep, 0, sizeof(*ep));
}
