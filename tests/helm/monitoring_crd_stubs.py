"""Stand-ins for the prometheus-operator CRDs (monitoring.coreos.com/v1), for the chart tests.

The test control plane runs no prometheus-operator, so these CRDs let the apiserver accept or
refuse the chart's ServiceMonitor, PodMonitor and PrometheusRule objects. They are written
here, not copied: each declares only the fields the chart uses, with the upstream names and
types, and never x-kubernetes-preserve-unknown-fields. Under server-side dry-run with
fieldValidation=Strict, a misspelt or misplaced field in the chart is refused as unknown, a
wrong type is refused, and so is a malformed duration. PromQL itself is checked by promtool
(test_chart_monitoring.py).
"""

from __future__ import annotations

from typing import Any

GROUP = "monitoring.coreos.com"

_STRING = {"type": "string"}
# prometheus-operator's Duration pattern.
_DURATION = {
    "type": "string",
    "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?"
    "(([0-9]+)ms)?)$",
}
_LABEL_SELECTOR = {
    "type": "object",
    "properties": {"matchLabels": {"type": "object", "additionalProperties": _STRING}},
}
_NAMESPACE_SELECTOR = {
    "type": "object",
    "properties": {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": _STRING}},
}
_RELABEL_ACTIONS = [
    "replace",
    "keep",
    "drop",
    "hashmod",
    "labelmap",
    "labeldrop",
    "labelkeep",
    "lowercase",
    "uppercase",
    "keepequal",
    "dropequal",
]
_RELABELINGS = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "sourceLabels": {
                "type": "array",
                "items": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
            },
            "targetLabel": _STRING,
            "action": {
                "type": "string",
                "enum": _RELABEL_ACTIONS,
            },
            "regex": _STRING,
            "replacement": _STRING,
            "separator": _STRING,
            "modulus": {"type": "integer", "format": "int64"},
        },
    },
}
_ENDPOINT = {
    "type": "object",
    "properties": {
        "port": _STRING,
        "path": _STRING,
        "interval": _DURATION,
        "scrapeTimeout": _DURATION,
        "relabelings": _RELABELINGS,
        "metricRelabelings": _RELABELINGS,
    },
}
_RULE = {
    "type": "object",
    "required": ["expr"],
    "properties": {
        "alert": _STRING,
        "record": _STRING,
        "expr": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, _STRING]},
        "for": _DURATION,
        "keep_firing_for": _DURATION,
        "labels": {"type": "object", "additionalProperties": _STRING},
        "annotations": {"type": "object", "additionalProperties": _STRING},
    },
}


def _crd(kind: str, plural: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": _STRING,
                                "kind": _STRING,
                                "metadata": {"type": "object"},
                                "spec": spec,
                            },
                        }
                    },
                }
            ],
        },
    }


STUB_CRDS: list[dict[str, Any]] = [
    _crd(
        "ServiceMonitor",
        "servicemonitors",
        {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": _NAMESPACE_SELECTOR,
                "endpoints": {"type": "array", "items": _ENDPOINT},
            },
        },
    ),
    _crd(
        "PodMonitor",
        "podmonitors",
        {
            "type": "object",
            "required": ["selector", "podMetricsEndpoints"],
            "properties": {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": _NAMESPACE_SELECTOR,
                "podMetricsEndpoints": {"type": "array", "items": _ENDPOINT},
            },
        },
    ),
    _crd(
        "PrometheusRule",
        "prometheusrules",
        {
            "type": "object",
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": _DURATION,
                            "rules": {"type": "array", "items": _RULE},
                        },
                    },
                }
            },
        },
    ),
]
