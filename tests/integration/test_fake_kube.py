"""test_fake_kube.py: self-tests for fake_kube.FakeKube, the fake Kubernetes API server. They pin down, over
real HTTPS, every behaviour the playbook tests rely on: authentication, Status objects, delete with
preconditions, JSON and merge patches with optimistic locking, creates with strict validation, dryRun=All,
faults on demand and the request log."""

import base64
import http.client
import json
import os
import ssl
import threading
import time
import urllib.parse
from collections import namedtuple

import pytest

from fake_kube import FakeKube, selector_matches

POD = "/api/v1/namespaces/default/pods/web"
NODE = "/api/v1/nodes/node-1"
POLICIES = "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies"
EVENTS = "/apis/events.k8s.io/v1/namespaces/default/events"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
EXISTING_TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
FALCO_TAINT = {"key": "falco/alert", "value": "true", "effect": "NoSchedule"}
ISOLATE = {
    "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
    "metadata": {"name": "falco-isolate-web", "namespace": "default"},
    "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress", "Egress"]},
}

Answer = namedtuple("Answer", "status body headers")


class Client:
    """One keep-alive HTTPS connection to the fake, trusting its CA; a bearer token unless told otherwise."""

    def __init__(self, kube, token="current", cert=None):
        context = ssl.create_default_context(cafile=kube.ca_path)
        if cert:
            context.load_cert_chain(*cert)
        self.kube, self.token = kube, token
        self.conn = http.client.HTTPSConnection("127.0.0.1", kube.port, context=context, timeout=5)

    def call(self, method, path, body=None, content_type="application/json"):
        token = self.kube.token if self.token == "current" else self.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if body is not None:
            headers["Content-Type"] = content_type
            body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        assert response.getheader("Content-Type") == "application/json"
        assert int(response.getheader("Content-Length")) == len(data)
        return Answer(response.status, json.loads(data), response)


@pytest.fixture
def kube(tmp_path):
    fake = FakeKube(str(tmp_path / "kube"))
    fake.add_node("node-1", taints=[EXISTING_TAINT])
    fake.add_pod("default", "web", node="node-1", uid="uid-web", labels={"app": "web"})
    yield fake
    fake.stop()


@pytest.fixture
def connect(kube):
    """Makes clients (keyword arguments of Client) and closes them after the test."""
    clients = []

    def make(**kwargs):
        clients.append(Client(kube, **kwargs))
        return clients[-1]
    yield make
    for client in clients:
        client.conn.close()


@pytest.fixture
def api(connect):
    return connect()


def guarded_add_taint(resource_version, taint):
    return [{"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
            {"op": "add", "path": "/spec/taints/-", "value": taint}]


def stale_version(api):
    """The node's resourceVersion from before someone else wrote to it."""
    version = api.call("GET", NODE).body["metadata"]["resourceVersion"]
    assert api.call("PATCH", NODE, {"metadata": {"labels": {"team": "sre"}}}, MERGE_PATCH).status == 200
    return version


def event(**changes):
    body = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"generateName": "web."},
            "eventTime": "2026-11-23T03:00:00.123456Z", "reportingController": "falco.org/playbookd",
            "reportingInstance": "playbookd-7d9f", "action": "DeletePod", "reason": "FalcoAlert",
            "type": "Warning", "note": "Terminal shell in container",
            "regarding": {"kind": "Pod", "apiVersion": "v1", "namespace": "default", "name": "web",
                          "uid": "uid-web"}}
    body.update(changes)
    return body


def read(path):
    with open(path, "rb") as f:
        return f.read()


def causes(answer):
    return [(c["field"], c["message"]) for c in answer.body["details"]["causes"]]


# -- authentication ---------------------------------------------------------------------------------

UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


def test_401_without_token_or_with_a_wrong_one(kube, connect):
    for token in (None, "wrong"):
        answer = connect(token=token).call("GET", POD)
        assert (answer.status, answer.body) == (401, UNAUTHORIZED)
    assert connect(token=None).call("GET", "/no/such/path").status == 401
    assert [(r.status, r.authenticated, r.auth) for r in kube.requests()] == [(401, False, None)] * 3


def test_token_reads_a_pod(kube, api):
    answer = api.call("GET", POD)
    assert answer.status == 200
    assert answer.body["kind"] == "Pod" and answer.body["apiVersion"] == "v1"
    assert answer.body["metadata"]["uid"] == "uid-web" and answer.body["spec"]["nodeName"] == "node-1"
    assert answer.body["status"]["phase"] == "Running"
    assert kube.requests()[-1].auth == "token"


