"""The official OCI Python SDK reading datasync's custom metrics back from a `datasync up`
emulator. Usage: up_metrics.py CONFIG_FILE ENDPOINT COMPARTMENT QUERIES_JSON. Prints one JSON
object: for each query, [dimensions, sum of the aggregated datapoints] per returned stream;
under "__names", the metric names ListMetrics returns in the datasync namespace."""
import datetime
import json
import sys

import oci

config_file, endpoint, compartment, queries = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
config = oci.config.from_file(config_file, "LOCAL")
client = oci.monitoring.MonitoringClient(config, service_endpoint=endpoint)
now = datetime.datetime.now(datetime.timezone.utc)
out = {}
for query in json.loads(queries):
    details = oci.monitoring.models.SummarizeMetricsDataDetails(
        namespace="datasync",
        query=query,
        start_time=now - datetime.timedelta(minutes=10),
        end_time=now + datetime.timedelta(minutes=1),
    )
    data = client.summarize_metrics_data(compartment, details).data
    out[query] = [[m.dimensions, sum(p.value for p in m.aggregated_datapoints)] for m in data]
listed = client.list_metrics(compartment, oci.monitoring.models.ListMetricsDetails(namespace="datasync")).data
out["__names"] = sorted({m.name for m in listed})
print(json.dumps(out))
