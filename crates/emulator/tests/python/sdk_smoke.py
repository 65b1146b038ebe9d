"""The official OCI Python SDK against the datasync emulator, signed by the SDK's own signer
with the generated LOCAL profile. Usage: sdk_smoke.py CONFIG_FILE ENDPOINT. Prints OK."""
import base64
import sys

import oci

config_file, endpoint = sys.argv[1], sys.argv[2]
config = oci.config.from_file(config_file, "LOCAL")
oci.config.validate_config(config)
compartment = config["tenancy"]
kw = {"service_endpoint": endpoint}

# Streaming: control plane, put, cursor, get, group cursor with commit.
admin = oci.streaming.StreamAdminClient(config, **kw)
stream = admin.create_stream(oci.streaming.models.CreateStreamDetails(
    name="sdk", partitions=1, compartment_id=compartment, retention_in_hours=24)).data
assert stream.lifecycle_state == "ACTIVE", stream
assert stream.messages_endpoint == endpoint, stream.messages_endpoint
client = oci.streaming.StreamClient(config, **kw)
entries = [oci.streaming.models.PutMessagesDetailsEntry(
    key=base64.b64encode(b"k").decode(), value=base64.b64encode(b"v%d" % i).decode()) for i in range(3)]
put = client.put_messages(stream.id, oci.streaming.models.PutMessagesDetails(messages=entries)).data
assert put.failures == 0 and [e.offset for e in put.entries] == [0, 1, 2], put
cursor = client.create_cursor(stream.id, oci.streaming.models.CreateCursorDetails(
    partition="0", type="TRIM_HORIZON")).data.value
got = client.get_messages(stream.id, cursor, limit=10)
values = [base64.b64decode(m.value) for m in got.data]
assert values == [b"v0", b"v1", b"v2"], values
assert got.headers.get("opc-next-cursor"), got.headers
group = client.create_group_cursor(stream.id, oci.streaming.models.CreateGroupCursorDetails(
    group_name="sdk-group", type="TRIM_HORIZON", commit_on_get=False, timeout_in_ms=30000)).data.value
batch = client.get_messages(stream.id, group, limit=2)
assert len(batch.data) == 2, batch.data
committed = client.consumer_commit(stream.id, batch.headers["opc-next-cursor"]).data.value
assert committed
heartbeat = client.consumer_heartbeat(stream.id, committed).data.value
assert heartbeat
grp = client.get_group(stream.id, "sdk-group").data
assert grp.reservations[0].committed_offset == 1, grp

# Vault and Secrets.
vaults = oci.vault.VaultsClient(config, **kw)
vault_id = "ocid1.vault.oc1.local.sdk"
vaults.create_secret(oci.vault.models.CreateSecretDetails(
    compartment_id=compartment, vault_id=vault_id, key_id="ocid1.key.oc1.local.sdk", secret_name="sdk-secret",
    secret_content=oci.vault.models.Base64SecretContentDetails(
        content_type="BASE64", content=base64.b64encode(b"token-123").decode())))
secrets = oci.secrets.SecretsClient(config, **kw)
bundle = secrets.get_secret_bundle_by_name(secret_name="sdk-secret", vault_id=vault_id).data
assert base64.b64decode(bundle.secret_bundle_content.content) == b"token-123", bundle

# Secret versions: at most 30 in use; ScheduleSecretVersionDeletion 1 to 30 days ahead, never
# the CURRENT version; a version pending deletion is no longer served.
import datetime
limited = vaults.create_secret(oci.vault.models.CreateSecretDetails(
    compartment_id=compartment, vault_id=vault_id, key_id="ocid1.key.oc1.local.sdk", secret_name="sdk-limited",
    secret_content=oci.vault.models.Base64SecretContentDetails(
        content_type="BASE64", content=base64.b64encode(b"v1").decode()))).data
def new_version(n):
    return vaults.update_secret(limited.id, oci.vault.models.UpdateSecretDetails(
        secret_content=oci.vault.models.Base64SecretContentDetails(
            content_type="BASE64", content=base64.b64encode(b"v%d" % n).decode())))
for n in range(2, 31):
    new_version(n)
try:
    new_version(31)
    raise AssertionError("a 31st version in use was accepted")
except oci.exceptions.ServiceError as e:
    assert e.status == 400 and e.code == "LimitExceeded", e
now = datetime.datetime.now(datetime.timezone.utc)
def schedule(version, delta):
    return vaults.schedule_secret_version_deletion(
        limited.id, version, oci.vault.models.ScheduleSecretVersionDeletionDetails(time_of_deletion=now + delta))
for version, delta in [(1, datetime.timedelta(hours=23)), (1, datetime.timedelta(days=31))]:
    try:
        schedule(version, delta)
        raise AssertionError("deletion %s ahead was accepted" % delta)
    except oci.exceptions.ServiceError as e:
        assert e.status == 400 and e.code == "InvalidParameter", e