def test_client_certificate_from_the_kubeconfig_files_authenticates(kube, connect, tmp_path):
    kube.write_kubeconfig(str(tmp_path / "config"), embed=False)
    client = connect(token=None, cert=(str(tmp_path / "client.crt"), str(tmp_path / "client.key")))
    assert client.call("GET", NODE).status == 200
    assert kube.requests()[-1].auth == "cert"


def test_rotated_token_replaces_the_old_one(kube, api, connect):
    old = kube.token
    kube.token = "rotated-token"
    assert connect(token=old).call("GET", POD).status == 401
    assert api.call("GET", POD).status == 200


def test_keep_alive_serves_several_requests_on_one_connection(api):
    api.call("GET", POD)
    first = api.conn.sock
    api.call("GET", NODE)
    assert api.conn.sock is first


# -- credentials files ------------------------------------------------------------------------------

def test_service_account_directory(kube, tmp_path):
    directory = kube.write_service_account(str(tmp_path / "sa"))
    assert read(os.path.join(directory, "token")).decode() == kube.token
    assert read(os.path.join(directory, "ca.crt")) == kube.ca_pem
    assert read(os.path.join(directory, "namespace")) == b"default"


KUBECONFIG = """apiVersion: v1
clusters:
- cluster:
    {ca}
    server: {url}
  name: kind-test
contexts:
- context:
    cluster: kind-test
    user: kind-test
  name: kind-test
current-context: kind-test
kind: Config
preferences: {{}}
users:
- name: kind-test
  user:
{user}
"""


def kubeconfig(kube, ca, *user):
    return KUBECONFIG.format(ca=ca, url=kube.url, user="\n".join(f"    {line}" for line in user))


def b64(data):
    return base64.b64encode(data).decode()


def test_kubeconfig_as_kind_writes_it(kube, tmp_path):
    embedded = read(kube.write_kubeconfig(str(tmp_path / "embedded"))).decode()
    assert embedded == kubeconfig(kube, f"certificate-authority-data: {b64(kube.ca_pem)}",
                                  f"client-certificate-data: {b64(kube.client_cert_pem)}",
                                  f"client-key-data: {b64(kube.client_key_pem)}")

    files = read(kube.write_kubeconfig(str(tmp_path / "files"), embed=False)).decode()
    assert files == kubeconfig(kube, f"certificate-authority: {tmp_path / 'ca.crt'}",
                               f"client-certificate: {tmp_path / 'client.crt'}",
                               f"client-key: {tmp_path / 'client.key'}")
    assert read(tmp_path / "ca.crt") == kube.ca_pem and read(tmp_path / "client.key") == kube.client_key_pem
    assert read(tmp_path / "client.crt") == kube.client_cert_pem

    token = read(kube.write_kubeconfig(str(tmp_path / "token"), user="token")).decode()
    assert token == kubeconfig(kube, f"certificate-authority-data: {b64(kube.ca_pem)}", f"token: {kube.token}")


# -- reads and routing ------------------------------------------------------------------------------

def test_missing_objects_give_the_real_not_found_status(api):
    assert api.call("GET", "/api/v1/namespaces/default/pods/x").body == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": 'pods "x" not found',
        "reason": "NotFound", "details": {"name": "x", "kind": "pods"}, "code": 404}
    assert api.call("GET", "/api/v1/nodes/n9").body["message"] == 'nodes "n9" not found'
    policy = api.call("GET", f"{POLICIES}/p")
    assert policy.status == 404 and policy.body["message"] == 'networkpolicies.networking.k8s.io "p" not found'
    assert policy.body["details"] == {"name": "p", "group": "networking.k8s.io", "kind": "networkpolicies"}


def test_unknown_path_404_and_wrong_method_405(api):
    unknown = api.call("GET", "/api/v1/namespaces/default/secrets/s")
    assert (unknown.status, unknown.body["reason"]) == (404, "NotFound")
    wrong = api.call("POST", POD, {})
    assert (wrong.status, wrong.body["reason"]) == (405, "MethodNotAllowed")


# -- delete -----------------------------------------------------------------------------------------

def test_delete_returns_the_pod_then_404(kube, api):
    answer = api.call("DELETE", POD, {"gracePeriodSeconds": 0, "preconditions": {"uid": "uid-web"}})
    assert answer.status == 200 and answer.body["kind"] == "Pod"
    meta = answer.body["metadata"]
    assert meta["deletionGracePeriodSeconds"] == 0 and "deletionTimestamp" in meta
    assert kube.pod("default", "web") is None
    again = api.call("DELETE", POD)
    assert (again.status, again.body["message"]) == (404, 'pods "web" not found')


