"""fake_kube.py: a fake Kubernetes API server for the integration tests.

FakeKube serves, over HTTPS on a loopback port, the REST calls playbookd makes (get, delete and patch
pods; get and patch nodes; create, get and list NetworkPolicies and events.k8s.io Events; read pod logs and
create ConfigMaps in namespaces that exist; evict pods under PodDisruptionBudgets; get and list apps/v1
Deployments, ReplicaSets, StatefulSets and DaemonSets and list a namespace's pods, with labelSelector, limit
and continue; graceful deletion, held or not; workload status frozen on demand; create, get, update and
delete coordination.k8s.io Leases) and answers them the way
kube-apiserver does: the same status codes and Status objects, schema checks against the upstream strict
schemas in shared/k8s-schemas and tests/k8s-schemas, JSON and merge patches, optimistic concurrency and
dryRun=All. It makes its own CA and certificates, accepts a bearer token or a client certificate, records
every request, and injects faults (error statuses with Retry-After, delays, dropped connections) on demand, for a number of
requests or for a time. It serves many keep-alive connections at once (a thread each) and counts the
requests being handled at once: in_flight, max_in_flight, per method too.
Debian's python3 with python3-cryptography and python3-jsonschema; nothing else.
"""

import base64
import copy
import datetime
import functools
import ipaddress
import json
import os
import re
import secrets
import socket
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The team's shared schemas first, then the ones this repository carries (tests/k8s-schemas/SOURCE.md).
SCHEMA_DIRS = (os.path.join(ROOT, "..", "shared", "k8s-schemas"), os.path.join(ROOT, "tests", "k8s-schemas"))

# ---------------------------------------------------------------------------------------------------
# Status objects and the errors kube-apiserver answers with (k8s.io/apimachinery/pkg/api/errors)


class ApiError(Exception):
    """A failed request: the HTTP code and the Status object kube-apiserver would send."""

    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code = code
        self.status = status_object(code, reason, message, details)


def status_object(code, reason, message, details=None):
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message}
    body["reason"] = reason
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def status_details(name="", kind="", group="", causes=None):
    pairs = [("name", name), ("group", group), ("kind", kind), ("causes", causes)]
    return {key: value for key, value in pairs if value}


def qualified(resource, group):
    return f"{resource}.{group}" if group else resource


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def not_found(resource, name, group=""):
    message = f'{qualified(resource, group)} "{name}" not found'
    return ApiError(404, "NotFound", message, status_details(name, resource, group))


def conflict(resource, name, why, group=""):
    message = f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}'
    return ApiError(409, "Conflict", message, status_details(name, resource, group))


def already_exists(resource, name, group=""):
    message = f'{qualified(resource, group)} "{name}" already exists'
    return ApiError(409, "AlreadyExists", message, status_details(name, resource, group))


def unsupported_media_type(accepted):
    message = "the body of the request was in an unknown format - accepted media types include: "
    message += ", ".join(accepted)
    return ApiError(415, "UnsupportedMediaType", message)


def patch_rejected(cause):
    """What errors.NewGenericServerResponse(422, ...) gives when a JSON patch does not apply."""
    causes = [{"reason": "UnexpectedServerResponse", "message": cause}]
    message = "the server rejected our request due to an error in our request"
    return ApiError(422, "Invalid", message, {"causes": causes})


UNAUTHORIZED = (401, status_object(401, "Unauthorized", "Unauthorized"))
NO_SUCH_PATH = ApiError(404, "NotFound", "the server could not find the requested resource", {})
NO_SUCH_METHOD = ApiError(405, "MethodNotAllowed",
                          "the server does not allow this method on the requested resource", {})

# ---------------------------------------------------------------------------------------------------
# Field errors and 422 Invalid (k8s.io/apimachinery/pkg/util/validation/field)

OMIT = object()
ERROR_TYPES = {
    "Required": ("FieldValueRequired", "Required value"),
    "Invalid": ("FieldValueInvalid", "Invalid value"),
    "NotSupported": ("FieldValueNotSupported", "Unsupported value"),
    "Duplicate": ("FieldValueDuplicate", "Duplicate value"),
    "Forbidden": ("FieldValueForbidden", "Forbidden"),
    "TooLong": ("FieldValueTooLong", "Too long"),
}


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str
    body: str

    def __str__(self):
        return f"{self.field}: {self.body}"


def go_value(value):
    """A bad value as the field error messages print it."""
    return json.dumps(value, separators=(",", ":"))


def field_error(kind, field, value=OMIT, detail=""):
    reason, text = ERROR_TYPES[kind]
    if value is not OMIT:
        text += ": " + go_value(value)
    if detail:
        text += ": " + detail
    return FieldError(field, reason, text)


def required(field, detail=""):
    return field_error("Required", field, detail=detail)


def invalid_value(field, value, detail):
    return field_error("Invalid", field, value, detail)


def not_supported(field, value, supported):
    return field_error("NotSupported", field, value, "supported values: " + ", ".join(f'"{s}"' for s in supported))


def invalid(kind, group, name, errors):
    """errors.NewInvalid: 422 with one cause per field error."""
    errors = list(dict.fromkeys(errors))
    summary = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(map(str, errors)) + "]"
    causes = [{"reason": e.reason, "message": e.body, "field": e.field} for e in errors]
    message = f'{qualified(kind, group)} "{name}" is invalid: {summary}'
    return ApiError(422, "Invalid", message, status_details(name, kind, group, causes))


def invalid_options(kind, errors):
    return invalid(kind, "meta.k8s.io", "", errors)


def field_path(parts):
    """["spec", "ingress", 0, "from"] -> "spec.ingress[0].from"."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else ("." if text else "") + str(part)
    return text


# ---------------------------------------------------------------------------------------------------
# Name and label syntax (k8s.io/apimachinery/pkg/util/validation)

DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = f"{DNS1123_LABEL}(\\.{DNS1123_LABEL})*"
QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE = f"({QUALIFIED_NAME})?"
QUALIFIED_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', "
                      "and must start and end with an alphanumeric character")
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character")
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                   "and must start and end with an alphanumeric character")


def regex_error(message, regex, *examples):
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{regex}')"


def dns_subdomain_errors(value):
    errors = ["must be no more than 253 characters"] if len(value) > 253 else []
    if not re.fullmatch(DNS1123_SUBDOMAIN, value):
        errors.append(regex_error(SUBDOMAIN_MSG, DNS1123_SUBDOMAIN, "example.com"))
    return errors


def qualified_name_regex_error():
    return regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME, "MyName", "my.name", "123-abc")


def qualified_name_errors(value):
    parts = value.split("/")
    if len(parts) > 2:
        return ["a qualified name " + qualified_name_regex_error()
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    errors = []
    if len(parts) == 2:
        prefix = parts[0]
        errors += ["prefix part " + m for m in (dns_subdomain_errors(prefix) if prefix else ["must be non-empty"])]
    name = parts[-1]
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    if not re.fullmatch(QUALIFIED_NAME, name):
        errors.append("name part " + qualified_name_regex_error())
    return errors


def label_value_errors(value):
    errors = ["must be no more than 63 characters"] if len(value) > 63 else []
    if not re.fullmatch(LABEL_VALUE, value):
        errors.append(regex_error(LABEL_VALUE_MSG, LABEL_VALUE, "MyValue", "my_value", "12345"))
    return errors


def validate_labels(labels, path):
    errors = []
    for key, value in (labels or {}).items():
        errors += [invalid_value(path, key, m) for m in qualified_name_errors(key)]
        errors += [invalid_value(path, value, m) for m in label_value_errors(value or "")]
    return errors


def validate_metadata(meta):
    """The parts of ValidateObjectMeta a created object can get wrong."""
    errors = []
    name = meta.get("name") or ""
    errors += [invalid_value("metadata.name", name, m) for m in dns_subdomain_errors(name)]
    errors += validate_labels(meta.get("labels"), "metadata.labels")
    for key in meta.get("annotations") or {}:
        errors += [invalid_value("metadata.annotations", key, m) for m in qualified_name_errors(key)]
    return errors


# ---------------------------------------------------------------------------------------------------
# Decoding against the strict schemas: type errors and unknown fields are what the decoder rejects


@functools.lru_cache(maxsize=None)
def schema_path(name):
    found = [path for path in (os.path.join(d, name) for d in SCHEMA_DIRS) if os.path.isfile(path)]
    if not found:
        raise FileNotFoundError(f"schema {name} is in none of {SCHEMA_DIRS}")
    return found[0]


@functools.lru_cache(maxsize=None)
def schema_validator(name):
    # The files declare "$schema": "http://json-schema.org/schema#" (no draft); Draft 7 covers every keyword.
    with open(schema_path(name)) as f:
        return jsonschema.Draft7Validator(json.load(f))


def json_type(value):
    names = {dict: "object", list: "array", str: "string", bool: "bool", type(None): "null"}
    return names.get(type(value), "number")


@dataclass
class Decoded:
    """Schema violations sorted as kube-apiserver meets them: decoding errors, then validation."""
    type_errors: list
    unknown_fields: list
    missing: list


def decode_against(schema_name, kind, obj, prefix=()):
    found = Decoded([], [], [])
    for error in schema_validator(schema_name).iter_errors(obj):
        path = [*prefix, *error.absolute_path]
        if error.validator == "additionalProperties":
            known = error.schema.get("properties", {})
            found.unknown_fields += [f'unknown field "{field_path(path + [k])}"'
                                     for k in error.instance if k not in known]
        elif error.validator == "required":
            found.missing += [required(field_path(path + [k]))
                              for k in error.validator_value if k not in error.instance]
        else:
            found.type_errors.append(f"json: cannot unmarshal {json_type(error.instance)} into Go struct field "
                                     f"{kind}.{field_path(path)} ({error.message})")
    return found


def strict_error(unknown_fields):
    return "strict decoding error: " + ", ".join(unknown_fields)


def parse_json(body):
    """As the API server's decoder (Go encoding/json): invalid UTF-8 is not an error but U+FFFD."""
    try:
        return json.loads(body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body)
    except ValueError as e:
        raise bad_request(f"invalid JSON: {e}") from None


def check_json_content_type(headers):
    media_type = headers.get("content-type", "").split(";")[0].strip()
    if media_type not in ("", "application/json"):
        raise unsupported_media_type(["application/json"])


def check_type_meta(obj, kind, group_version):
    api_version = obj.get("apiVersion")
    if api_version and api_version != group_version:
        raise bad_request(f"the API version in the data ({api_version}) does not match "
                          f"the expected API version ({group_version})")
    if obj.get("kind") and obj["kind"] != kind:
        raise bad_request(f'no kind "{obj["kind"]}" is registered for version "{group_version}" in scheme')


MICROTIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)")


def microtime_errors(obj, paths):
    """metav1.MicroTime only parses RFC 3339 with exactly six fractional digits; anything else fails decoding."""
    errors = []
    for path in paths:
        value = functools.reduce(child, path.split("."), obj)
        if isinstance(value, str) and not MICROTIME.fullmatch(value):
            errors.append(f'parsing time "{value}" as "2006-01-02T15:04:05.000000Z07:00": '
                          f"cannot parse as RFC3339Micro ({path})")
    return errors