try:
    schedule(30, datetime.timedelta(days=2))
    raise AssertionError("the CURRENT version was scheduled for deletion")
except oci.exceptions.ServiceError as e:
    assert e.status == 409 and e.code == "IncorrectState", e
schedule(1, datetime.timedelta(days=1, minutes=5))
try:
    secrets.get_secret_bundle(limited.id, version_number=1)
    raise AssertionError("a version pending deletion was served")
except oci.exceptions.ServiceError as e:
    assert e.status == 404, e
new_version(31)  # room again: 29 older versions in use, 1 pending deletion

# Key Management crypto (the vault's crypto endpoint): Encrypt, Decrypt with the same
# associated data, and a refusal with other associated data or a tampered ciphertext.
kms = oci.key_management.KmsCryptoClient(config, **kw)
key_id = "ocid1.key.oc1.local.sdk"
plain = base64.b64encode("Bearer tok-\u00e9".encode()).decode()
context = {"datasync.secret": "ds-a-erp"}
sealed = kms.encrypt(oci.key_management.models.EncryptDataDetails(
    key_id=key_id, plaintext=plain, associated_data=context)).data
assert sealed.ciphertext and sealed.ciphertext != plain, sealed
assert sealed.key_id == key_id and sealed.encryption_algorithm == "AES_256_GCM", sealed
opened = kms.decrypt(oci.key_management.models.DecryptDataDetails(
    key_id=key_id, ciphertext=sealed.ciphertext, associated_data=context)).data
assert opened.plaintext == plain, opened
assert opened.plaintext_checksum, opened
for wrong in [
    oci.key_management.models.DecryptDataDetails(
        key_id=key_id, ciphertext=sealed.ciphertext, associated_data={"datasync.secret": "ds-b-erp"}),
    oci.key_management.models.DecryptDataDetails(
        key_id=key_id, ciphertext=sealed.ciphertext[:-4] + "AAAA", associated_data=context),
    oci.key_management.models.DecryptDataDetails(
        key_id="ocid1.key.oc1.local.other", ciphertext=sealed.ciphertext, associated_data=context),
]:
    try:
        kms.decrypt(wrong)
        raise AssertionError("decrypt accepted %r" % wrong)
    except oci.exceptions.ServiceError as e:
        assert e.status == 400 and e.code == "InvalidParameter", e
try:
    kms.encrypt(oci.key_management.models.EncryptDataDetails(
        key_id=key_id, plaintext=base64.b64encode(b"x" * 4097).decode()))
    raise AssertionError("a 4097-byte plaintext was accepted")
except oci.exceptions.ServiceError as e:
    assert e.status == 400, e

# Notifications.
topics = oci.ons.NotificationControlPlaneClient(config, **kw)
topic = topics.create_topic(oci.ons.models.CreateTopicDetails(name="sdk-topic", compartment_id=compartment)).data
ons = oci.ons.NotificationDataPlaneClient(config, **kw)
published = ons.publish_message(topic.topic_id, oci.ons.models.MessageDetails(title="t", body="b")).data
assert published.message_id, published

# Object Storage.
objects = oci.object_storage.ObjectStorageClient(config, **kw)
namespace = objects.get_namespace().data
objects.create_bucket(namespace, oci.object_storage.models.CreateBucketDetails(name="sdk-bucket", compartment_id=compartment))
objects.put_object(namespace, "sdk-bucket", "dir/file.json", b'{"x":1}')
obj = objects.get_object(namespace, "sdk-bucket", "dir/file.json")
assert obj.data.content == b'{"x":1}', obj.data.content

# Conditional requests, as the parked keys use them: create-only, replace-if-unchanged, and a
# GET that answers 304 while the ETag is the one known.
etag = obj.headers["etag"]
try:
    objects.put_object(namespace, "sdk-bucket", "dir/file.json", b"again", if_none_match="*")
    raise AssertionError("if-none-match: * on an existing object succeeded")
except oci.exceptions.ServiceError as e:
    assert e.status == 412 and e.code == "IfNoneMatchFailed", (e.status, e.code)
try:
    objects.put_object(namespace, "sdk-bucket", "dir/file.json", b"stale", if_match="not-the-etag")
    raise AssertionError("a stale if-match succeeded")
except oci.exceptions.ServiceError as e:
    assert e.status == 412 and e.code == "IfMatchFailed", (e.status, e.code)
replaced = objects.put_object(namespace, "sdk-bucket", "dir/file.json", b'{"x":2}', if_match=etag)
assert replaced.headers["etag"] != etag
try:
    objects.get_object(namespace, "sdk-bucket", "dir/file.json", if_none_match=replaced.headers["etag"])
    raise AssertionError("if-none-match on the current ETag returned the object")
except oci.exceptions.ServiceError as e:
    # The SDK raises on every status outside 2xx, 304 included.
    assert e.status == 304, e.status
created = objects.put_object(namespace, "sdk-bucket", "dir/new.json", b"{}", if_none_match="*")
assert created.status == 200

print("OK")