def test_delete_without_grace_period_uses_the_pods_own(api):
    assert api.call("DELETE", POD).body["metadata"]["deletionGracePeriodSeconds"] == 30


def test_uid_precondition_mismatch_is_409_and_the_pod_stays(kube, api):
    answer = api.call("DELETE", POD, {"preconditions": {"uid": "uid-of-a-recreated-pod"}})
    assert (answer.status, answer.body["reason"]) == (409, "Conflict")
    assert answer.body["message"] == (
        'Operation cannot be fulfilled on Pod "web": the UID in the precondition (uid-of-a-recreated-pod) '
        "does not match the UID in record (uid-web). The object might have been deleted and then recreated")
    assert kube.pod("default", "web") is not None


def test_dry_run_delete_answers_200_and_changes_nothing(kube, api):
    before = kube.pod("default", "web")
    for path, body in ((POD + "?dryRun=All", None), (POD, {"dryRun": ["All"], "gracePeriodSeconds": 0})):
        answer = api.call("DELETE", path, body)
        assert answer.status == 200
        assert answer.body["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        assert kube.pod("default", "web") == before
    assert api.call("DELETE", "/api/v1/namespaces/default/pods/x?dryRun=All").status == 404
    conflict = api.call("DELETE", POD, {"dryRun": ["All"], "preconditions": {"uid": "other"}})
    assert conflict.status == 409


def test_with_a_body_the_query_string_is_ignored_so_dry_run_there_deletes(kube, api):
    """As kube-apiserver: DeleteOptions come from the body when there is one; ?dryRun=All is then not read."""
    assert api.call("DELETE", POD + "?dryRun=All", {"gracePeriodSeconds": 0}).status == 200
    assert kube.pod("default", "web") is None


def test_delete_options_are_decoded_strictly(kube, api):
    answer = api.call("DELETE", POD, {"gracePeriodSeconds": 0, "foo": 1})
    assert (answer.status, answer.body["reason"]) == (400, "BadRequest")
    assert answer.body["message"] == 'strict decoding error: unknown field "foo"'
    assert api.call("DELETE", POD, {"gracePeriodSeconds": "0"}).status == 400
    assert kube.pod("default", "web") is not None


def test_bad_dry_run_value_is_422(kube, api):
    answer = api.call("DELETE", POD + "?dryRun=true")
    assert (answer.status, answer.body["reason"]) == (422, "Invalid")
    assert answer.body["message"] == ('DeleteOptions.meta.k8s.io "" is invalid: '
                                      'dryRun: Unsupported value: ["true"]: supported values: "All"')
    assert api.call("POST", POLICIES + "?dryRun=yes", ISOLATE).status == 422
    assert api.call("PATCH", NODE + "?dryRun=", [], JSON_PATCH).status == 422
    assert kube.pod("default", "web") is not None and kube.policy("default", "falco-isolate-web") is None


def test_get_ignores_dry_run(api):
    assert api.call("GET", POD + "?dryRun=bogus").status == 200


# -- patch ------------------------------------------------------------------------------------------

def test_json_patch_adds_a_taint_guarded_by_resource_version(kube, api):
    version = api.call("GET", NODE).body["metadata"]["resourceVersion"]
    answer = api.call("PATCH", NODE, guarded_add_taint(version, FALCO_TAINT), JSON_PATCH)
    assert answer.status == 200
    assert answer.body["spec"]["taints"] == [EXISTING_TAINT, FALCO_TAINT]
    assert int(answer.body["metadata"]["resourceVersion"]) > int(version)
    assert kube.node("node-1") == answer.body


def test_stale_resource_version_test_is_422_and_the_node_is_unchanged(kube, api):
    stale = stale_version(api)
    before = kube.node("node-1")
    answer = api.call("PATCH", NODE, guarded_add_taint(stale, FALCO_TAINT), JSON_PATCH)
    assert (answer.status, answer.body["reason"]) == (422, "Invalid")
    assert answer.body["message"] == "the server rejected our request due to an error in our request"
    cause = answer.body["details"]["causes"][0]
    assert cause == {"reason": "UnexpectedServerResponse",
                     "message": "testing value /metadata/resourceVersion failed: test failed"}
    assert kube.node("node-1") == before


def test_add_to_a_missing_taints_list_is_422_until_the_list_is_added(kube, api):
    kube.add_node("node-2")
    path = "/api/v1/nodes/node-2"
    missing = api.call("PATCH", path, [{"op": "add", "path": "/spec/taints/-", "value": FALCO_TAINT}], JSON_PATCH)
    assert missing.status == 422
    assert 'doc is missing path: "/spec/taints/-"' in missing.body["details"]["causes"][0]["message"]
    added = api.call("PATCH", path, [{"op": "add", "path": "/spec/taints", "value": [FALCO_TAINT]}], JSON_PATCH)
    assert added.status == 200 and kube.node("node-2")["spec"]["taints"] == [FALCO_TAINT]


def test_invalid_taint_effect_is_422(kube, api):
    before = kube.node("node-1")
    bad = dict(FALCO_TAINT, effect="NoRunning")
    answer = api.call("PATCH", NODE, [{"op": "add", "path": "/spec/taints/-", "value": bad}], JSON_PATCH)
    assert (answer.status, answer.body["reason"]) == (422, "Invalid")
    assert causes(answer) == [("spec.taints[1].effect", 'Unsupported value: "NoRunning": '
                               'supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"')]
    assert kube.node("node-1") == before


def test_the_same_taint_twice_is_422(api):
    again = [{"op": "add", "path": "/spec/taints/-", "value": EXISTING_TAINT}]
    answer = api.call("PATCH", NODE, again, JSON_PATCH)
    assert answer.status == 422 and causes(answer)[0][0] == "spec.taints[1]"
    assert "taints must be unique by key and effect pair" in answer.body["message"]


def test_unknown_taint_field_fails_decoding(api):
    taint = dict(FALCO_TAINT, tolerationSeconds=30)
    answer = api.call("PATCH", NODE, [{"op": "add", "path": "/spec/taints/-", "value": taint}], JSON_PATCH)
    assert answer.status == 422
    assert answer.body["message"].startswith(' "" is invalid: patch: Invalid value: ')
    unknown = 'strict decoding error: unknown field "spec.taints[1].tolerationSeconds"'
    assert answer.body["message"].endswith(unknown)


def test_merge_patch_labels(kube, api):
    answer = api.call("PATCH", POD, {"metadata": {"labels": {"falco.org/quarantined": "true"}}}, MERGE_PATCH)
    assert answer.status == 200
    assert answer.body["metadata"]["labels"] == {"app": "web", "falco.org/quarantined": "true"}
    removed = api.call("PATCH", POD, {"metadata": {"labels": {"app": None}}}, MERGE_PATCH)
    assert removed.body["metadata"]["labels"] == {"falco.org/quarantined": "true"}
    assert kube.pod("default", "web")["metadata"]["labels"] == {"falco.org/quarantined": "true"}


def test_invalid_label_is_422(kube, api):
    before = kube.pod("default", "web")
    answer = api.call("PATCH", POD, {"metadata": {"labels": {"quarantined": "not ok!"}}}, MERGE_PATCH)
    assert (answer.status, answer.body["reason"]) == (422, "Invalid")
    assert causes(answer)[0][0] == "metadata.labels"
    assert api.call("PATCH", POD, {"metadata": {"labels": {"bad key": "x"}}}, MERGE_PATCH).status == 422
    assert kube.pod("default", "web") == before


def test_json_pointer_escapes(kube, api):
    ops = [{"op": "add", "path": "/metadata/labels/falco.org~1quarantined", "value": "true"}]
    assert api.call("PATCH", POD, ops, JSON_PATCH).status == 200
    assert kube.pod("default", "web")["metadata"]["labels"]["falco.org/quarantined"] == "true"


def test_unsupported_patch_type_is_415(api):
    answer = api.call("PATCH", NODE, {"spec": {"taints": [FALCO_TAINT]}}, "application/strategic-merge-patch+json")
    assert (answer.status, answer.body["reason"]) == (415, "UnsupportedMediaType")


def test_dry_run_patch_answers_the_result_and_stores_nothing(kube, api):
    stale = stale_version(api)
    before = kube.node("node-1")
    version = before["metadata"]["resourceVersion"]
    answer = api.call("PATCH", NODE + "?dryRun=All", guarded_add_taint(version, FALCO_TAINT), JSON_PATCH)
    assert answer.status == 200 and answer.body["spec"]["taints"] == [EXISTING_TAINT, FALCO_TAINT]
    assert answer.body["metadata"]["resourceVersion"] == version
    assert kube.node("node-1") == before
    assert api.call("PATCH", NODE + "?dryRun=All", guarded_add_taint(stale, FALCO_TAINT), JSON_PATCH).status == 422


def test_patch_of_a_missing_node_is_404(api):
    answer = api.call("PATCH", "/api/v1/nodes/gone", [], JSON_PATCH)
    assert (answer.status, answer.body["message"]) == (404, 'nodes "gone" not found')


def test_stale_resource_version_in_a_merge_patch_is_409(kube, api):
    patch = {"metadata": {"resourceVersion": stale_version(api)}, "spec": {"unschedulable": True}}
    answer = api.call("PATCH", NODE, patch, MERGE_PATCH)
    assert (answer.status, answer.body["reason"]) == (409, "Conflict")
    assert "the object has been modified" in answer.body["message"]


def test_status_is_ignored_and_a_no_op_is_not_a_write(kube, api):
    before = kube.pod("default", "web")
    answer = api.call("PATCH", POD, {"status": {"phase": "Failed"}}, MERGE_PATCH)
    assert answer.status == 200 and answer.body == before


def test_pod_spec_is_immutable(api):
    answer = api.call("PATCH", POD, {"spec": {"nodeName": "node-2"}}, MERGE_PATCH)
    assert answer.status == 422 and causes(answer)[0][0] == "spec"


# -- create -----------------------------------------------------------------------------------------

def test_network_policy_created_then_already_exists(kube, api):
    created = api.call("POST", POLICIES, ISOLATE)
    assert created.status == 201
    meta = created.body["metadata"]
    assert meta["uid"] and meta["resourceVersion"] and meta["creationTimestamp"] and meta["generation"] == 1
    assert created.body["spec"]["podSelector"] == ISOLATE["spec"]["podSelector"]
    assert kube.policy("default", "falco-isolate-web") == created.body
    assert api.call("GET", f"{POLICIES}/falco-isolate-web").body == created.body
    again = api.call("POST", POLICIES, ISOLATE)
    assert again.body == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'networkpolicies.networking.k8s.io "falco-isolate-web" already exists',
        "reason": "AlreadyExists",
        "details": {"name": "falco-isolate-web", "group": "networking.k8s.io", "kind": "networkpolicies"},
        "code": 409}


