#!/usr/bin/env python3
"""Writes invalid_specs.json: the hostile-input table that both the e2e test (the real API
server must refuse each spec, naming the field) and the operator's unit test (parseClusterSpec
must refuse it too, naming the same field) read. Regenerate after editing: python3 this > file.

Each row: name (also the object's name suffix), spec, field (the exact field path both
messages must contain), admission (a further part of the API server's message), and either
operator (a part of parseClusterSpec's message), and metadataName when the row is about the
name (otherwise the object is bad-<name>) or admissionOnly (why the operator cannot see
it: the API server drops or refuses it before any object is stored).
"""
import json

rows = []


def bad(name, spec, field, admission, operator=None, admission_only=None):
    row = {"name": name, "spec": spec, "field": field, "admission": admission}
    if admission_only:
        row["admissionOnly"] = admission_only
    else:
        row["operator"] = operator
    rows.append(row)


# Wrong types.
bad("replicas-string", {"replicas": "three"}, "spec.replicas", "must be of type integer",
    "must be an integer")
bad("replicas-float", {"replicas": 2.5}, "spec.replicas", "must be of type integer",
    "must be an integer")
bad("port-string", {"port": "11211"}, "spec.port", "must be of type integer", "must be an integer")
bad("paused-string", {"paused": "yes"}, "spec.paused", "must be of type boolean",
    "must be true or false")
bad("extraargs-string", {"memcached": {"extraArgs": "-v"}}, "spec.memcached.extraArgs",
    "must be of type array", "must be a list of strings")
bad("nodeselector-int", {"nodeSelector": {"pool": 1}}, "spec.nodeSelector.pool",
    "must be of type string", "must be a string")
bad("monitoring-enabled-string", {"monitoring": {"enabled": "yes"}}, "spec.monitoring.enabled",
    "must be of type boolean", "must be true or false")
bad("unknown-field", {"replicaz": 3}, "spec.replicaz", "unknown field",
    admission_only="an unknown field is refused by kubectl's strict field validation (and pruned "
    "otherwise), so no stored object carries it")
# Out-of-range numbers.
bad("replicas-over", {"replicas": 1001}, "spec.replicas", "less than or equal to 1000",
    "(1001) must be between 0 and 1000")
bad("replicas-negative", {"replicas": -1}, "spec.replicas", "greater than or equal to 0",
    "(-1) must be between 0 and 1000")
bad("port-zero", {"port": 0}, "spec.port", "greater than or equal to 1",
    "(0) must be between 1 and 65535")
bad("memory-zero", {"memcached": {"memoryMB": 0}}, "spec.memcached.memoryMB",
    "greater than or equal to 1", "(0) must be between 1 and 1048576")
bad("memory-huge", {"memcached": {"memoryMB": 1048577}}, "spec.memcached.memoryMB",
    "less than or equal to 1048576", "(1048577) must be between 1 and 1048576")
bad("conns-low", {"memcached": {"maxConnections": 14}}, "spec.memcached.maxConnections",
    "greater than or equal to 15", "(14) must be between 15 and 1048576")
bad("threads-zero", {"memcached": {"threads": 0}}, "spec.memcached.threads",
    "greater than or equal to 1", "(0) must be between 1 and 256")
bad("threads-over", {"memcached": {"threads": 257}}, "spec.memcached.threads",
    "less than or equal to 256", "(257) must be between 1 and 256")
bad("conns-for-threads", {"memcached": {"threads": 8, "maxConnections": 49}},
    "spec.memcached.maxConnections", "at least 5 × memcached.threads + 10",
    "at least 5 × memcached.threads + 10")
bad("item-small", {"memcached": {"maxItemSize": "512"}}, "spec.memcached.maxItemSize",
    "at least 1k", "must be between 1k and 1024m")
bad("item-half", {"memcached": {"memoryMB": 64, "maxItemSize": "64m"}},
    "spec.memcached.maxItemSize", "at most half of memcached.memoryMB",
    "at most half of spec.memcached.memoryMB")
bad("item-unit", {"memcached": {"maxItemSize": "1g"}}, "spec.memcached.maxItemSize",
    "should match", "must be a byte count")
bad("pdb-zero", {"podDisruptionBudget": {"maxUnavailable": 0}},
    "spec.podDisruptionBudget.maxUnavailable", "greater than or equal to 1", "must be at least 1")
