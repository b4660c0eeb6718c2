"""The gateway over HTTP, as scripts/test.sh runs it: a price, a sign-in and
two chats, then /metrics must show what was sent. Usage: gateway_smoke.py URL"""

import json
import re
import sys
import urllib.request
import uuid

BASE = sys.argv[1]


def call(path, body=None, token=None, raw=False):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = "Bearer " + token
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=5)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    text = response.read().decode()
    return (response.status, text) if raw else json.loads(text)


def metric(text, name, **labels):
    """The sum of the series of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+)\{(.*)\} (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(match.group(3))
    return total


price = call("/v1/prices/gpt-4o")
assert price["model"] == "gpt-4o" and price["input_per_1k"] > 0, price
token = call("/v1/login", {"user": "smoke"})["token"]
first = call("/v1/chat", {"message": "hi"}, token)
second = call("/v1/chat", {"message": "hi"}, token)
assert second["seq"] > first["seq"], (first, second)
print(price, first, second)

# A known model not asked for yet: a miss, a load, then two hits. A model
# no run has asked for: a miss, a load, then two answers from its cached
# absence.
status, before = call("/metrics", raw=True)
assert status == 200, before
model = "smoke-" + uuid.uuid4().hex
for _ in range(3):
    status, _ = call("/v1/prices/claude-3-opus", raw=True)
    assert status == 200, status
    status, _ = call("/v1/prices/" + model, raw=True)
    assert status == 404, status
status, after = call("/metrics", raw=True)
assert status == 200, after
price_keyspace = {"namespace": "gateway", "keyspace": "price"}
moved = {
    name: metric(after, name, **price_keyspace) - metric(before, name, **price_keyspace)
    for name in ["cache_hits_total", "cache_misses_total", "cache_loads_total", "cache_negative_hits_total"]
}
expected = {
    "cache_hits_total": 2,
    "cache_misses_total": 2,
    "cache_loads_total": 2,
    "cache_negative_hits_total": 2,
}
assert moved == expected, moved
route = {"route": "/v1/prices/{model}", "method": "GET"}
not_found = metric(after, "gateway_http_requests_total", status="404", **route)
assert not_found - metric(before, "gateway_http_requests_total", status="404", **route) == 3
found = metric(after, "gateway_http_requests_total", status="200", **route)
assert found - metric(before, "gateway_http_requests_total", status="200", **route) == 3
assert metric(after, "gateway_http_requests_total", route="/v1/chat", status="200") >= 2
assert metric(after, "gateway_http_request_duration_seconds_count", route="/v1/login") >= 1
print("metrics:", moved, "404s on the price route:", not_found)
