"""LogSearchClient.search_logs of the official OCI Python SDK against the datasync emulator,
signed with the LOCAL profile. Usage: sdk_search_logs.py CONFIG_FILE ENDPOINT SCOPE NEEDLE.
Pages through `search "SCOPE" | where data.message = '*NEEDLE*' | sort by datetime asc` two
entries at a time, checks that an unsupported query is a 400 naming it, and prints each
entry's data.message (one JSON string per line), then OK."""
import datetime
import json
import sys

import oci

config_file, endpoint, scope, needle = sys.argv[1:5]
config = oci.config.from_file(config_file, "LOCAL")
client = oci.loggingsearch.LogSearchClient(config, service_endpoint=endpoint)
now = datetime.datetime.now(datetime.timezone.utc)
needle_literal = needle.replace("'", "''")
details = oci.loggingsearch.models.SearchLogsDetails(
    time_start=now - datetime.timedelta(hours=1),
    time_end=now + datetime.timedelta(minutes=1),
    search_query=f"search \"{scope}\" | where data.message = '*{needle_literal}*' | sort by datetime asc",
    is_return_field_info=False)
messages = []
answer = client.search_logs(details, limit=2)
pages = 1
while True:
    assert answer.data.summary.result_count == len(answer.data.results), answer.data.summary
    for result in answer.data.results:
        content = result.data["logContent"]
        assert content["type"] == "com.oraclecloud.functions.application.functioninvoke", content
        assert isinstance(result.data["datetime"], int), result.data
        messages.append(content["data"]["message"])
    page = answer.headers.get("opc-next-page")
    if not page:
        break
    answer = client.search_logs(details, limit=2, page=page)
    pages += 1
assert messages, "nothing found"
assert pages == (len(messages) + 1) // 2, (pages, len(messages))

bad = oci.loggingsearch.models.SearchLogsDetails(
    time_start=details.time_start, time_end=details.time_end,
    search_query=f"search \"{scope}\" | summarize count()")
try:
    client.search_logs(bad)
    raise AssertionError("an unsupported query was answered")
except oci.exceptions.ServiceError as e:
    assert e.status == 400 and "summarize" in e.message, (e.status, e.message)

too_long = oci.loggingsearch.models.SearchLogsDetails(
    time_start=now - datetime.timedelta(days=15), time_end=now, search_query=details.search_query)
try:
    client.search_logs(too_long)
    raise AssertionError("a 15-day span was answered")
except oci.exceptions.ServiceError as e:
    assert e.status == 400 and "14 days" in e.message, (e.status, e.message)

for m in messages:
    print(json.dumps(m))
print("OK")