def decode_created(body, kind, group_version, schema_name, microtimes=()):
    """The object of a create request, or 400 exactly where kube-apiserver's decoder fails."""
    obj = parse_json(body)
    if not isinstance(obj, dict):
        raise bad_request(f"the object provided is unrecognized (must be of type {kind}): expected an object")
    check_type_meta(obj, kind, group_version)
    found = decode_against(schema_name, kind, obj)
    problems = found.type_errors + microtime_errors(obj, microtimes)
    if not problems and found.unknown_fields:
        problems = [strict_error(found.unknown_fields)]
    if problems:
        version = group_version.split("/")[-1]
        raise bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {problems[0]}')
    obj = {"kind": kind, "apiVersion": group_version, **obj, "metadata": obj.get("metadata") or {}}
    return obj, found.missing


# ---------------------------------------------------------------------------------------------------
# Patches: RFC 6902 JSON patch with the messages of evanphx/json-patch, RFC 7386 merge patch

PATCH_TYPES = ["application/json-patch+json", "application/merge-patch+json"]


def pointer_tokens(path):
    return [t.replace("~1", "/").replace("~0", "~") for t in path.split("/")[1:]]


def child(container, token):
    if isinstance(container, dict):
        return container.get(token)
    if isinstance(container, list) and token.isdigit() and int(token) < len(container):
        return container[int(token)]
    return None


def parent_of(doc, path):
    """(container, last token) for a JSON pointer, or (None, None) when the parent does not exist."""
    if not path.startswith("/"):
        return None, None
    tokens = pointer_tokens(path)
    container = functools.reduce(child, tokens[:-1], doc)
    return (container, tokens[-1]) if isinstance(container, (dict, list)) else (None, None)


def array_index(container, token, path, op, extra=0):
    if not re.fullmatch(r"-?\d+", token):
        raise patch_rejected(f"error in {op} for path: '{path}': value was not a proper array index: '{token}'")
    index = int(token)
    if not 0 <= index < len(container) + extra:
        raise patch_rejected(f"error in {op} for path: '{path}': Unable to access invalid index: {index}: "
                             "invalid index referenced")
    return index


def patch_add(doc, path, value):
    container, key = parent_of(doc, path)
    if container is None:
        raise patch_rejected(f'add operation does not apply: doc is missing path: "{path}": missing value')
    if isinstance(container, dict):
        container[key] = value
    elif key == "-":
        container.append(value)
    else:
        container.insert(array_index(container, key, path, "add", extra=1), value)


def patch_remove(doc, path):
    container, key = parent_of(doc, path)
    if container is None:
        raise patch_rejected(f'remove operation does not apply: doc is missing path: "{path}": missing value')
    if isinstance(container, list):
        return container.pop(array_index(container, key, path, "remove"))
    if key not in container:
        raise patch_rejected(f"error in remove for path: '{path}': Unable to remove nonexistent key: {key}: "
                             "missing value")
    return container.pop(key)


def patch_get(doc, path, op):
    container, key = parent_of(doc, path)
    if container is None or (isinstance(container, dict) and key not in container):
        raise patch_rejected(f"{op} operation does not apply: doc is missing path: {path}: missing value")
    return container[array_index(container, key, path, op) if isinstance(container, list) else key]


def json_equal(a, b):
    """Equality of JSON values, where true is not 1 and 1 is not 1.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(json_equal, a, b))
    return a == b


def patch_test(doc, path, value):
    if path == "":
        actual = doc
    else:
        container, key = parent_of(doc, path)
        if container is None:
            raise patch_rejected(f"test operation does not apply: is missing path: {path}: missing value")
        actual = child(container, key)
    if not json_equal(actual, value):
        raise patch_rejected(f"testing value {path} failed: test failed")


def apply_operation(doc, op):
    kind, path, value = op.get("op"), op.get("path", ""), op.get("value")
    if kind == "add":
        patch_add(doc, path, value)
    elif kind == "remove":
        patch_remove(doc, path)
    elif kind == "replace":
        if path == "":
            return value
        patch_get(doc, path, "replace")
        patch_remove(doc, path)
        patch_add(doc, path, value)
    elif kind == "test":
        patch_test(doc, path, value)
    elif kind in ("move", "copy"):
        moved = patch_get(doc, op.get("from", ""), kind)
        patch_add(doc, path, patch_remove(doc, op["from"]) if kind == "move" else copy.deepcopy(moved))
    else:
        raise patch_rejected(f"Unexpected kind: {kind}")
    return doc


def json_patch(current, body):
    ops = parse_json(body)
    if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
        raise bad_request("json: cannot unmarshal into Go value of type jsonpatch.Patch: "
                          "a JSON patch is an array of objects")
    return functools.reduce(apply_operation, ops, copy.deepcopy(current))


def merge(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


def merge_patch(current, body):
    try:
        patch = json.loads(body)
    except ValueError:
        patch = None
    if not isinstance(patch, dict):
        raise bad_request("Invalid JSON Patch")
    return merge(current, patch)


def patch_function(headers):
    media_type = headers.get("content-type", "").split(";")[0].strip()
    if media_type not in PATCH_TYPES:
        raise unsupported_media_type(PATCH_TYPES)
    return json_patch if media_type == PATCH_TYPES[0] else merge_patch


def patch_invalid(patched, message):
    """A patched object that no longer decodes: errors.NewInvalid(GroupKind{}, "", patch: ...)."""
    return invalid("", "", "", [invalid_value("patch", json.dumps(patched, separators=(",", ":")), message)])


# ---------------------------------------------------------------------------------------------------
# Object rules (pkg/apis/core/validation, pkg/apis/networking/validation)

TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
POD_MUTABLE_SPEC = ("activeDeadlineSeconds", "tolerations")
POD_SPEC_FORBIDDEN = ("pod updates may not change fields other than `spec.containers[*].image`,"
                      "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                      "`spec.tolerations` (only additions to existing tolerations),"
                      "`spec.terminationGracePeriodSeconds` "
                      "(allow it to be set to 1 if it was previously negative)")


def validate_taint(taint, path, seen):
    key = taint.get("key") or ""
    errors = [invalid_value(f"{path}.key", key, m) for m in qualified_name_errors(key)]
    value = taint.get("value") or ""
    if label_value_errors(value):
        errors.append(invalid_value(f"{path}.value", value, ";".join(label_value_errors(value))))
    effect = taint.get("effect") or ""
    if not effect:
        errors.append(required(f"{path}.effect"))
    elif effect not in TAINT_EFFECTS:
        errors.append(not_supported(f"{path}.effect", effect, TAINT_EFFECTS))
    if (taint.get("key"), effect) in seen:
        errors.append(field_error("Duplicate", path, taint, "taints must be unique by key and effect pair"))
    seen.add((taint.get("key"), effect))
    return errors


def validate_node(node):
    meta = node["metadata"]
    errors = validate_labels(meta.get("labels"), "metadata.labels")
    seen = set()
    for i, taint in enumerate(taints_of(node)):
        errors += validate_taint(taint or {}, f"spec.taints[{i}]", seen)
    return errors


def taints_of(node):
    return (node.get("spec") or {}).get("taints") or []


def pod_spec_without_mutable_fields(spec):
    spec = {k: v for k, v in spec.items() if k not in POD_MUTABLE_SPEC}
    for field in ("containers", "initContainers"):
        spec[field] = [{k: v for k, v in c.items() if k != "image"} for c in spec.get(field) or []]
    return spec


def validate_pod_update(old, new):
    errors = validate_labels(new["metadata"].get("labels"), "metadata.labels") + validate_annotations(new["metadata"])
    if pod_spec_without_mutable_fields(old.get("spec")) != pod_spec_without_mutable_fields(new.get("spec")):
        errors.append(field_error("Forbidden", "spec", detail=POD_SPEC_FORBIDDEN))
    return errors


def pod_decode_errors(pod):
    """The pod schema is not in shared/k8s-schemas: check the metadata maps a patch is likely to touch."""
    meta = pod.get("metadata")
    if not isinstance(meta, dict):
        return [f"json: cannot unmarshal {json_type(meta)} into Go struct field Pod.metadata"]
    errors = []
    for field in ("labels", "annotations"):
        values = meta.get(field) or {}
        if not isinstance(values, dict) or not all(isinstance(v, (str, type(None))) for v in values.values()):
            errors.append(f"json: cannot unmarshal into Go struct field ObjectMeta.metadata.{field}")
    spec = pod.get("spec")
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list) or not all(isinstance(c, dict) for c in containers):
        errors.append("json: cannot unmarshal into Go struct field Pod.spec of type v1.PodSpec")
    return errors


def validate_selector(selector, path):
    errors = validate_labels(selector.get("matchLabels"), f"{path}.matchLabels")
    for i, expression in enumerate(selector.get("matchExpressions") or []):
        expression = expression or {}
        where = f"{path}.matchExpressions[{i}]"
        operator, values = expression.get("operator") or "", expression.get("values")
        if operator in ("In", "NotIn") and not values:
            errors.append(required(f"{where}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist") and values:
            errors.append(field_error("Forbidden", f"{where}.values",
                                      detail="may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        elif operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            errors.append(invalid_value(f"{where}.operator", operator, "not a valid selector operator"))
        key = expression.get("key") or ""
        errors += [invalid_value(f"{where}.key", key, m) for m in qualified_name_errors(key)]
    return errors


def selector_matches(selector, labels):
    """metav1.LabelSelectorAsSelector(selector).Matches(labels): None selects nothing, {} everything; every
    matchLabels pair and matchExpressions requirement must hold (NotIn and DoesNotExist hold for an absent
    label). The selector has passed validate_selector, as every stored one has."""
    if selector is None:
        return False
    labels = labels or {}
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    tests = {"In": lambda key, values: key in labels and labels[key] in values,
             "NotIn": lambda key, values: key not in labels or labels[key] not in values,
             "Exists": lambda key, values: key in labels,
             "DoesNotExist": lambda key, values: key not in labels}
    return all(tests[e["operator"]](e["key"], e.get("values") or []) for e in selector.get("matchExpressions") or [])


def port_name_errors(name):
    checks = [(len(name) > 15, "must be no more than 15 characters"),
              (not re.fullmatch("[-a-z0-9]+", name),
               "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"),
              (not re.search("[a-z]", name), "must contain at least one letter (a-z)"),
              ("--" in name, "must not contain consecutive hyphens"),
              (name.startswith("-") or name.endswith("-"), "must not begin or end with a hyphen")]
    return [message for failed, message in checks if failed]


def validate_port(port, path):
    errors = []
    protocol, number, end = port.get("protocol"), port.get("port"), port.get("endPort")
    if protocol is not None and protocol not in ("TCP", "UDP", "SCTP"):
        errors.append(not_supported(f"{path}.protocol", protocol, ["TCP", "UDP", "SCTP"]))
    if isinstance(number, int):
        errors += [invalid_value(f"{path}.{f}", v, "must be between 1 and 65535, inclusive")
                   for f, v in (("port", number), ("endPort", end)) if v is not None and not 1 <= v <= 65535]
        if end is not None and end < number:
            errors.append(invalid_value(f"{path}.endPort", number, "must be greater than or equal to `port`"))
    elif isinstance(number, str):
        errors += [invalid_value(f"{path}.port", number, m) for m in port_name_errors(number)]
        if end is not None:
            errors.append(invalid_value(f"{path}.endPort", end, "may not be specified when `port` is non-numeric"))
    elif end is not None:
        errors.append(invalid_value(f"{path}.endPort", end, "may not be specified when `port` is not specified"))
    return errors


def parse_cidr(text):
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def validate_ip_block(block, path):
    if not block.get("cidr"):
        return [required(f"{path}.cidr")]
    cidr = parse_cidr(block["cidr"])
    if cidr is None:
        detail = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
        return [invalid_value(f"{path}.cidr", block["cidr"], detail)]
    errors = []
    for i, text in enumerate(block.get("except") or []):
        excluded = parse_cidr(text)
        strict_subset = excluded is not None and excluded.version == cidr.version and excluded != cidr
        if not strict_subset or not excluded.subnet_of(cidr):
            errors.append(invalid_value(f"{path}.except[{i}]", text, "must be a strict subset of `cidr`"))
    return errors


def validate_peer(peer, path):
    errors = []
    for field in ("podSelector", "namespaceSelector"):
        if peer.get(field) is not None:
            errors += validate_selector(peer[field], f"{path}.{field}")
    if peer.get("ipBlock") is not None:
        errors += validate_ip_block(peer["ipBlock"], f"{path}.ipBlock")
    present = [f for f in ("podSelector", "namespaceSelector", "ipBlock") if peer.get(f) is not None]
    if not present:
        errors.append(required(path, "must specify a peer"))
    elif len(present) > 1 and "ipBlock" in present:
        errors.append(field_error("Forbidden", path, detail="may not specify both ipBlock and another peer"))
    return errors


def validate_rules(spec, direction, peers):
    errors = []
    for i, rule in enumerate(spec.get(direction) or []):
        path, rule = f"spec.{direction}[{i}]", rule or {}
        for j, port in enumerate(rule.get("ports") or []):
            errors += validate_port(port or {}, f"{path}.ports[{j}]")
        for j, peer in enumerate(rule.get(peers) or []):
            errors += validate_peer(peer or {}, f"{path}.{peers}[{j}]")
    return errors


def validate_network_policy(policy):
    spec = policy.get("spec") or {}
    errors = validate_metadata(policy["metadata"])
    errors += validate_selector(spec.get("podSelector") or {}, "spec.podSelector")
    errors += validate_rules(spec, "ingress", "from") + validate_rules(spec, "egress", "to")
    types = spec.get("policyTypes") or []
    if len(types) > 2:
        return errors + [invalid_value("spec.policyTypes", types, "may not specify more than two policyTypes")]
    return errors + [not_supported(f"spec.policyTypes[{i}]", t, ["Ingress", "Egress"])
                     for i, t in enumerate(types) if t not in ("Ingress", "Egress")]


def default_network_policy(policy):
    """SetDefaults_NetworkPolicy: protocol TCP, and policyTypes from the rules present."""
    spec = policy.setdefault("spec", {}) or {}
    for rule in (spec.get("ingress") or []) + (spec.get("egress") or []):
        for port in (rule or {}).get("ports") or []:
            if port is not None:
                port.setdefault("protocol", "TCP")
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
    policy["spec"] = spec


def length_error(field, value, limit):
    too_long = len(value.encode()) > limit
    return [invalid_value(field, "", f"can have at most {limit} characters")] if too_long else []


def validate_event(event, namespace):
    """ValidateEventCreate for events.k8s.io/v1, plus: regarding must be present."""
    regarding = event.get("regarding")
    errors = [] if regarding else [required("regarding")]
    regarding_ns = (regarding or {}).get("namespace") or ""
    if (regarding_ns and regarding_ns != namespace) or (not regarding_ns and namespace != "default"):
        errors.append(invalid_value("involvedObject.namespace", regarding_ns, "does not match event.namespace"))
    errors += validate_metadata(event["metadata"])
    if not event.get("eventTime"):
        errors.append(required("eventTime"))
    if event.get("type") not in ("Normal", "Warning"):
        errors.append(invalid_value("type", "", f"has invalid value: {event.get('type') or ''}"))
    controller = event.get("reportingController") or ""
    errors += [required("reportingController")] if not controller else [
        invalid_value("reportingController", controller, m) for m in qualified_name_errors(controller)]
    for field in ("reportingInstance", "action", "reason"):
        value = event.get(field) or ""
        errors += [required(field)] if not value else length_error(field, value, 128)
    return errors + length_error("note", event.get("note") or "", 1024)


# ---------------------------------------------------------------------------------------------------
# Updates: what happens to a patched pod or node before it is stored


NAMESPACE_MISMATCH = "the namespace of the provided object does not match the namespace sent on the request"
OBJECT_MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"


def checked_update(resource, current, patched):
    """The patched object as it would be stored, or the error kube-apiserver answers with."""
    check_decodes(current["kind"], patched)
    check_identity(resource, current["metadata"], patched)
    keep_system_fields(current, patched)
    old_uid, uid = current["metadata"]["uid"], patched["metadata"]["uid"]
    errors = [invalid_value("metadata.uid", uid, "field is immutable")] if uid != old_uid else []
    errors += validate_node_update(patched) if current["kind"] == "Node" else validate_pod_update(current, patched)
    if errors:
        raise invalid(current["kind"], "", current["metadata"]["name"], errors)
    return patched


def check_decodes(kind, patched):
    """The patched JSON must decode into the typed object again, strictly."""
    if not isinstance(patched, dict):
        raise patch_invalid(patched, f"json: cannot unmarshal {json_type(patched)} into Go value of type {kind}")
    errors = decode_node(patched) if kind == "Node" else pod_decode_errors(patched)
    if errors:
        raise patch_invalid(patched, errors[0])


def check_identity(resource, old_meta, patched):
    """Same name and namespace as the URL; a resourceVersion, if the patch leaves one, must be the current one."""
    meta = patched.get("metadata") or {}
    patched["metadata"] = meta
    if meta.get("name") != old_meta["name"]:
        raise bad_request(f"the name of the object ({meta.get('name') or ''}) does not match "
                          f"the name on the URL ({old_meta['name']})")
    if meta.get("namespace") != old_meta.get("namespace"):
        raise bad_request(NAMESPACE_MISMATCH)
    if meta.get("resourceVersion") not in (None, "", old_meta["resourceVersion"]):
        raise conflict(resource, old_meta["name"], OBJECT_MODIFIED)


def keep_system_fields(current, patched):
    """resourceVersion and creationTimestamp are the server's; status cannot change through the main resource."""
    meta, old_meta = patched["metadata"], current["metadata"]
    meta.update(resourceVersion=old_meta["resourceVersion"], creationTimestamp=old_meta["creationTimestamp"])
    meta.setdefault("uid", old_meta["uid"])
    patched.pop("status", None)
    if "status" in current:
        patched["status"] = copy.deepcopy(current["status"])


