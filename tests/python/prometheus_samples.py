"""Parses Prometheus text from stdin with the official Python client's parser
(prometheus_client.parser) and prints every sample as JSON:
{"families": {name: type}, "samples": [{"name", "labels", "value"}]}.
A text the parser refuses makes it exit non-zero."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

families = {}
samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    families[family.name] = family.type
    for s in family.samples:
        samples.append({"name": s.name, "labels": dict(s.labels), "value": s.value})
json.dump({"families": families, "samples": samples}, sys.stdout)