bad("drain-min-negative", {"drain": {"minSeconds": -1}}, "spec.drain.minSeconds",
    "greater than or equal to 0", "must be between 0 and 86400")
bad("drain-timeout-over", {"drain": {"timeoutSeconds": 604801}}, "spec.drain.timeoutSeconds",
    "less than or equal to 604800", "must be between 0 and 604800")
bad("drain-threshold-negative", {"drain": {"connectionThreshold": -1}},
    "spec.drain.connectionThreshold", "greater than or equal to 0", "must be >= 0")
bad("window-over", {"transition": {"windowSeconds": 86401}}, "spec.transition.windowSeconds",
    "less than or equal to 86400", "(86401) must be between 0 and 86400")
bad("propagation-negative", {"transition": {"propagationSeconds": -1}},
    "spec.transition.propagationSeconds", "greater than or equal to 0",
    "(-1) must be between 0 and 86400")
bad("copy-timeout-zero", {"transition": {"copy": {"timeoutSeconds": 0}}},
    "spec.transition.copy.timeoutSeconds", "greater than or equal to 1",
    "(0) must be between 1 and 86400")
bad("copy-rate-negative", {"transition": {"copy": {"itemsPerSecond": -1}}},
    "spec.transition.copy.itemsPerSecond", "greater than or equal to 0", "(-1) must be >= 0")
bad("monitoring-port-zero", {"monitoring": {"port": 0}}, "spec.monitoring.port",
    "greater than or equal to 1", "(0) must be between 1 and 65535")
# Contradictory settings.
bad("drain-contradiction", {"drain": {"minSeconds": 60, "timeoutSeconds": 30}},
    "spec.drain.timeoutSeconds", "must be >= drain.minSeconds", "must be >= spec.drain.minSeconds")
bad("client-secret-without-require", {"tls": {"secretName": "a", "clientSecretName": "c"}},
    "spec.tls.clientSecretName", "only used with clientAuth Require",
    "only used with clientAuth Require")
bad("monitoring-with-auth", {"auth": {"secretName": "a"}, "monitoring": {"enabled": True}},
    "spec.monitoring.enabled", "cannot authenticate to memcached",
    "cannot authenticate to memcached")
bad("monitoring-same-port", {"monitoring": {"enabled": True, "port": 11211}},
    "spec.monitoring.port", "must differ from", "must differ from spec.port")
# Enums and names.
bad("pull-policy", {"imagePullPolicy": "Sometimes"}, "spec.imagePullPolicy",
    "supported values", "must be Always, IfNotPresent or Never")
bad("anti-affinity", {"antiAffinity": "sometimes"}, "spec.antiAffinity", "supported values",
    "must be soft or hard")
bad("hashing", {"clientConfig": {"hashing": "modula"}}, "spec.clientConfig.hashing",
    "supported values", "must be ketama-libmemcached or ketama-libketama")
bad("transition-mode", {"transition": {"mode": "warm"}}, "spec.transition.mode",
    "supported values", "must be Cold or Warm")
bad("update-strategy", {"updateStrategy": {"type": "OnDelete"}}, "spec.updateStrategy.type",
    "supported values", "must be Warm or RollingUpdate")
bad("client-auth", {"tls": {"secretName": "a", "clientAuth": "Optional"}},
    "spec.tls.clientAuth", "supported values", "must be None or Require")
bad("cm-name", {"clientConfig": {"configMapName": "Not_A_Name"}},
    "spec.clientConfig.configMapName", "should match", "must be a DNS subdomain name")
bad("cm-root-ca", {"clientConfig": {"configMapName": "kube-root-ca.crt"}},
    "spec.clientConfig.configMapName", "Kubernetes' own CA bundle", "Kubernetes' own CA bundle")
bad("tls-no-secret", {"tls": {}}, "spec.tls.secretName", "Required value", "is required")
bad("tls-secret-name", {"tls": {"secretName": "Bad_Name"}}, "spec.tls.secretName",
    "should match", "must be a Secret name")
bad("auth-key-traversal", {"auth": {"secretName": "a", "key": "../etc/passwd"}}, "spec.auth.key",
    "should match", "must be a Secret key")