def node_schema_problems(node):
    """node-v1.json for the node, and taint.json for each taint."""
    found = decode_against("node-v1.json", "Node", node)
    if not found.type_errors:
        for i, taint in enumerate(taints_of(node)):
            each = decode_against("taint.json", "Node", taint or {}, ["spec", "taints", i])
            found.type_errors += each.type_errors
            found.unknown_fields += each.unknown_fields
            found.missing += each.missing
    return found


def decode_node(node):
    found = node_schema_problems(node)
    if found.type_errors:
        return found.type_errors
    return [strict_error(list(dict.fromkeys(found.unknown_fields)))] if found.unknown_fields else []


def validate_node_update(node):
    """ValidateNode's rules first; a field the schemas require but those rules miss comes after."""
    return validate_node(node) + validate_annotations(node["metadata"]) or node_schema_problems(node).missing


ANNOTATIONS_MAX_BYTES = 256 * 1024


def validate_annotations(meta):
    """apimachinery's ValidateAnnotations: each key a qualified name (checked lowercased), keys and values
    together at most 256 KiB."""
    annotations = meta.get("annotations") or {}
    errors = [invalid_value("metadata.annotations", key, m) for key in annotations
              for m in qualified_name_errors(key.lower())]
    size = sum(len(k) + len(v or "") for k, v in annotations.items())
    if size > ANNOTATIONS_MAX_BYTES:
        errors.append(field_error("TooLong", "metadata.annotations", detail=f"may not be more than "
                                  f"{ANNOTATIONS_MAX_BYTES} bytes"))
    return errors


# ---------------------------------------------------------------------------------------------------
# DeleteOptions and dryRun (k8s.io/apiserver/pkg/endpoints/handlers/delete.go)

DELETE_OPTION_TYPES = {"apiVersion": str, "kind": str, "gracePeriodSeconds": int, "preconditions": dict,
                       "propagationPolicy": str, "dryRun": list, "orphanDependents": bool}
PRECONDITION_FIELDS = ("preconditions.uid", "preconditions.resourceVersion")
PROPAGATION_POLICIES = ["Foreground", "Background", "Orphan"]


def dry_run_errors(values):
    return [not_supported("dryRun", values, ["All"])] if any(value != "All" for value in values or []) else []


def dry_run(values, options_kind):
    """True for dryRun=All; 422 for any other value, as ValidateDryRun answers."""
    errors = dry_run_errors(values)
    if errors:
        raise invalid_options(options_kind, errors)
    return bool(values)


def options_from_body(body):
    options = parse_json(body)
    if not isinstance(options, dict):
        raise bad_request("json: cannot unmarshal into Go value of type v1.DeleteOptions")
    preconditions = options.get("preconditions") or {}
    fields = [*options, *(f"preconditions.{k}" for k in preconditions if isinstance(preconditions, dict))]
    unknown = [f'unknown field "{f}"' for f in fields if f not in (*DELETE_OPTION_TYPES, *PRECONDITION_FIELDS)]
    if unknown:
        raise bad_request(strict_error(unknown))
    for key, wanted in DELETE_OPTION_TYPES.items():
        value = options.get(key)
        if value is not None and (not isinstance(value, wanted) or (wanted is int and isinstance(value, bool))):
            raise bad_request(f"json: cannot unmarshal {json_type(value)} into Go struct field "
                              f"DeleteOptions.{key}")
    if not all(isinstance(v, (str, type(None))) for v in preconditions.values()):
        raise bad_request("json: cannot unmarshal into Go struct field DeleteOptions.preconditions of type string")
    if options.get("kind", "DeleteOptions") != "DeleteOptions":
        raise bad_request("decoded object cannot be converted to DeleteOptions")
    return options


def options_from_query(query):
    options = {"dryRun": query.get("dryRun")}
    booleans = {"true": True, "false": False}
    for key, convert in (("gracePeriodSeconds", int), ("orphanDependents", booleans.__getitem__)):
        if key in query:
            try:
                options[key] = convert(query[key][0])
            except (ValueError, KeyError):
                raise bad_request(f'invalid value for {key}: "{query[key][0]}"') from None
    if "propagationPolicy" in query:
        options["propagationPolicy"] = query["propagationPolicy"][0]
    return options


def delete_options(req):
    """DeleteOptions come from the body when there is one, and then the query string is ignored."""
    if req.body:
        check_json_content_type(req.headers)
    options = options_from_body(req.body) if req.body else options_from_query(req.query)
    errors = []
    if options.get("orphanDependents") is not None and options.get("propagationPolicy") is not None:
        errors.append(invalid_value("propagationPolicy", options["propagationPolicy"],
                                    "orphanDependents and deletionPropagation cannot be both set"))
    if options.get("propagationPolicy") not in (None, *PROPAGATION_POLICIES):
        policy = options["propagationPolicy"]
        errors.append(not_supported("propagationPolicy", policy, [*PROPAGATION_POLICIES, "nil"]))
    errors += dry_run_errors(options.get("dryRun"))
    if errors:
        raise invalid_options("DeleteOptions", errors)
    options["dryRun"] = bool(options.get("dryRun"))
    return options