def test_network_policy_unknown_field_is_400(kube, api):
    body = dict(ISOLATE, spec=dict(ISOLATE["spec"], ingres=[]))
    answer = api.call("POST", POLICIES, body)
    assert (answer.status, answer.body["reason"]) == (400, "BadRequest")
    assert answer.body["message"] == ('NetworkPolicy in version "v1" cannot be handled as a NetworkPolicy: '
                                      'strict decoding error: unknown field "spec.ingres"')
    assert kube.policy("default", "falco-isolate-web") is None


def test_network_policy_namespace_and_validation(api):
    other = dict(ISOLATE, metadata={"name": "p", "namespace": "kube-system"})
    assert api.call("POST", POLICIES, other).status == 400
    sideways = dict(ISOLATE, spec=dict(ISOLATE["spec"], policyTypes=["Sideways"]))
    answer = api.call("POST", POLICIES, sideways)
    assert answer.status == 422 and causes(answer)[0][0] == "spec.policyTypes[0]"
    assert api.call("POST", POLICIES, ISOLATE, content_type="text/plain").status == 415


def test_dry_run_create_leaves_no_object(kube, api):
    answer = api.call("POST", POLICIES + "?dryRun=All", ISOLATE)
    assert answer.status == 201 and "resourceVersion" not in answer.body["metadata"]
    assert kube.policy("default", "falco-isolate-web") is None
    assert api.call("POST", EVENTS + "?dryRun=All", event()).status == 201
    assert kube.events() == []


