"""test_fake_kube_leases.py: self-tests for the fake API server's coordination.k8s.io/v1 Leases, over real
HTTPS, as kube-apiserver answers them: create (201, 409 AlreadyExists), get (404), update with a required and
current resourceVersion (409 Conflict when stale), delete with uid and resourceVersion preconditions (409),
dryRun=All persisting nothing, and bodies checked against the strict schema (unknown fields, MicroTime)."""

import pytest

from fake_kube import FakeKube
from test_fake_kube import Client

LEASES = "/apis/coordination.k8s.io/v1/namespaces/playbookd/leases"
LEASE = LEASES + "/playbookd-replicas-u1"
NOW = "2026-11-23T03:00:00.123456Z"


def lease(**spec):
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "playbookd-replicas-u1", "namespace": "playbookd"},
            "spec": {"holderIdentity": "pod-a_1", "leaseDurationSeconds": 30, "acquireTime": NOW, "renewTime": NOW,
                     **spec}}


@pytest.fixture
def kube(tmp_path):
    fake = FakeKube(str(tmp_path / "kube"))
    fake.add_namespace("playbookd")
    yield fake
    fake.stop()


@pytest.fixture
def api(kube):
    client = Client(kube)
    yield client
    client.conn.close()


def test_create_then_already_exists_then_get(kube, api):
    created = api.call("POST", LEASES, lease())
    assert created.status == 201 and created.body["metadata"]["uid"] and created.body["metadata"]["resourceVersion"]
    again = api.call("POST", LEASES, lease(holderIdentity="pod-b_1"))
    assert (again.status, again.body["reason"]) == (409, "AlreadyExists")
    assert again.body["message"] == 'leases.coordination.k8s.io "playbookd-replicas-u1" already exists'
    assert api.call("GET", LEASE).body == created.body
    missing = api.call("GET", LEASES + "/other")
    assert (missing.status, missing.body["reason"]) == (404, "NotFound")


def test_create_in_a_missing_namespace_is_404(api):
    answer = api.call("POST", "/apis/coordination.k8s.io/v1/namespaces/nowhere/leases",
                      {**lease(), "metadata": {"name": "x"}})
    assert (answer.status, answer.body["message"]) == (404, 'namespaces "nowhere" not found')


def test_bodies_are_decoded_strictly_and_validated(kube, api):
    unknown = api.call("POST", LEASES, lease(holder="x"))
    assert unknown.status == 400 and 'unknown field "spec.holder"' in unknown.body["message"]
    seconds = api.call("POST", LEASES, lease(renewTime="2026-11-23T03:00:00Z"))
    assert seconds.status == 400 and "RFC3339Micro (spec.renewTime)" in seconds.body["message"]
    zero = api.call("POST", LEASES, lease(leaseDurationSeconds=0))
    assert zero.status == 422 and zero.body["details"]["causes"][0]["field"] == "spec.leaseDurationSeconds"
    assert kube.leases() == []


def test_update_needs_the_current_resource_version(kube, api):
    first = api.call("POST", LEASES, lease()).body
    version = first["metadata"]["resourceVersion"]
    unconditional = api.call("PUT", LEASE, lease(holderIdentity="pod-b_1"))
    assert (unconditional.status, unconditional.body["reason"]) == (422, "Invalid")
    taken = lease(holderIdentity="pod-b_1", leaseTransitions=1)
    taken["metadata"]["resourceVersion"] = version
    updated = api.call("PUT", LEASE, taken)
    assert updated.status == 200 and updated.body["metadata"]["uid"] == first["metadata"]["uid"]
    assert updated.body["metadata"]["resourceVersion"] != version
    stale = api.call("PUT", LEASE, taken)
    assert (stale.status, stale.body["reason"]) == (409, "Conflict")
    assert stale.body["message"] == ('Operation cannot be fulfilled on leases.coordination.k8s.io '
                                     '"playbookd-replicas-u1": the object has been modified; please apply your '
                                     'changes to the latest version and try again')
    assert kube.lease("playbookd", "playbookd-replicas-u1")["spec"]["holderIdentity"] == "pod-b_1"
    renamed = lease()
    renamed["metadata"].update(name="other", resourceVersion=updated.body["metadata"]["resourceVersion"])
    assert api.call("PUT", LEASE, renamed).status == 400


def test_update_of_a_missing_lease_creates_it(kube, api):
    body = lease()
    body["metadata"]["resourceVersion"] = "12"
    assert api.call("PUT", LEASE, body).status == 201 and kube.lease("playbookd", "playbookd-replicas-u1")


def test_delete_with_preconditions(kube, api):
    held = api.call("POST", LEASES, lease()).body["metadata"]
    wrong_uid = api.call("DELETE", LEASE, {"preconditions": {"uid": "other"}})
    assert (wrong_uid.status, wrong_uid.body["reason"]) == (409, "Conflict")
    assert wrong_uid.body["message"].startswith('Operation cannot be fulfilled on Lease.coordination.k8s.io '
                                                '"playbookd-replicas-u1": the UID in the precondition (other)')
    stale = api.call("DELETE", LEASE, {"preconditions": {"uid": held["uid"], "resourceVersion": "0"}})
    assert stale.status == 409 and kube.lease("playbookd", "playbookd-replicas-u1") is not None
    gone = api.call("DELETE", LEASE, {"preconditions": {"uid": held["uid"],
                                                        "resourceVersion": held["resourceVersion"]}})
    assert (gone.status, gone.body["status"], gone.body["details"]["uid"]) == (200, "Success", held["uid"])
    assert kube.lease("playbookd", "playbookd-replicas-u1") is None
    assert api.call("DELETE", LEASE).status == 404


def test_dry_run_persists_nothing(kube, api):
    assert api.call("POST", LEASES + "?dryRun=All", lease()).status == 201 and kube.leases() == []
    stored = api.call("POST", LEASES, lease()).body
    taken = lease(holderIdentity="pod-b_1")
    taken["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"]
    assert api.call("PUT", LEASE + "?dryRun=All", taken).status == 200
    assert api.call("DELETE", LEASE, {"dryRun": ["All"]}).status == 200
    assert kube.leases() == [stored]