def check_preconditions(pod, options, kind="Pod", group=""):
    """rest.BeforeDelete checks the preconditions first, naming the kind (Pod), not the resource."""
    meta, wanted = pod["metadata"], options.get("preconditions") or {}
    name = meta["name"]
    uid, version = wanted.get("uid"), wanted.get("resourceVersion")
    if uid is not None and uid != meta["uid"]:
        raise conflict(kind, name, f"the UID in the precondition ({uid}) does not match the UID in record "
                                   f"({meta['uid']}). The object might have been deleted and then recreated", group)
    if version is not None and version != meta["resourceVersion"]:
        raise conflict(kind, name, f"the ResourceVersion in the precondition ({version}) does not match the "
                                   f"ResourceVersion in record ({meta['resourceVersion']}). "
                                   "The object might have been modified", group)


def grace_period(pod, options):
    """The pod strategy's CheckGracefulDelete: the option, else the pod's own, and 0 if it never ran."""
    period = options.get("gracePeriodSeconds")
    if period is None:
        period = pod["spec"].get("terminationGracePeriodSeconds") or 0
    if not pod["spec"].get("nodeName") or pod.get("status", {}).get("phase") in ("Failed", "Succeeded"):
        period = 0
    return 1 if period < 0 else period


SELECTOR_REQUIREMENT = re.compile(r"\s*(?:(!)\s*(?P<absent>[^\s,=!()]+)|(?P<key>[^\s,=!()]+)\s*"
                                  r"(?:(?P<op>==|=|!=)\s*(?P<value>[^\s,=!()]*)|\s+(?P<set>in|notin)\s*"
                                  r"\((?P<values>[^()]*)\))?)\s*(?:,|$)")


def parse_label_selector(text):
    """labels.Parse: requirements joined by ',' (key, !key, key=value, key==value, key!=value, key in (a,b),
    key notin (a,b)), each key a qualified name and each value a label value; 400 BadRequest otherwise.
    Returns a predicate on a labels dict (an empty selector selects everything)."""
    tests, pos = [], 0
    while pos < len(text):
        match = SELECTOR_REQUIREMENT.match(text, pos)
        if match is None or match.end() == pos:
            raise bad_request(f"unable to parse requirement: found '{text[pos:pos + 20]}', expected: identifier")
        pos = match.end()
        key = match.group("absent") or match.group("key")
        values = [v.strip() for v in (match.group("values") or match.group("value") or "").split(",")]
        bad = qualified_name_errors(key) + [m for v in values for m in label_value_errors(v)]
        if bad:
            raise bad_request(f"unable to parse requirement: {bad[0]}")
        tests.append(selector_requirement(match, key, values))
    return lambda labels: all(test(labels or {}) for test in tests)


def selector_requirement(match, key, values):
    op = "!" if match.group("absent") else match.group("op") or match.group("set") or "exists"
    return {"!": lambda labels: key not in labels,
            "exists": lambda labels: key in labels,
            "=": lambda labels: labels.get(key) == values[0],
            "==": lambda labels: labels.get(key) == values[0],
            "!=": lambda labels: labels.get(key) != values[0],
            "in": lambda labels: labels.get(key) in values,
            "notin": lambda labels: labels.get(key) not in values}[op]


def list_page(objects, query, kind, api_version, version, page_max=0):
    """A list as kube-apiserver answers it: objects (key -> object, keys in etcd order) selected by the query's
    labelSelector, paged by limit and continue (the last key, base64), items without kind and apiVersion.
    page_max > 0: a page with a limit holds at most that many items, as a real server may answer fewer than
    the limit with a continue token (its storage pages under a selector)."""
    selects = parse_label_selector((query.get("labelSelector") or [""])[0])
    limit, start = list_paging(query)
    limit = min(limit, page_max) if limit and page_max else limit
    keys = sorted(k for k, o in objects.items() if k > start and selects(o["metadata"].get("labels")))
    page = keys[:limit] if limit else keys
    items = [{k: v for k, v in copy.deepcopy(objects[key]).items() if k not in ("kind", "apiVersion")}
             for key in page]
    meta = {"resourceVersion": version}
    if len(page) < len(keys):
        meta.update({"continue": base64.b64encode(page[-1].encode()).decode(), "remainingItemCount":
                     len(keys) - len(page)})
    return {"kind": kind, "apiVersion": api_version, "metadata": meta, "items": items}


def list_paging(query):
    """(limit, the last name already listed) from a list's query; limit 0 is no limit, as for the real one.
    The continue token here is the last name, base64: opaque to clients, as the real one is."""
    try:
        limit = int((query.get("limit") or ["0"])[0])
        start = base64.b64decode((query.get("continue") or [""])[0], validate=True).decode()
    except ValueError:
        raise bad_request("invalid limit or continue token") from None
    return max(limit, 0), start


# ---------------------------------------------------------------------------------------------------
# Certificates


def timestamp(delta=0):
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delta)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_certificate(common_name, key, issuer=None, issuer_key=None, usage=None, sans=()):
    """A CA certificate when issuer is None, else a leaf signed by it for the given extended key usage."""
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    is_ca = issuer is None
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(subject if is_ca else issuer.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=is_ca, crl_sign=is_ca,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key((issuer_key or key).public_key()),
                              critical=False))
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def b64(data):
    return base64.b64encode(data).decode()


def write_file(directory, name, data, mode=0o644):
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(path, mode)
    return path


# ---------------------------------------------------------------------------------------------------
# Requests and faults


@dataclass
class Request:
    """One request as received. headers has lower-case names; status is None when the connection was dropped."""
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes
    json: object
    authenticated: bool
    auth: object  # "token", "cert" or None
    status: object = None


@dataclass
class Fault:
    method: object
    path: object
    status: object
    retry_after: object
    times: object
    delay: float
    drop: bool
    until: object = None  # time.monotonic() after which the fault no longer applies, or None
    message: object = None  # the Status message instead of the usual one for the status

    def expired(self, now):
        return self.until is not None and now >= self.until

    def matches(self, req):
        return ((self.method is None or self.method == req.method)
                and (self.path is None or re.search(self.path, req.path) is not None))


FAULT_REASONS = {
    400: ("BadRequest", "bad request"),
    403: ("Forbidden", "forbidden"),
    409: ("Conflict", OBJECT_MODIFIED),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected fault"),
    502: ("InternalError", "Internal error occurred: injected fault"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "the server was unable to return a response in the time allotted, "
                     "but may still be processing the request"),
}


def fault_answer(fault):
    phrase = HTTPStatus(fault.status).phrase
    reason, message = FAULT_REASONS.get(fault.status, (phrase.replace(" ", ""), phrase))
    message = message if fault.message is None else fault.message
    details = {"retryAfterSeconds": fault.retry_after} if fault.retry_after is not None else None
    headers = [("Retry-After", str(fault.retry_after))] if fault.retry_after is not None else []
    return fault.status, status_object(fault.status, reason, message, details), headers


# ---------------------------------------------------------------------------------------------------
# Pod logs (the kubelet's answer through the API server) and ConfigMaps (ValidateConfigMap)

CONFIGMAP_MAX_BYTES = 1024 * 1024  # core.MaxSecretSize: the values of data and binaryData together
ANNOTATIONS_MAX_BYTES = 256 * 1024  # TotalAnnotationSizeLimitB: keys and values together
CONFIGMAP_KEY = re.compile(r"[-._a-zA-Z0-9]+")


def rfc3339_nano(moment):
    """Go's time.RFC3339Nano as the kubelet writes it before each line: trailing zeros of the fraction cut."""
    fraction = f"{moment.microsecond * 1000:09d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def log_options(query):
    """tailLines, limitBytes, timestamps and previous from the query, validated as ValidatePodLogOptions."""
    def integer(name):
        value = query.get(name, [None])[0]
        try:
            return None if value is None else int(value)
        except ValueError:
            raise bad_request(f'strconv.ParseInt: parsing "{value}": invalid syntax') from None
    tail, limit = integer("tailLines"), integer("limitBytes")
    errors = []
    if tail is not None and tail < 0:
        errors.append(invalid_value("tailLines", tail, "must be greater than or equal to 0"))
    if limit is not None and limit < 1:
        errors.append(invalid_value("limitBytes", limit, "must be greater than 0"))
    flag = lambda name: query.get(name, ["false"])[0] in ("true", "1")
    return tail, limit, flag("timestamps"), flag("previous"), errors


def log_container(pod, name, query):
    """The container a log request is about, or 400 as the API server words it."""
    spec = pod["spec"]
    names = [c["name"] for kind in ("initContainers", "containers", "ephemeralContainers")
             for c in spec.get(kind) or []]
    container = query.get("container", [""])[0]
    if not container:
        if len(spec["containers"]) == 1:
            return spec["containers"][0]["name"]
        choices = " ".join(c["name"] for c in spec["containers"])
        raise bad_request(f"a container name must be specified for pod {name}, choose one of: [{choices}]")
    if container not in names:
        raise bad_request(f"container {container} is not valid for pod {name}")
    return container


def log_text(lines, tail, limit, timestamps):
    """The lines ((moment, bytes) pairs) as the kubelet sends them: the last `tail`, each with its timestamp
    and a space when asked, then the first `limit` bytes of that."""
    chosen = lines if tail is None else lines[max(0, len(lines) - tail):] if tail else []
    text = b"".join((rfc3339_nano(m).encode() + b" " if timestamps else b"") + line + b"\n" for m, line in chosen)
    return text if limit is None else text[:limit]


def configmap_errors(cm):
    """ValidateConfigMap: metadata, keys of data and binaryData, no key in both, the total size."""
    errors = validate_metadata(cm["metadata"])
    annotations = cm["metadata"].get("annotations") or {}
    if sum(len(k) + len((v or "").encode()) for k, v in annotations.items()) > ANNOTATIONS_MAX_BYTES:
        errors.append(field_error("TooLong", "metadata.annotations", OMIT,
                                  f"may not be more than {ANNOTATIONS_MAX_BYTES} bytes"))
    data, binary = cm.get("data") or {}, cm.get("binaryData") or {}
    total = 0
    for bag, values in (("data", data), ("binaryData", binary)):
        for key, value in values.items():
            if not CONFIGMAP_KEY.fullmatch(key) or len(key) > 253 or key in (".", "..") or key.startswith(".."):
                errors.append(invalid_value(f"{bag}[{key}]", key, "a valid config key must consist of alphanumeric "
                                            "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
                                            "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"))
            if bag == "binaryData" and key in data:
                errors.append(invalid_value(f"binaryData[{key}]", key, "duplicate of key present in data"))
            total += len((value or "").encode()) if bag == "data" else len(base64.b64decode(value or ""))
    if total > CONFIGMAP_MAX_BYTES:
        errors.append(field_error("TooLong", "", OMIT, f"may not be more than {CONFIGMAP_MAX_BYTES} bytes"))
    return errors

