# Notifications: one topic for everything people must hear about: the process/retry per-batch
# failure summaries, the dead-letter connector, and the Monitoring alarms.

resource "oci_ons_notification_topic" "alerts" {
  compartment_id = local.compartment_id
  name           = "${var.name_prefix}-alerts"
  description    = "datasync: permanent delivery failures, dead-letter messages and alarms"
  freeform_tags  = var.freeform_tags
}

# OCI mails a confirmation link; the subscription stays PENDING until it is followed.
resource "oci_ons_subscription" "email" {
  compartment_id = local.compartment_id
  topic_id       = oci_ons_notification_topic.alerts.id
  protocol       = "EMAIL"
  endpoint       = var.notification_email
  freeform_tags  = var.freeform_tags
}
