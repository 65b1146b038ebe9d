"""Notifications' limits through the official OCI Python SDK: a topic's apiEndpoint is where the
data plane client publishes; a message over 64 KB is refused with 413 PayloadTooLarge; a topic
takes at most LIMIT messages a minute, then 429 TooManyRequests.
Usage: sdk_notification_limits.py CONFIG_FILE ENDPOINT LIMIT. Prints OK."""
import sys

import oci

config_file, endpoint, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = oci.config.from_file(config_file, "LOCAL")
compartment = config["tenancy"]
# No retries: each refusal must reach this script as the service answered it.
none = oci.retry.NoneRetryStrategy()

topics = oci.ons.NotificationControlPlaneClient(config, service_endpoint=endpoint)
topic = topics.create_topic(oci.ons.models.CreateTopicDetails(name="limits", compartment_id=compartment)).data
assert topic.api_endpoint == endpoint, topic.api_endpoint
assert topics.get_topic(topic.topic_id).data.api_endpoint == endpoint

# Publish as the documentation says: to the topic's apiEndpoint.
ons = oci.ons.NotificationDataPlaneClient(config, service_endpoint=topic.api_endpoint, retry_strategy=none)


def refused(details):
    try:
        ons.publish_message(topic.topic_id, details)
    except oci.exceptions.ServiceError as e:
        return e.status, e.code
    return None


assert refused(oci.ons.models.MessageDetails(title="big", body="x" * 70000)) == (413, "PayloadTooLarge")
# 64 KB exactly, title included, is accepted.
assert refused(oci.ons.models.MessageDetails(title="t", body="x" * (65536 - 1))) is None
for i in range(limit - 1):
    assert refused(oci.ons.models.MessageDetails(title="t", body=str(i))) is None, i
assert refused(oci.ons.models.MessageDetails(title="t", body="over")) == (429, "TooManyRequests")
print("OK")