bad("auth-key-dotdot", {"auth": {"secretName": "a", "key": ".."}}, "spec.auth.key",
    "must be a Secret key", "must be a Secret key")
bad("peer-empty", {"networkPolicy": {"allowedClients": [{}]}},
    "spec.networkPolicy.allowedClients[0]", "must set podSelector, namespaceSelector or ipBlock",
    "must set podSelector, namespaceSelector or ipBlock")
bad("peer-cidr", {"networkPolicy": {"allowedClients": [{"ipBlock": {"cidr": "ten"}}]}},
    "spec.networkPolicy.allowedClients[0].ipBlock.cidr", "should match", "must be a CIDR")
bad("peer-in-without-values",
    {"networkPolicy": {"allowedScrapers": [{"namespaceSelector": {
        "matchExpressions": [{"key": "a", "operator": "In"}]}}]}},
    "spec.networkPolicy.allowedScrapers[0].namespaceSelector.matchExpressions[0]",
    "In and NotIn need values", "operator In needs values")
# Injected memcached flags.
bad("inject-memory", {"memcached": {"extraArgs": ["-m", "128"]}}, "spec.memcached.extraArgs",
    "-m/--memory-limit is not allowed", "-m/--memory-limit is not allowed")
bad("inject-udp", {"memcached": {"extraArgs": ["-vU11211"]}}, "spec.memcached.extraArgs",
    "-U/--udp-port is not allowed", "-U/--udp-port is not allowed")
bad("inject-listen", {"memcached": {"extraArgs": ["--listen=0.0.0.0"]}},
    "spec.memcached.extraArgs", "-l/--listen is not allowed", "-l/--listen is not allowed")
bad("inject-shutdown", {"memcached": {"extraArgs": ["-A"]}}, "spec.memcached.extraArgs",
    "-A/--enable-shutdown is not allowed", "-A/--enable-shutdown is not allowed")
bad("inject-tls-file", {"memcached": {"extraArgs": ["-o", "ssl_key=/etc/shadow"]}},
    "spec.memcached.extraArgs", "extended option \"ssl_key\" is not allowed",
    "extended option \"ssl_key\" is not allowed")
bad("inject-auth-file", {"memcached": {"extraArgs": ["-Y", "/dev/null"]}},
    "spec.memcached.extraArgs", "is not allowed", "is not allowed")
bad("inject-newline", {"memcached": {"extraArgs": ["-v\n-U0"]}}, "spec.memcached.extraArgs",
    "must not contain a line break", "contains a line break")
# Huge strings and lists.
bad("image-huge", {"image": "memcached:" + "x" * 503}, "spec.image",
    "may not be more than 512", "at most 512 characters")
bad("monitoring-image-huge", {"monitoring": {"image": "exporter:" + "x" * 504}},
    "spec.monitoring.image", "may not be more than 512", "at most 512 characters")
bad("cm-name-huge", {"clientConfig": {"configMapName": "a" * 254}},
    "spec.clientConfig.configMapName", "may not be more than 253", "at most 253 characters")
bad("secret-name-huge", {"auth": {"secretName": "a" * 254}}, "spec.auth.secretName",
    "may not be more than 253", "must be a Secret name")
bad("item-size-huge", {"memcached": {"maxItemSize": "9" * 12}}, "spec.memcached.maxItemSize",
    "may not be more than 11", "must be between 1k and 1024m")
bad("extraarg-huge", {"memcached": {"extraArgs": ["-v" + "v" * 255]}},
    "spec.memcached.extraArgs[0]", "may not be more than 256", "at most 256 characters")
bad("extraargs-many", {"memcached": {"extraArgs": ["-v"] * 65}}, "spec.memcached.extraArgs",
    "must have at most 64 items", "must have at most 64 items")
bad("label-value-huge", {"networkPolicy": {"allowedClients": [
    {"podSelector": {"matchLabels": {"app": "x" * 64}}}]}},
    "spec.networkPolicy.allowedClients[0].podSelector.matchLabels", "may not be more than 63",
    "is not a label value")
bad("name-huge", {}, "metadata.name", "must be at most 52 characters",
    "must be at most 52 characters")
rows[-1]["metadataName"] = "a" + "b" * 52

print(json.dumps(rows, indent=1, ensure_ascii=False))
