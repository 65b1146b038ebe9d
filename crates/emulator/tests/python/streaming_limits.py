"""OCI Streaming's limits through the official OCI Python SDK against the datasync emulator:
1 MiB per message and per PutMessages request (keys and values after base64 decoding), retention
24-168 hours at creation, and an UpdateStream that leaves partitions and retention as created.
Usage: streaming_limits.py CONFIG_FILE ENDPOINT. Prints OK."""
import base64
import sys

import oci

config_file, endpoint = sys.argv[1], sys.argv[2]
config = oci.config.from_file(config_file, "LOCAL")
compartment = config["tenancy"]
kw = {"service_endpoint": endpoint, "retry_strategy": oci.retry.NoneRetryStrategy()}
admin = oci.streaming.StreamAdminClient(config, **kw)
client = oci.streaming.StreamClient(config, **kw)
MiB = 1024 * 1024


def refused(call, status, code):
    try:
        call()
    except oci.exceptions.ServiceError as e:
        assert (e.status, e.code) == (status, code), (e.status, e.code, e.message)
        return e.message
    raise AssertionError("accepted, expected %d %s" % (status, code))


for hours in (23, 169):
    refused(lambda: admin.create_stream(oci.streaming.models.CreateStreamDetails(
        name="bad-retention", partitions=1, compartment_id=compartment, retention_in_hours=hours)),
        400, "InvalidParameter")

stream = admin.create_stream(oci.streaming.models.CreateStreamDetails(
    name="limits", partitions=2, compartment_id=compartment, retention_in_hours=48)).data


def put(*sizes):
    entries = [oci.streaming.models.PutMessagesDetailsEntry(
        key=None, value=base64.b64encode(b"x" * n).decode()) for n in sizes]
    return client.put_messages(stream.id, oci.streaming.models.PutMessagesDetails(messages=entries)).data


message = refused(lambda: put(MiB + 1), 413, "PayloadTooLarge")
assert str(MiB) in message, message
refused(lambda: put(600 * 1024, 600 * 1024), 413, "PayloadTooLarge")
assert put(MiB).failures == 0
assert put(MiB // 2, MiB // 2).failures == 0

updated = admin.update_stream(stream.id, oci.streaming.models.UpdateStreamDetails(
    freeform_tags={"team": "sync"})).data
assert (updated.partitions, updated.retention_in_hours) == (2, 48), updated
again = admin.get_stream(stream.id).data
assert (again.partitions, again.retention_in_hours) == (2, 48), again
print("OK")