def test_network_policies_list_as_kube_apiserver_answers_it(kube, api):
    for name in ("c", "a", "b"):
        assert api.call("POST", POLICIES, dict(ISOLATE, metadata={"name": name})).status == 201
    kube.add_policy("shop", "elsewhere", {"podSelector": {}})
    listed = api.call("GET", POLICIES)
    assert listed.status == 200
    assert (listed.body["kind"], listed.body["apiVersion"]) == ("NetworkPolicyList", "networking.k8s.io/v1")
    assert listed.body["metadata"]["resourceVersion"].isdigit() and "continue" not in listed.body["metadata"]
    assert [p["metadata"]["name"] for p in listed.body["items"]] == ["a", "b", "c"], "this namespace, name order"
    stored = kube.policy("default", "a")
    assert listed.body["items"][0] == {k: v for k, v in stored.items() if k not in ("kind", "apiVersion")}
    page = api.call("GET", POLICIES + "?limit=2").body
    assert [p["metadata"]["name"] for p in page["items"]] == ["a", "b"]
    assert page["metadata"]["remainingItemCount"] == 1 and page["metadata"]["continue"]
    rest = api.call("GET", f"{POLICIES}?limit=2&continue={page['metadata']['continue']}").body
    assert [p["metadata"]["name"] for p in rest["items"]] == ["c"] and "continue" not in rest["metadata"]
    empty = api.call("GET", "/apis/networking.k8s.io/v1/namespaces/none/networkpolicies").body
    assert empty["items"] == []