# Workloads, PodDisruptionBudgets and the Eviction subresource (pkg/registry/core/pod/storage/eviction.go,
# pkg/controller/disruption). Deployments, ReplicaSets, StatefulSets and DaemonSets are read, never written by
# playbookd: they are stored as seeded and their status is derived from their pods when read (a controller
# that is always up to date; none of them replaces a deleted pod). A PodDisruptionBudget's status is computed
# at each eviction the way the disruption controller computes it (currentHealthy: selected pods that are
# Ready and not being deleted; desiredHealthy from minAvailable or maxUnavailable, percentages rounded up on
# the expected count), simplified: never stale (no observedGeneration lag), no disruptedPods bookkeeping
# (an evicted pod is removed at once), no unhealthyPodEvictionPolicy (the default IfHealthyBudget).

APPS_RESOURCES = {"deployments": "Deployment", "replicasets": "ReplicaSet", "statefulsets": "StatefulSet",
                  "daemonsets": "DaemonSet"}
EVICTION_BLOCKED = "Cannot evict pod as it would violate the pod's disruption budget."
MULTIPLE_PDBS = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."


def pod_is_ready(pod):
    """podutil.IsPodReady: the Ready condition is True."""
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def controller_ref(obj):
    return next((r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")), None)


def scaled(value, total):
    """intstr.GetScaledValueFromIntOrPercent(value, total, roundUp=true)."""
    if isinstance(value, str) and value.endswith("%"):
        return -(-int(value[:-1]) * total // 100)
    return int(value)


def non_zero(**fields):
    """Status fields as the API serialises them: omitempty drops the zeros."""
    return {k: v for k, v in fields.items() if v}


class Workloads:
    """FakeKube's apps/v1 workloads, PodDisruptionBudgets and the pods/eviction subresource (mixed in)."""

    # -- seeding ---------------------------------------------------------------------------------

    def _add_app(self, resource, namespace, name, spec, owner=None, labels=None):
        with self._lock:
            meta = self._new_meta(name, namespace, labels=labels)
            meta["generation"] = 1
            if owner is not None:
                meta["ownerReferences"] = [owner_reference(owner)]
            obj = {"kind": APPS_RESOURCES[resource], "apiVersion": "apps/v1", "metadata": meta, "spec": spec}
            self._apps[(resource, namespace, name)] = obj
            return copy.deepcopy(obj)

    def recreate_app(self, namespace, resource, name):
        """The apps/v1 object deleted and made again under its name: a new uid, while what it owned (its
        ReplicaSets, its pods) still names the old one until the garbage collector comes."""
        with self._lock:
            self._apps[(resource, namespace, name)]["metadata"]["uid"] = str(uuid.uuid4())

    def add_owned_pod(self, namespace, name, owner=None, labels=None, ready=True, node="node-1"):
        """A Running pod, Ready or not, controlled by owner (an object as returned by add_*), or standalone."""
        self.add_pod(namespace, name, node=node, labels=labels)
        with self._lock:
            pod = self._pods[(namespace, name)]
            if owner is not None:
                pod["metadata"]["ownerReferences"] = [owner_reference(owner)]
            pod["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
            return copy.deepcopy(pod)

    def set_pod_labels(self, namespace, name, labels):
        with self._lock:
            self._pods[(namespace, name)]["metadata"]["labels"] = dict(labels)

    def set_pod_ready(self, namespace, name, ready):
        with self._lock:
            self._pods[(namespace, name)]["status"]["conditions"] = [
                {"type": "Ready", "status": "True" if ready else "False"}]

    def add_replicaset(self, namespace, name, replicas, ready=None, labels=None, owner=None):
        """A ReplicaSet with `replicas` pods NAME-0..., the first `ready` of them Ready (default all)."""
        labels = labels or {"app": name}
        rs = self._add_app("replicasets", namespace, name, {"replicas": replicas, "selector": {"matchLabels": labels},
                                                          "template": {"metadata": {"labels": labels}}}, owner,
                          labels)  # a Deployment's ReplicaSet carries its pod template's labels
        ready = replicas if ready is None else ready
        return [self.add_owned_pod(namespace, f"{name}-{i}", rs, labels, i < ready)["metadata"]["name"]
                for i in range(replicas)]

    def add_deployment(self, namespace, name, replicas, ready=None, labels=None, selector=None):
        """A Deployment, its ReplicaSet NAME-5d8c7b9f4 and its pods (see add_replicaset); the pod names. selector:
        the Deployment's spec.selector (default: matchLabels, the labels)."""
        labels = labels or {"app": name}
        spec = {"replicas": replicas, "selector": selector or {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}}}
        deployment = self._add_app("deployments", namespace, name, spec)
        return self.add_replicaset(namespace, f"{name}-5d8c7b9f4", replicas, ready, labels, deployment)

    def add_statefulset(self, namespace, name, replicas, ready=None, labels=None):
        labels = labels or {"app": name}
        sts = self._add_app("statefulsets", namespace, name, {"replicas": replicas, "serviceName": name,
                                                             "selector": {"matchLabels": labels}})
        ready = replicas if ready is None else ready
        return [self.add_owned_pod(namespace, f"{name}-{i}", sts, labels, i < ready)["metadata"]["name"]
                for i in range(replicas)]

    def add_daemonset(self, namespace, name, nodes, ready=None, labels=None):
        """A DaemonSet with one pod NAME-NODE per node (desiredNumberScheduled = len(nodes))."""
        labels = labels or {"app": name}
        ds = self._add_app("daemonsets", namespace, name, {"selector": {"matchLabels": labels}})
        with self._lock:
            self._apps[("daemonsets", namespace, name)]["desired"] = len(nodes)
        ready = len(nodes) if ready is None else ready
        return [self.add_owned_pod(namespace, f"{name}-{node}", ds, labels, i < ready, node)["metadata"]["name"]
                for i, node in enumerate(nodes)]

    def add_pdb(self, namespace, name, selector, min_available=None, max_unavailable=None):
        """A policy/v1 PodDisruptionBudget (one of min_available, max_unavailable: an int or "N%")."""
        if (min_available is None) == (max_unavailable is None):
            raise ValueError("a PodDisruptionBudget takes one of minAvailable and maxUnavailable")
        spec = {"selector": selector}
        spec.update({"minAvailable": min_available} if min_available is not None
                    else {"maxUnavailable": max_unavailable})
        with self._lock:
            self._pdbs[(namespace, name)] = {"kind": "PodDisruptionBudget", "apiVersion": "policy/v1",
                                             "metadata": {**self._new_meta(name, namespace), "generation": 1},
                                             "spec": spec}

    def pdb_status(self, namespace, name):
        with self._lock:
            return self._budget(self._pdbs[(namespace, name)])

    # -- status, as the controllers would have written it --------------------------------------------

    def _owned_pods(self, owner):
        uid = owner["metadata"]["uid"]
        return [p for p in self._pods.values() if (controller_ref(p) or {}).get("uid") == uid]

    def _owned_apps(self, owner):
        uid = owner["metadata"]["uid"]
        return [a for a in self._apps.values() if (controller_ref(a) or {}).get("uid") == uid]

    def _app_status(self, obj):
        """The status the controller writes; a frozen one (freeze_status) as it was frozen. The ReplicaSet
        controller counts active pods only (controller.FilterActivePods: not terminating, not finished)."""
        kind, meta = obj["kind"], obj["metadata"]
        if "frozen_status" in obj:
            return copy.deepcopy(obj["frozen_status"])
        pods = [p for rs in self._owned_apps(obj) for p in self._owned_pods(rs)] if kind == "Deployment" \
            else self._owned_pods(obj)
        if kind in ("Deployment", "ReplicaSet"):
            pods = [p for p in pods if not p["metadata"].get("deletionTimestamp")
                    and p["status"].get("phase") not in ("Succeeded", "Failed")]
        total, ready = len(pods), sum(1 for p in pods if pod_is_ready(p))
        if kind == "DaemonSet":
            return {"currentNumberScheduled": total, "numberMisscheduled": 0,
                    "desiredNumberScheduled": obj["desired"], "numberReady": ready,
                    **non_zero(observedGeneration=meta["generation"], updatedNumberScheduled=total,
                               numberAvailable=ready, numberUnavailable=obj["desired"] - ready)}
        status = non_zero(observedGeneration=meta["generation"], replicas=total, readyReplicas=ready,
                          availableReplicas=ready)
        if kind == "Deployment":
            status.update(non_zero(updatedReplicas=total, unavailableReplicas=obj["spec"]["replicas"] - ready))
        elif kind == "ReplicaSet":
            status.update(non_zero(fullyLabeledReplicas=total), replicas=total)
        elif kind == "StatefulSet":
            status.update(non_zero(currentReplicas=total, updatedReplicas=total), replicas=total)
        return status

    def _app_answer(self, obj):
        """The object as the API answers it: the fake's own keys out, the status in."""
        answer = {k: v for k, v in copy.deepcopy(obj).items() if k not in ("desired", "frozen_status")}
        answer["status"] = self._app_status(obj)
        return answer

    def _get_app(self, req, namespace, resource, name):
        with self._lock:
            obj = self._lookup(self._apps, (resource, namespace, name), resource, name, "apps")
            return 200, self._app_answer(obj)

    def _get_apps(self, req, namespace, resource):
        """GET /apis/apps/v1/namespaces/NS/RESOURCE: a DeploymentList, ReplicaSetList... (list_page)."""
        with self._lock:
            objects = {n: self._app_answer(o) for (r, ns, n), o in self._apps.items()
                       if (r, ns) == (resource, namespace)}
            return 200, list_page(objects, req.query, APPS_RESOURCES[resource] + "List", "apps/v1", str(self._version),
                                  self._page_max)

    def app(self, namespace, resource, name):
        """An apps/v1 object as a GET answers it (status included), e.g. to own another ReplicaSet."""
        with self._lock:
            return self._app_answer(self._apps[(resource, namespace, name)])

    def freeze_status(self, namespace, resource, name):
        """From now on the object's status stays as it is now, whatever happens to its pods: the controller's
        lag (it writes status a moment after it sees a pod change) held open for a test."""
        with self._lock:
            obj = self._apps[(resource, namespace, name)]
            obj["frozen_status"] = self._app_status(obj)

    def _expected_count(self, pdb, pods):
        """The disruption controller's expectedCount: the pods for an integer minAvailable, else the sum of the
        scale of the pods' controllers (a ReplicaSet's Deployment; a DaemonSet's desiredNumberScheduled); None
        when a pod has no controller, where the real controller fails safe (no disruption allowed)."""
        if "minAvailable" in pdb["spec"] and not str(pdb["spec"]["minAvailable"]).endswith("%"):
            return len(pods)
        controllers = {}
        for pod in pods:
            ref = controller_ref(pod)
            owner = next((a for a in self._apps.values() if ref and a["metadata"]["uid"] == ref.get("uid")), None)
            if owner is None:
                return None
            up = controller_ref(owner)
            top = next((a for a in self._apps.values() if up and a["metadata"]["uid"] == up.get("uid")), owner)
            controllers[top["metadata"]["uid"]] = top
        return sum(c["desired"] if c["kind"] == "DaemonSet" else c["spec"]["replicas"] for c in controllers.values())

    def _budget(self, pdb):
        """(currentHealthy, desiredHealthy, disruptionsAllowed) of a PDB now."""
        namespace, spec = pdb["metadata"]["namespace"], pdb["spec"]
        pods = [p for (ns, _), p in self._pods.items()
                if ns == namespace and selector_matches(spec.get("selector"), p["metadata"].get("labels"))]
        current = sum(1 for p in pods if pod_is_ready(p) and not p["metadata"].get("deletionTimestamp"))
        expected = self._expected_count(pdb, pods)
        if expected is None:
            return current, current, 0
        if "minAvailable" in spec:
            desired = scaled(spec["minAvailable"], expected)
        else:
            desired = max(0, expected - scaled(spec["maxUnavailable"], expected))
        return current, desired, max(0, current - desired)

    # -- the pods/eviction subresource --------------------------------------------------------------

    def _post_eviction(self, req, namespace, name):
        check_json_content_type(req.headers)
        query_dry = dry_run(req.query.get("dryRun"), "CreateOptions")
        eviction, missing = decode_created(req.body, "Eviction", "policy/v1", "eviction-policy-v1.json")
        meta, options = eviction["metadata"], eviction.get("deleteOptions") or {}
        if (meta.get("namespace") or namespace) != namespace:
            raise bad_request(NAMESPACE_MISMATCH)
        if meta.get("name") != name:
            raise bad_request("name in URL does not match name in Eviction object")
        errors = dry_run_errors(options.get("dryRun"))
        if errors:
            raise invalid_options("DeleteOptions", errors)
        if options.get("dryRun") and query_dry and options["dryRun"] != req.query["dryRun"]:
            raise ApiError(500, "InternalError", "Internal error occurred: Non-matching dry-run options")
        dry = query_dry or bool(options.get("dryRun"))
        with self._lock:
            pod = self._lookup(self._pods, (namespace, name), "pods", name)
            ignore_budget = (pod["status"].get("phase") in ("Succeeded", "Failed", "Pending")
                             or pod["metadata"].get("deletionTimestamp"))
            if not ignore_budget:
                refusal = self._budget_refusal(pod)
                if refusal is not None:
                    return refusal
            check_preconditions(pod, options)
            if not dry:
                self._delete_stored_pod(pod, grace_period(pod, options))
            return 201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def _budget_refusal(self, pod):
        """None when the pod's PodDisruptionBudget (if any) allows the eviction, else the answer."""
        namespace, labels = pod["metadata"]["namespace"], pod["metadata"].get("labels")
        pdbs = [p for (ns, _), p in sorted(self._pdbs.items())
                if ns == namespace and p["spec"].get("selector") and selector_matches(p["spec"]["selector"], labels)]
        if len(pdbs) > 1:
            return 500, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                         "message": MULTIPLE_PDBS, "code": 500}
        if not pdbs:
            return None
        current, desired, allowed = self._budget(pdbs[0])
        if not pod_is_ready(pod) and current >= desired > 0:
            return None  # an unready pod does not count as healthy: evicting it costs the budget nothing
        if allowed > 0:
            return None
        cause = {"reason": "DisruptionBudget", "message": f"The disruption budget {pdbs[0]['metadata']['name']} "
                                                          f"needs {desired} healthy pods and has {current} currently"}
        raise ApiError(429, "TooManyRequests", EVICTION_BLOCKED, {"causes": [cause]})


def owner_reference(owner):
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


# ---------------------------------------------------------------------------------------------------
# coordination.k8s.io/v1 Leases (pkg/registry/coordination/lease): create (409 AlreadyExists), get, update
# (PUT; a resourceVersion is required, 409 Conflict when stale; AllowCreateOnUpdate: a PUT to a missing Lease
# creates it), delete with preconditions (409 when the uid or resourceVersion differs; answered with a Status),
# dryRun=All on each, bodies decoded against lease-coordination-v1.json (MicroTime times with 6 fractional
# digits) and validated as ValidateLeaseSpec does. The namespace must exist (NamespaceLifecycle).

LEASE_NAMES = ("Lease", "leases", "coordination.k8s.io")
LEASE_MICROTIMES = ("spec.acquireTime", "spec.renewTime")


def lease_errors(lease):
    spec, errors = lease.get("spec") or {}, validate_metadata(lease["metadata"])
    if spec.get("leaseDurationSeconds") is not None and spec["leaseDurationSeconds"] <= 0:
        errors.append(invalid_value("spec.leaseDurationSeconds", spec["leaseDurationSeconds"],
                                    "must be greater than 0"))
    if spec.get("leaseTransitions") is not None and spec["leaseTransitions"] < 0:
        errors.append(invalid_value("spec.leaseTransitions", spec["leaseTransitions"],
                                    "must be greater than or equal to 0"))
    return errors


class Leases:
    """FakeKube's Leases (mixed in): seeding, inspection and the four verbs."""

    def add_lease(self, namespace, name, holder, renew_time, duration=30):
        """A Lease as another holder left it (renew_time: a MicroTime string, or None for none)."""
        spec = {"holderIdentity": holder, "leaseDurationSeconds": duration, "acquireTime": renew_time,
                "renewTime": renew_time}
        with self._lock:
            lease = {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                     "metadata": self._new_meta(name, namespace),
                     "spec": {k: v for k, v in spec.items() if v is not None}}
            self._leases[(namespace, name)] = lease
            return copy.deepcopy(lease)

    def lease(self, namespace, name):
        return self._copy_of(self._leases, (namespace, name))

    def leases(self):
        with self._lock:
            return copy.deepcopy(list(self._leases.values()))

    def remove_lease(self, namespace, name):
        """Deletes a Lease as its holder would on release."""
        with self._lock:
            self._leases.pop((namespace, name), None)

    def _decode_lease(self, req, namespace):
        check_json_content_type(req.headers)
        lease, missing = decode_created(req.body, "Lease", "coordination.k8s.io/v1", "lease-coordination-v1.json",
                                        LEASE_MICROTIMES)
        with self._lock:
            if namespace not in self._namespaces:
                raise not_found("namespaces", namespace)
        return lease, missing

    def _post_leases(self, req, namespace):
        dry = dry_run(req.query.get("dryRun"), "CreateOptions")
        lease, missing = self._decode_lease(req, namespace)
        return self._create(lease, namespace, dry, missing, lease_errors, self._leases, LEASE_NAMES)

    def _get_lease(self, req, namespace, name):
        with self._lock:
            return 200, copy.deepcopy(self._lookup(self._leases, (namespace, name), "leases", name,
                                                   "coordination.k8s.io"))

    def _put_lease(self, req, namespace, name):
        dry = dry_run(req.query.get("dryRun"), "UpdateOptions")
        lease, missing = self._decode_lease(req, namespace)
        meta = lease["metadata"]
        if meta.get("name") != name:
            raise bad_request(f"the name of the object ({meta.get('name') or ''}) does not match the name on the "
                              f"URL ({name})")
        if meta.setdefault("namespace", namespace) != namespace:
            raise bad_request(NAMESPACE_MISMATCH)
        with self._lock:
            absent = (namespace, name) not in self._leases
        if absent:  # AllowCreateOnUpdate
            meta.pop("resourceVersion", None)
            return self._create(lease, namespace, dry, missing, lease_errors, self._leases, LEASE_NAMES)
        with self._lock:
            current = self._lookup(self._leases, (namespace, name), "leases", name, "coordination.k8s.io")
            if not meta.get("resourceVersion"):  # AllowUnconditionalUpdate is false for Leases
                unset = FieldError("metadata.resourceVersion", "FieldValueInvalid",
                                   "Invalid value: 0x0: must be specified for an update")
                raise invalid("Lease", "coordination.k8s.io", name, [unset])
            if meta["resourceVersion"] != current["metadata"]["resourceVersion"]:
                raise conflict("leases", name, OBJECT_MODIFIED, "coordination.k8s.io")
            old = current["metadata"]
            if meta.setdefault("uid", old["uid"]) != old["uid"]:
                raise invalid("Lease", "coordination.k8s.io", name,
                              [invalid_value("metadata.uid", meta["uid"], "field is immutable")])
            errors = lease_errors(lease)
            if errors or missing:
                raise invalid("Lease", "coordination.k8s.io", name, errors or missing)
            meta["creationTimestamp"] = old["creationTimestamp"]
            if not dry:
                meta["resourceVersion"] = self._bump()
                self._leases[(namespace, name)] = lease
            return 200, copy.deepcopy(lease)

    def _delete_lease(self, req, namespace, name):
        options = delete_options(req)
        with self._lock:
            lease = self._lookup(self._leases, (namespace, name), "leases", name, "coordination.k8s.io")
            check_preconditions(lease, options, "Lease", "coordination.k8s.io")
            if not options["dryRun"]:
                del self._leases[(namespace, name)]
            details = {"name": name, "group": "coordination.k8s.io", "kind": "leases", "uid": lease["metadata"]["uid"]}
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


# ---------------------------------------------------------------------------------------------------
# The server

ROUTES = [
    (re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)"), "pod"),
    (re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/eviction"), "eviction"),
    (re.compile(r"/apis/apps/v1/namespaces/([^/]+)/(deployments|replicasets|statefulsets|daemonsets)/([^/]+)"), "app"),
    (re.compile(r"/apis/apps/v1/namespaces/([^/]+)/(deployments|replicasets|statefulsets|daemonsets)"), "apps"),
    (re.compile(r"/api/v1/namespaces/([^/]+)/pods"), "pods"),
    (re.compile(r"/api/v1/nodes/([^/]+)"), "node"),
    (re.compile(r"/apis/networking\.k8s\.io/v1/namespaces/([^/]+)/networkpolicies/([^/]+)"), "policy"),
    (re.compile(r"/apis/networking\.k8s\.io/v1/namespaces/([^/]+)/networkpolicies"), "policies"),
    (re.compile(r"/apis/events\.k8s\.io/v1/namespaces/([^/]+)/events"), "events"),
    (re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log"), "pod_log"),
    (re.compile(r"/api/v1/namespaces/([^/]+)/configmaps"), "configmaps"),
    (re.compile(r"/api/v1/pods"), "all_pods"),
    (re.compile(r"/api/v1/nodes"), "nodes"),
    (re.compile(r"/apis/coordination\.k8s\.io/v1/namespaces/([^/]+)/leases/([^/]+)"), "lease"),
    (re.compile(r"/apis/coordination\.k8s\.io/v1/namespaces/([^/]+)/leases"), "leases"),
]
GENERATED_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


class FakeKube(Workloads, Leases):
    """A fake kube-apiserver on https://127.0.0.1:PORT; see the module comment."""

    def __init__(self, workdir):
        os.makedirs(workdir, exist_ok=True)
        self.workdir = workdir
        self.token = secrets.token_urlsafe(32)
        self._lock = threading.Lock()
        self._version = 0
        self._pods, self._nodes, self._policies, self._events = {}, {}, {}, {}
        self._logs, self._configmaps, self._namespaces = {}, {}, {"default", "kube-system"}
        self._apps, self._pdbs = {}, {}  # (resource, namespace, name) -> apps/v1 object; (namespace, name) -> PDB
        self._hold_terminating, self._page_max = False, 0  # hold_terminating_pods, set_page_max
        self._leases = {}  # (namespace, name) -> coordination.k8s.io/v1 Lease
        self._requests, self._faults = [], []
        self._flight = {}  # method -> requests of that method being handled now
        self._flight_max = {}  # method -> the most of them handled at once since the last reset
        self._flight_total_max = 0
        self._server = _Server(self, self._make_pki())
        self.port = self._server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="fake-kube",
                                        daemon=True)
        self._thread.start()

    def _make_pki(self):
        ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
        ca = make_certificate("fake-kube-ca", ca_key)
        sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1")),
                x509.DNSName("localhost")]
        server = make_certificate("kube-apiserver", server_key, ca, ca_key, ExtendedKeyUsageOID.SERVER_AUTH, sans)
        client = make_certificate("playbookd-test", client_key, ca, ca_key, ExtendedKeyUsageOID.CLIENT_AUTH)
        self.ca_pem, self.client_cert_pem = cert_pem(ca), cert_pem(client)
        self.client_key_pem = key_pem(client_key)
        self.ca_path = write_file(self.workdir, "ca.crt", self.ca_pem)
        write_file(self.workdir, "ca.key", key_pem(ca_key), 0o600)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(write_file(self.workdir, "server.crt", cert_pem(server)),
                                write_file(self.workdir, "server.key", key_pem(server_key), 0o600))
        context.load_verify_locations(self.ca_path)
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def stop(self):
        """Stop listening and cut every open connection, as a server that went away."""
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._thread.join(timeout=5)

    # -- credentials for the client --------------------------------------------------------------

    def write_service_account(self, directory):
        """The in-cluster layout of /var/run/secrets/kubernetes.io/serviceaccount."""
        os.makedirs(directory, exist_ok=True)
        write_file(directory, "token", self.token)
        write_file(directory, "ca.crt", self.ca_pem)
        write_file(directory, "namespace", "default")
        return directory

    def write_kubeconfig(self, path, embed=True, user="cert"):
        """A kubeconfig as `kind` writes it; embed=False puts the PEM files beside it and names them."""
        directory = os.path.dirname(os.path.abspath(path))
        if embed:
            ca_line = f"certificate-authority-data: {b64(self.ca_pem)}"
            cert_lines = [f"client-certificate-data: {b64(self.client_cert_pem)}",
                          f"client-key-data: {b64(self.client_key_pem)}"]
        else:
            ca_line = f"certificate-authority: {write_file(directory, 'ca.crt', self.ca_pem)}"
            cert_lines = [f"client-certificate: {write_file(directory, 'client.crt', self.client_cert_pem)}",
                          f"client-key: {write_file(directory, 'client.key', self.client_key_pem, 0o600)}"]
        user_lines = cert_lines if user == "cert" else [f"token: {self.token}"]
        text = "\n".join([
            "apiVersion: v1", "clusters:", "- cluster:", f"    {ca_line}", f"    server: {self.url}",
            "  name: kind-test", "contexts:", "- context:", "    cluster: kind-test", "    user: kind-test",
            "  name: kind-test", "current-context: kind-test", "kind: Config", "preferences: {}", "users:",
            "- name: kind-test", "  user:", *(f"    {line}" for line in user_lines)]) + "\n"
        write_file(directory, os.path.basename(path), text, 0o600)
        return path

    # -- state: seeding and inspection -----------------------------------------------------------

    def _bump(self):
        self._version += 1
        return str(self._version)

    def _new_meta(self, name, namespace=None, uid=None, labels=None):
        meta = {"name": name, "namespace": namespace, "uid": uid or str(uuid.uuid4()),
                "resourceVersion": self._bump(), "creationTimestamp": timestamp(), "labels": labels}
        return {k: v for k, v in meta.items() if v is not None}

    def add_pod(self, namespace, name, node="node-1", uid=None, labels=None):
        with self._lock:
            pod = {"kind": "Pod", "apiVersion": "v1", "metadata": self._new_meta(name, namespace, uid, labels),
                   "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}], "restartPolicy": "Always",
                            "terminationGracePeriodSeconds": 30, "nodeName": node},
                   "status": {"phase": "Running"}}
            if node is None:
                del pod["spec"]["nodeName"]
                pod["status"]["phase"] = "Pending"
            self._pods[(namespace, name)] = pod
            self._namespaces.add(namespace)
            return copy.deepcopy(pod)

    def add_node(self, name, taints=None, labels=None):
        """A node labelled kubernetes.io/hostname as the kubelet does, and with `labels` (a control plane node:
        {"node-role.kubernetes.io/control-plane": ""}); GET returns them in metadata.labels."""
        with self._lock:
            node = {"kind": "Node", "apiVersion": "v1",
                    "metadata": self._new_meta(name, labels={"kubernetes.io/hostname": name, **(labels or {})}),
                    "spec": {"taints": copy.deepcopy(taints)} if taints else {},
                    "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
            self._nodes[name] = node
            return copy.deepcopy(node)

    def add_namespace(self, name):
        """A namespace that exists (default, kube-system and every pod's are there already)."""
        with self._lock:
            self._namespaces.add(name)

    def set_containers(self, namespace, name, containers, restarts=None, init=(), ephemeral=()):
        """Gives the pod these containers (names; init and ephemeral ones too) and, in containerStatuses,
        each one's restartCount from `restarts` (default 0)."""
        restarts = restarts or {}
        with self._lock:
            pod = self._pods[(namespace, name)]
            spec, status = pod["spec"], pod["status"]
            spec["containers"] = [{"name": c, "image": "nginx:1.25"} for c in containers]
            for kind, names in (("initContainers", init), ("ephemeralContainers", ephemeral)):
                if names:
                    spec[kind] = [{"name": c, "image": "busybox:1.36"} for c in names]
            for kind, names in (("containerStatuses", containers), ("initContainerStatuses", init),
                                ("ephemeralContainerStatuses", ephemeral)):
                if names:
                    status[kind] = [{"name": c, "ready": True, "restartCount": restarts.get(c, 0),
                                     "image": "nginx:1.25", "imageID": "", "started": True} for c in names]

    def set_logs(self, namespace, name, container, lines, previous=False):
        """The lines (str or bytes, without their line end) the container wrote, one second apart and ending
        now; previous=True: those of the container before its last restart."""
        now = datetime.datetime.now(datetime.timezone.utc)
        encoded = [line.encode() if isinstance(line, str) else line for line in lines]
        with self._lock:
            self._logs[(namespace, name, container, previous)] = [
                (now - datetime.timedelta(seconds=len(encoded) - i, microseconds=-i), line)
                for i, line in enumerate(encoded)]

    def configmap(self, namespace, name):
        return self._copy_of(self._configmaps, (namespace, name))

    def configmaps(self, namespace=None):
        """Every ConfigMap (of the namespace), by name."""
        with self._lock:
            return {n: copy.deepcopy(cm) for (ns, n), cm in self._configmaps.items() if namespace in (None, ns)}

    def cordon_node(self, name):
        """`kubectl cordon`: spec.unschedulable true, by someone else than playbookd (no annotation)."""
        with self._lock:
            node = self._nodes[name]
            node.setdefault("spec", {})["unschedulable"] = True
            node["metadata"]["resourceVersion"] = self._bump()

    def _copy_of(self, table, key):
        with self._lock:
            return copy.deepcopy(table.get(key))

    def pod(self, namespace, name):
        return self._copy_of(self._pods, (namespace, name))

    def node(self, name):
        return self._copy_of(self._nodes, name)

    def policy(self, namespace, name):
        return self._copy_of(self._policies, (namespace, name))

    def add_policy(self, namespace, name, spec, labels=None):
        """Stores a NetworkPolicy as another user's create would: defaulted, validated (422 raised as ApiError)."""
        meta = {"name": name, **({"labels": labels} if labels else {})}
        policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta,
                  "spec": copy.deepcopy(spec)}
        default_network_policy(policy)
        self._create(policy, namespace, False, [], validate_network_policy, self._policies,
                     ("NetworkPolicy", "networkpolicies", "networking.k8s.io"))
        return self.policy(namespace, name)

    def policies_selecting(self, namespace, name):
        """The names of the NetworkPolicies of the namespace whose podSelector selects the pod (an absent
        podSelector is the empty one, which selects every pod), in name order."""
        with self._lock:
            labels = self._pods[(namespace, name)]["metadata"].get("labels")
            return sorted(n for (ns, n), p in self._policies.items()
                          if ns == namespace and selector_matches(p["spec"].get("podSelector") or {}, labels))

    def events(self):
        with self._lock:
            return copy.deepcopy(list(self._events.values()))

    # -- requests and faults ---------------------------------------------------------------------

    def requests(self):
        with self._lock:
            return copy.deepcopy(self._requests)

    def clear_requests(self):
        with self._lock:
            self._requests.clear()

    def add_fault(self, method=None, path=None, status=None, retry_after=None, times=OMIT, delay=0.0, drop=False,
                  for_seconds=None, message=None):
        """The next `times` requests (None: all; default 1) matching method and path (a regex searched in the
        path, e.g. r"/events$") get the fault: a Status with `status` and a Retry-After header if given, or
        `delay` seconds before the normal answer (a delayed request counts as in flight while it waits), or
        `drop`: the connection closed with no answer. for_seconds: the fault applies to every matching request
        until that many seconds after this call, then is gone ("500 to DELETE for 10 s, then normally");
        `times` then defaults to None, and an explicit `times` also limits it (whichever ends first). message:
        the Status message (any text, as an admission webhook's may be) instead of the usual one. Faults come
        before authentication; the first matching fault wins."""
        if times is OMIT:
            times = None if for_seconds is not None else 1
        until = time.monotonic() + for_seconds if for_seconds is not None else None
        with self._lock:
            self._faults.append(Fault(method, path, status, retry_after, times, delay, drop, until, message))

    def clear_faults(self):
        """Every fault added and not yet spent is gone: requests are answered normally from now on."""
        with self._lock:
            self._faults.clear()

    def _take_fault(self, req):
        now = time.monotonic()
        with self._lock:
            self._faults = [f for f in self._faults if not f.expired(now)]
            for fault in self._faults:
                if fault.matches(req):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    # -- concurrency -----------------------------------------------------------------------------

    @property
    def in_flight(self):
        """Requests being handled now: from when the request line and headers were read until the answer
        was sent (or the connection dropped), injected delays included. A client may see its answer a moment
        before the count drops: wait for in_flight == 0 rather than assert it."""
        with self._lock:
            return sum(self._flight.values())

    @property
    def max_in_flight(self):
        """The most requests handled at once since the server started or reset_max_in_flight()."""
        with self._lock:
            return self._flight_total_max

    def in_flight_for(self, method):
        with self._lock:
            return self._flight.get(method, 0)

    def max_in_flight_for(self, method):
        """max_in_flight counting only requests of this method ("DELETE"; Events are "POST")."""
        with self._lock:
            return self._flight_max.get(method, 0)

    def reset_max_in_flight(self):
        """Starts the maxima again from what is in flight now."""
        with self._lock:
            self._flight_max = dict(self._flight)
            self._flight_total_max = sum(self._flight.values())

    def _flight_begin(self, method):
        with self._lock:
            self._flight[method] = self._flight.get(method, 0) + 1
            self._flight_max[method] = max(self._flight_max.get(method, 0), self._flight[method])
            self._flight_total_max = max(self._flight_total_max, sum(self._flight.values()))

    def _flight_end(self, method):
        with self._lock:
            self._flight[method] -= 1

    def _record(self, req):
        with self._lock:
            self._requests.append(req)

    # -- answering -------------------------------------------------------------------------------

    def _respond(self, req, fault):
        """(code, body, extra headers) for a request that is not dropped."""
        if fault is not None and fault.status is not None:
            return fault_answer(fault)
        if not req.authenticated:
            return (*UNAUTHORIZED, [])
        try:
            code, body = self._route(req)
        except ApiError as e:
            code, body = e.code, e.status
        except Exception as e:  # a bug in the fake: say so loudly, as a 500
            traceback.print_exc(file=sys.stderr)
            code, body = 500, status_object(500, "InternalError", f"Internal error occurred: fake_kube: {e!r}")
        return code, body, []

    def _route(self, req):
        for pattern, name in ROUTES:
            match = pattern.fullmatch(req.path)
            if match:
                handler = getattr(self, f"_{req.method.lower()}_{name}", None)
                if handler is None:
                    raise NO_SUCH_METHOD
                return handler(req, *map(urllib.parse.unquote, match.groups()))
        raise NO_SUCH_PATH

    def _lookup(self, table, key, resource, name, group=""):
        if key not in table:
            raise not_found(resource, name, group)
        return table[key]

    def _get_pod(self, req, namespace, name):
        with self._lock:
            return 200, copy.deepcopy(self._lookup(self._pods, (namespace, name), "pods", name))

    def _get_node(self, req, name):
        with self._lock:
            return 200, copy.deepcopy(self._lookup(self._nodes, name, "nodes", name))

    def _get_policy(self, req, namespace, name):
        with self._lock:
            policy = self._lookup(self._policies, (namespace, name), "networkpolicies", name, "networking.k8s.io")
            return 200, copy.deepcopy(policy)

    def _get_policies(self, req, namespace):
        """A NetworkPolicyList as kube-apiserver answers it: items in name order without kind and apiVersion,
        metadata.resourceVersion; `limit` pages it with metadata.continue and remainingItemCount."""
        limit, start = list_paging(req.query)
        with self._lock:
            names = sorted(name for ns, name in self._policies if ns == namespace and name > start)
            page = names[:limit] if limit else names
            items = [{k: v for k, v in copy.deepcopy(self._policies[(namespace, name)]).items()
                      if k not in ("kind", "apiVersion")} for name in page]
            meta = {"resourceVersion": str(self._version)}
            if len(page) < len(names):
                meta.update({"continue": base64.b64encode(page[-1].encode()).decode(),
                             "remainingItemCount": len(names) - len(page)})
            return 200, {"kind": "NetworkPolicyList", "apiVersion": "networking.k8s.io/v1", "metadata": meta,
                         "items": items}

    def _get_all_pods(self, req):
        """GET /api/v1/pods: the pods of every namespace (a cluster-wide list), in etcd's order (namespace/name)."""
        with self._lock:
            pods = {f"{ns}/{name}": pod for (ns, name), pod in self._pods.items()}
            return 200, list_page(pods, req.query, "PodList", "v1", str(self._version))

    def _get_nodes(self, req):
        with self._lock:
            return 200, list_page(self._nodes, req.query, "NodeList", "v1", str(self._version))

    def _get_pods(self, req, namespace):
        """GET /api/v1/namespaces/NS/pods: a PodList of the namespace (list_page: labelSelector, limit, continue)."""
        with self._lock:
            pods = {name: pod for (ns, name), pod in self._pods.items() if ns == namespace}
            return 200, list_page(pods, req.query, "PodList", "v1", str(self._version), self._page_max)

    def set_page_max(self, items):
        """Namespaced pod and apps/v1 lists answer at most `items` per page when a limit is asked (0: the limit)."""
        with self._lock:
            self._page_max = items

    def hold_terminating_pods(self, hold=True):
        """hold: a graceful deletion (a DELETE or an eviction with a grace period above 0) leaves the pod
        terminating, deletionTimestamp and deletionGracePeriodSeconds set, as while a real kubelet stops its
        containers; a later DELETE may shorten the grace period, 0 removes it. Not held (the default): the
        kubelet is instant, the pod is gone as soon as its deletion is answered."""
        with self._lock:
            self._hold_terminating = hold

    def _delete_stored_pod(self, pod, period):
        """The registry's graceful deletion (rest.BeforeDelete): period 0 removes the pod at once; otherwise it
        is marked terminating (an earlier, shorter grace period stands), and removed when the kubelet is done."""
        meta = pod["metadata"]
        if period == 0 or not self._hold_terminating:
            del self._pods[(meta["namespace"], meta["name"])]
            return self._bump()
        if meta.get("deletionGracePeriodSeconds") is None or period < meta["deletionGracePeriodSeconds"]:
            meta.update(deletionTimestamp=timestamp(period), deletionGracePeriodSeconds=period)
            meta["resourceVersion"] = self._bump()
        return meta["resourceVersion"]

    def _delete_pod(self, req, namespace, name):
        options = delete_options(req)
        with self._lock:
            pod = self._lookup(self._pods, (namespace, name), "pods", name)
            check_preconditions(pod, options)
            period = grace_period(pod, options)
            answer, earlier = copy.deepcopy(pod), pod["metadata"].get("deletionGracePeriodSeconds")
            if earlier is None or period < earlier:
                answer["metadata"].update(deletionTimestamp=timestamp(period), deletionGracePeriodSeconds=period)
            if not options["dryRun"]:
                answer["metadata"]["resourceVersion"] = self._delete_stored_pod(pod, period)
            return 200, answer

    def _patch_pod(self, req, namespace, name):
        return self._patch(req, self._pods, (namespace, name), "pods", name)

    def _patch_node(self, req, name):
        return self._patch(req, self._nodes, name, "nodes", name)

    def _patch(self, req, table, key, resource, name):
        apply = patch_function(req.headers)
        dry = dry_run(req.query.get("dryRun"), "PatchOptions")
        with self._lock:
            current = self._lookup(table, key, resource, name)
            updated = checked_update(resource, current, apply(current, req.body))
            if json_equal(updated, current):
                return 200, copy.deepcopy(current)
            if not dry:
                updated["metadata"]["resourceVersion"] = self._bump()
                table[key] = updated
            return 200, copy.deepcopy(updated)

    def _post_policies(self, req, namespace):
        check_json_content_type(req.headers)
        dry = dry_run(req.query.get("dryRun"), "CreateOptions")
        policy, missing = decode_created(req.body, "NetworkPolicy", "networking.k8s.io/v1",
                                         "networkpolicy-networking-v1.json")
        default_network_policy(policy)
        return self._create(policy, namespace, dry, missing, validate_network_policy, self._policies,
                            ("NetworkPolicy", "networkpolicies", "networking.k8s.io"))

    def _post_events(self, req, namespace):
        check_json_content_type(req.headers)
        dry = dry_run(req.query.get("dryRun"), "CreateOptions")
        event, missing = decode_created(req.body, "Event", "events.k8s.io/v1", "event-events-v1.json",
                                        ("eventTime", "series.lastObservedTime"))
        return self._create(event, namespace, dry, missing, lambda e: validate_event(e, namespace), self._events,
                            ("Event", "events", "events.k8s.io"))

    def _get_pod_log(self, req, namespace, name):
        """The container's log as text/plain (bytes: _send passes them on as they are)."""
        tail, limit, timestamps, previous, errors = log_options(req.query)
        with self._lock:
            pod = self._lookup(self._pods, (namespace, name), "pods", name)
            if errors:
                raise invalid("PodLogOptions", "", name, errors)
            container = log_container(pod, name, req.query)
            lines = self._logs.get((namespace, name, container, previous))
            if previous and lines is None:
                raise bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
            return 200, log_text(lines or [], tail, limit, timestamps)

    def _post_configmaps(self, req, namespace):
        check_json_content_type(req.headers)
        dry = dry_run(req.query.get("dryRun"), "CreateOptions")
        cm, missing = decode_created(req.body, "ConfigMap", "v1", "configmap-v1.json")
        with self._lock:
            if namespace not in self._namespaces:  # the NamespaceLifecycle admission plugin, dry run or not
                raise not_found("namespaces", namespace)
        return self._create(cm, namespace, dry, missing, configmap_errors, self._configmaps,
                            ("ConfigMap", "configmaps", ""))

    def _create(self, obj, namespace, dry, missing, validate, table, names):
        kind, resource, group = names
        meta = obj["metadata"]
        if (meta.get("namespace") or namespace) != namespace:
            raise bad_request(NAMESPACE_MISMATCH)
        if meta.get("resourceVersion"):
            raise ApiError(500, "InternalError",
                           "Internal error occurred: resourceVersion should not be set on objects to be created")
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(secrets.choice(GENERATED_NAME_CHARS) for _ in range(5))
            meta["name"] = meta["generateName"][:58] + suffix
        name = meta.get("name") or ""
        errors = [required("metadata.name", "name or generateName is required")] if not name else validate(obj)
        if errors or missing:
            raise invalid(kind, group, name, errors or missing)
        with self._lock:
            if (namespace, name) in table:
                raise already_exists(resource, name, group)
            meta.update(namespace=namespace, uid=str(uuid.uuid4()))
            meta.update({} if dry else {"resourceVersion": self._bump()})
            meta.update({"generation": 1} if kind == "NetworkPolicy" else {})
            meta["creationTimestamp"] = timestamp()
            if not dry:
                table[(namespace, name)] = obj
            return 201, copy.deepcopy(obj)


def cut(connection):
    """Close a connection without TLS close_notify: the peer sees the line cut."""
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a thread per connection, not waited for at close
    request_queue_size = 256  # the listen backlog: 64+ clients may connect at once (the default is 5)

    def __init__(self, fake, context):
        self.fake = fake
        self.connections = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def close_connections(self):
        with self.connections_lock:
            for connection in self.connections:
                cut(connection)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as Go servers: no Nagle delay

    def handle(self):
        with self.server.connections_lock:
            self.server.connections.add(self.connection)
        try:
            self.connection.do_handshake()
            super().handle()
        except (ssl.SSLError, OSError):
            pass
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)

    def do_request(self):
        fake = self.server.fake
        method = self.command
        fake._flight_begin(method)
        try:
            self._answer(fake)
        finally:
            fake._flight_end(method)

    def _answer(self, fake):
        req = self._parse(fake.token)
        fault = fake._take_fault(req)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.drop:
            fake._record(req)
            self._drop()
            return
        req.status, body, headers = fake._respond(req, fault)
        fake._record(req)
        self._send(req.status, body, headers)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_request

    def _parse(self, token):
        url = urllib.parse.urlsplit(self.path)
        body = self._read_body()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        headers = {}
        for name, value in self.headers.items():
            headers[name.lower()] = f"{headers[name.lower()]}, {value}" if name.lower() in headers else value
        auth = self._authenticate(headers, token)
        return Request(self.command, url.path, urllib.parse.parse_qs(url.query, keep_blank_values=True), headers,
                       body, parsed, auth is not None, auth)

    def _authenticate(self, headers, token):
        """A verified client certificate, else a bearer token equal to the current one (x509 comes first)."""
        if self.connection.getpeercert():
            return "cert"
        parts = headers.get("authorization", "").split(" ")
        if len(parts) >= 2 and parts[0].lower() == "bearer" and parts[1] and parts[1] == token:
            return "token"
        return None

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_chunked(self):
        body = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                break
            body += self.rfile.read(size)
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        return body

    def _send(self, code, body, headers):
        text = isinstance(body, bytes)  # a pod log
        data = body if text else json.dumps(body, separators=(",", ":")).encode() + b"\n"
        self.send_response(code)
        self.send_header("Content-Type", "text/plain" if text else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _drop(self):
        self.close_connection = True
        cut(self.connection)

    def log_message(self, format, *args):
        pass