def test_json_patch_removes_labels_guarded_by_resource_version(kube, api):
    kube.add_pod("default", "web", uid="uid-web", labels={"app": "web", "example.com/team": "a", "keep": "1"})
    version = kube.pod("default", "web")["metadata"]["resourceVersion"]
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": version},
           {"op": "remove", "path": "/metadata/labels/app"},
           {"op": "remove", "path": "/metadata/labels/example.com~1team"}]
    dry = api.call("PATCH", POD + "?dryRun=All", ops, JSON_PATCH)
    assert dry.status == 200 and dry.body["metadata"]["labels"] == {"keep": "1"}
    assert kube.pod("default", "web")["metadata"]["labels"]["app"] == "web", "dry run persisted nothing"
    assert api.call("PATCH", POD, ops, JSON_PATCH).body["metadata"]["labels"] == {"keep": "1"}
    stale = api.call("PATCH", POD, ops[:1] + [{"op": "remove", "path": "/metadata/labels/keep"}], JSON_PATCH)
    assert stale.status == 422
    assert "testing value /metadata/resourceVersion failed" in stale.body["details"]["causes"][0]["message"]
    fresh = kube.pod("default", "web")["metadata"]["resourceVersion"]
    gone = [{"op": "test", "path": "/metadata/resourceVersion", "value": fresh}, ops[1]]
    assert api.call("PATCH", POD, gone, JSON_PATCH).status == 422, "removing a missing label"
    assert kube.pod("default", "web")["metadata"]["labels"] == {"keep": "1"}


def test_selectors_are_evaluated_as_kubernetes_does(kube):
    labels = {"app": "web", "tier": "front"}
    assert selector_matches({}, labels) and selector_matches({}, None), "empty: every pod"
    assert not selector_matches(None, labels), "nil: none"
    assert selector_matches({"matchLabels": {"app": "web"}}, labels)
    assert not selector_matches({"matchLabels": {"app": "web", "tier": "back"}}, labels)
    cases = [("In", ["web", "db"], "app", True), ("In", ["db"], "app", False), ("In", ["x"], "none", False),
             ("NotIn", ["web"], "app", False), ("NotIn", ["db"], "app", True), ("NotIn", ["x"], "none", True),
             ("Exists", None, "tier", True), ("Exists", None, "none", False),
             ("DoesNotExist", None, "none", True), ("DoesNotExist", None, "tier", False)]
    for operator, values, key, expected in cases:
        expression = {"key": key, "operator": operator, **({"values": values} if values else {})}
        assert selector_matches({"matchExpressions": [expression]}, labels) == expected, expression
    kube.add_pod("default", "web", uid="uid-web", labels=labels)
    kube.add_policy("default", "all", {"podSelector": {}})
    kube.add_policy("default", "web", {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In",
                                                                             "values": ["web"]}]}})
    kube.add_policy("default", "db", {"podSelector": {"matchLabels": {"app": "db"}}})
    assert kube.policies_selecting("default", "web") == ["all", "web"]


def test_event_time_needs_six_fractional_digits(kube, api):
    three = api.call("POST", EVENTS, event(eventTime="2026-11-23T03:00:00.123Z"))
    assert (three.status, three.body["reason"]) == (400, "BadRequest")
    assert "2006-01-02T15:04:05.000000Z07:00" in three.body["message"]
    assert kube.events() == []
    six = api.call("POST", EVENTS, event())
    assert six.status == 201 and six.body["metadata"]["name"].startswith("web.")
    assert kube.events() == [six.body]


def test_event_fields_the_server_requires(api):
    cases = [
        ({"action": ""}, "action"), ({"reason": None}, "reason"), ({"action": "x" * 129}, "action"),
        ({"reportingController": ""}, "reportingController"), ({"reportingInstance": ""}, "reportingInstance"),
        ({"note": "n" * 1025}, "note"), ({"type": "Info"}, "type"), ({"regarding": None}, "regarding"),
        ({"eventTime": None}, "eventTime"),
    ]
    for change, field in cases:
        answer = api.call("POST", EVENTS, event(**change))
        assert (answer.status, answer.body["reason"]) == (422, "Invalid"), change
        assert field in [f for f, _ in causes(answer)], (change, answer.body["message"])


# -- faults -----------------------------------------------------------------------------------------

def test_429_with_retry_after_once_then_success(kube, api):
    kube.add_fault(method="GET", path=r"/pods/web$", status=429, retry_after=2)
    limited = api.call("GET", POD)
    assert (limited.status, limited.body["reason"]) == (429, "TooManyRequests")
    assert limited.headers.getheader("Retry-After") == "2" and limited.body["details"] == {"retryAfterSeconds": 2}
    assert api.call("GET", POD).status == 200
    assert [r.status for r in kube.requests()] == [429, 200]


def test_500_forever_only_where_it_matches(kube, api):
    kube.add_fault(path="/nodes/", status=500, times=None)
    for _ in range(3):
        answer = api.call("PATCH", NODE, [], JSON_PATCH)
        assert (answer.status, answer.body["reason"]) == (500, "InternalError")
    assert api.call("GET", POD).status == 200


def test_delay(kube, api):
    kube.add_fault(path="/pods/", delay=0.3)
    start = time.monotonic()
    assert api.call("GET", POD).status == 200
    assert time.monotonic() - start >= 0.3


def test_drop_closes_the_connection_without_an_answer(kube, api, connect):
    kube.add_fault(method="DELETE", drop=True)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError)):
        api.call("DELETE", POD)
    assert kube.pod("default", "web") is not None
    assert connect().call("DELETE", POD).status == 200
    assert [r.status for r in kube.requests()] == [None, 200]


def test_a_fault_for_seconds_applies_to_every_match_then_expires(kube, api):
    kube.add_fault(method="GET", path="/pods/", status=500, for_seconds=0.5)
    for _ in range(3):
        assert api.call("GET", POD).status == 500
    assert api.call("GET", NODE).status == 200, "only where it matches"
    time.sleep(0.6)
    assert api.call("GET", POD).status == 200
    assert api.call("GET", POD).status == 200


def test_times_still_limits_a_fault_for_seconds(kube, api):
    kube.add_fault(method="GET", status=503, for_seconds=10, times=2)
    assert [api.call("GET", POD).status for _ in range(3)] == [503, 503, 200]


# -- concurrency ------------------------------------------------------------------------------------

def in_parallel(n, work):
    """Runs work(i) on n threads at once; returns the results in order, raising the first error."""
    results, errors = [None] * n, []

    def run(i):
        try:
            results[i] = work(i)
        except Exception as e:  # reported below, in the test's thread
            errors.append(e)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors[0]
    return results


def test_in_flight_counts_requests_being_answered(kube, connect):
    assert (kube.in_flight, kube.max_in_flight) == (0, 0)
    kube.add_fault(method="GET", delay=0.5, times=None)
    clients = [connect() for _ in range(3)]
    seen = []
    watcher = threading.Thread(target=lambda: seen.append(wait_for(lambda: kube.in_flight == 3)))
    watcher.start()
    in_parallel(3, lambda i: clients[i].call("GET", POD))
    watcher.join()
    assert seen == [True], "three delayed requests were in flight at once"
    assert wait_for(lambda: kube.in_flight == 0), "a client may see its answer a moment before the count drops"
    assert kube.max_in_flight == 3
    assert (kube.in_flight_for("GET"), kube.max_in_flight_for("GET"), kube.max_in_flight_for("DELETE")) == (0, 3, 0)
    kube.reset_max_in_flight()
    assert (kube.max_in_flight, kube.max_in_flight_for("GET")) == (0, 0)
    clients[0].call("DELETE", POD)
    assert (kube.max_in_flight, kube.max_in_flight_for("DELETE"), kube.max_in_flight_for("GET")) == (1, 1, 0)


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_64_keep_alive_connections_are_served_at_once(kube, connect):
    n = 64
    clients = [connect() for _ in range(n)]
    kube.add_fault(method="GET", path="/pods/", delay=1.0, times=None)
    assert in_parallel(n, lambda i: clients[i].call("GET", POD).status) == [200] * n
    # With the default listen backlog (5) some connections wait to be accepted and this falls short.
    assert kube.max_in_flight_for("GET") == n, "every request waited its delay at the same time"
    sockets = [c.conn.sock for c in clients]
    assert in_parallel(n, lambda i: clients[i].call("GET", NODE).status) == [200] * n
    assert [c.conn.sock for c in clients] == sockets, "the connections were kept alive"
    assert wait_for(lambda: kube.in_flight == 0)


# -- request log ------------------------------------------------------------------------------------

def test_requests_are_recorded_with_query_and_body(kube, api):
    ops = guarded_add_taint("0", FALCO_TAINT)
    api.call("PATCH", NODE + "?dryRun=All&fieldManager=playbookd", ops, JSON_PATCH)
    (request,) = kube.requests()
    assert (request.method, request.path, request.status) == ("PATCH", NODE, 422)
    assert request.query == {"dryRun": ["All"], "fieldManager": ["playbookd"]}
    assert request.headers["content-type"] == JSON_PATCH
    assert request.headers["authorization"] == f"Bearer {kube.token}"
    assert request.body == json.dumps(ops).encode() and request.json == ops
    assert (request.authenticated, request.auth) == (True, "token")
    kube.clear_requests()
    assert kube.requests() == []


# -- graceful deletion, namespaced lists, frozen status (min_healthy_replicas counts pods) ----------

def test_held_graceful_delete_leaves_the_pod_terminating_until_grace_0(kube, api):
    kube.hold_terminating_pods()
    first = api.call("DELETE", POD, {"gracePeriodSeconds": 20})
    stored = kube.pod("default", "web")["metadata"]
    assert first.status == 200 and stored["deletionGracePeriodSeconds"] == 20 and stored["deletionTimestamp"]
    assert api.call("DELETE", POD, {"gracePeriodSeconds": 25}).body["metadata"]["deletionGracePeriodSeconds"] == 20
    assert kube.pod("default", "web")["metadata"]["deletionTimestamp"] == stored["deletionTimestamp"], "kept"
    assert api.call("DELETE", POD, {"gracePeriodSeconds": 0}).status == 200
    assert kube.pod("default", "web") is None and api.call("GET", POD).status == 404


def test_held_eviction_is_a_graceful_deletion_too(kube, api):
    kube.hold_terminating_pods()
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web", "namespace": "default"}}
    assert api.call("POST", POD + "/eviction", body).status == 201
    assert kube.pod("default", "web")["metadata"]["deletionGracePeriodSeconds"] == 30


def test_namespaced_pod_and_replicaset_lists_select_and_page(kube, api):
    kube.set_page_max(2)
    pods = kube.add_deployment("shop", "cart", 3)
    kube.add_replicaset("shop", "batch", 2, labels={"app": "batch", "track": "canary"})
    kube.add_pod("other", "cart-x", labels={"app": "cart"})

    def names(path, selector):
        listed, cont = [], ""
        while True:
            query = urllib.parse.urlencode({"labelSelector": selector, "limit": 5, "continue": cont})
            answer = api.call("GET", f"{path}?{query}")
            assert answer.status == 200 and all("kind" not in i for i in answer.body["items"])
            listed += [i["metadata"]["name"] for i in answer.body["items"]]
            cont = answer.body["metadata"].get("continue", "")
            if not cont:
                return listed
    assert names("/api/v1/namespaces/shop/pods", "app=cart") == pods, "three pages of at most 2"
    assert names("/api/v1/namespaces/shop/pods", "app in (cart,batch),track notin (canary)") == pods
    assert names("/api/v1/namespaces/shop/pods", "track") == ["batch-0", "batch-1"]
    assert names("/apis/apps/v1/namespaces/shop/replicasets", "app!=batch") == ["cart-5d8c7b9f4"]
    listed = api.call("GET", "/apis/apps/v1/namespaces/shop/replicasets")
    assert listed.body["kind"] == "ReplicaSetList"
    assert [i["status"]["readyReplicas"] for i in listed.body["items"]] == [2, 3]
    assert api.call("GET", "/api/v1/namespaces/shop/pods?labelSelector=app%3D%3D%3D").status == 400


def test_frozen_status_does_not_follow_the_pods(kube, api):
    pods = kube.add_deployment("shop", "cart", 3)
    kube.freeze_status("shop", "deployments", "cart")
    assert api.call("DELETE", f"/api/v1/namespaces/shop/pods/{pods[0]}", {"gracePeriodSeconds": 0}).status == 200
    deployment = api.call("GET", "/apis/apps/v1/namespaces/shop/deployments/cart").body
    replicaset = api.call("GET", "/apis/apps/v1/namespaces/shop/replicasets/cart-5d8c7b9f4").body
    assert deployment["status"]["readyReplicas"] == 3 and replicaset["status"]["readyReplicas"] == 2
    assert "frozen_status" not in deployment
