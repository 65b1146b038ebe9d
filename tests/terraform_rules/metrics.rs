//! Issue 22: the alarms on the functions' custom metrics and the grant to post them.
//!
//! Every alarm in the metrics namespace must query metrics the functions publish
//! (`datasync_core::metrics::Metric`), parse with the emulator's MQL (so `datasync up` can run
//! the same query), take its threshold from a variable and notify the alerts topic; the five
//! the issue names must exist, beside the two on OCI's own metrics. The functions may `use
//! metrics` only where `target.metrics.namespace` is the configured namespace.

use datasync_core::metrics::Metric;
use datasync_emulator::monitoring::mql::{self, Statistic};
use hcl_edit::expr::Expression;

use super::Module;
use crate::terraform_support::{attr, source_text};

/// The text of a query attribute with each `${var.NAME}` replaced by the variable's default.
fn query_text(m: &Module, query: &Expression) -> Result<String, String> {
    let source = source_text(query);
    let inner = source
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or_else(|| format!("query {source} is not a string"))?
        .replace("\\\"", "\"");
    let mut out = String::new();
    let mut rest = inner.as_str();
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let end = rest[at..]
            .find('}')
            .ok_or_else(|| format!("unclosed interpolation in {inner}"))?;
        let reference = &rest[at + 2..at + end];
        let name = reference
            .strip_prefix("var.")
            .ok_or_else(|| format!("`{reference}` in {inner}: thresholds come from variables"))?;
        let default = m
            .default(name)
            .ok_or_else(|| format!("variable {name} (in {inner}) has no default"))?;
        out.push_str(&source_text(default));
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The alarms in the custom metrics' namespace: (name, query text with defaults, raw source).
fn metric_alarms(m: &Module) -> Vec<(String, Result<String, String>, String)> {
    m.resources("oci_monitoring_alarm")
        .into_iter()
        .filter(|(_, b)| {
            attr(b, "namespace").map(source_text).as_deref() == Some("var.metrics_namespace")
        })
        .map(|(name, b)| {
            let query = attr(b, "query");
            let text = query.map_or(Err("no query".to_owned()), |q| query_text(m, q));
            let raw = query.map(source_text).unwrap_or_default();
            (name.to_owned(), text, raw)
        })
        .collect()
}

/// The alarms on custom metrics: what the issue asks for, each parsing with the emulator's
/// MQL, on published metrics, with a variable threshold, to the alerts topic.
pub fn check_metric_alarms(m: &Module) -> Vec<String> {
    let mut problems = Vec::new();
    let published: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    let mut parsed = Vec::new();
    for (name, text, raw) in metric_alarms(m) {
        let here = format!("oci_monitoring_alarm.{name}");
        let text = match text {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{here}: {e}"));
                continue;
            }
        };
        if !raw.contains("${var.") {
            problems.push(format!("{here}: its threshold is not a variable: {raw}"));
        }
        let expr = match mql::parse(&text) {
            Ok(e) => e,
            Err(e) => {
                problems.push(format!(
                    "{here}: `{text}` is outside the MQL the emulator serves: {e}"
                ));
                continue;
            }
        };
        for q in std::iter::once(&expr.first).chain(expr.rest.iter().map(|(_, q)| q)) {
            if !published.contains(&q.metric.as_str()) {
                problems.push(format!(
                    "{here}: {} is not a metric the functions publish ({published:?})",
                    q.metric
                ));
            }
        }
        let body = m.resource("oci_monitoring_alarm", &name);
        let to_alerts = body
            .and_then(|b| attr(b, "destinations"))
            .map(source_text)
            .is_some_and(|d| d.contains("oci_ons_notification_topic.alerts.id"));
        if !to_alerts {
            problems.push(format!("{here}: does not notify the alerts topic"));
        }
        parsed.push(expr);
    }
    let has = |what: &str, f: &dyn Fn(&mql::Expr) -> bool| {
        if !parsed.iter().any(f) {
            Some(format!("no alarm on {what}"))
        } else {
            None
        }
    };
    let first = |e: &mql::Expr, metric: Metric| e.first.metric == metric.name();
    problems.extend(
        [
            has(
                "dead letters (MessagesDeadLettered ... .sum() > var)",
                &|e| {
                    first(e, Metric::MessagesDeadLettered)
                        && e.first.statistic == Statistic::Sum
                        && e.first.predicate.is_some()
                },
            ),
            has("the DeliveryLatency p99 per target host", &|e| {
                first(e, Metric::DeliveryLatency)
                    && e.first.statistic == Statistic::Percentile(0.99)
                    && e.first.grouping == Some(mql::Grouping::By(vec!["targetHost".into()]))
            }),
            has("the failure ratio per target host", &|e| {
                first(e, Metric::TargetFailureRatio)
                    && e.first.statistic == Statistic::Mean
                    && e.first.grouping == Some(mql::Grouping::By(vec!["targetHost".into()]))
            }),
            has("BatchAge (the backlog)", &|e| {
                first(e, Metric::BatchAge) && e.first.predicate.is_some()
            }),
            has(
                "no deliveries while messages are accepted (absent())",
                &|e| {
                    first(e, Metric::MessagesAccepted)
                        && e.rest.iter().any(|(join, q)| {
                            *join == mql::Join::And
                                && q.metric == Metric::MessagesDelivered.name()
                                && matches!(q.statistic, Statistic::Absent(_))
                        })
                },
            ),
        ]
        .into_iter()
        .flatten(),
    );
    for builtin in ["dead_letter_growth", "process_failures"] {
        if m.resource("oci_monitoring_alarm", builtin).is_none() {
            problems.push(format!(
                "oci_monitoring_alarm.{builtin} (on OCI's own metrics) is gone"
            ));
        }
    }
    problems
}

/// Each function may post metrics, in the configured namespace only.
pub fn check_metrics_grant(m: &Module) -> Vec<String> {
    let mut problems = Vec::new();
    let condition = "where target.metrics.namespace = '${var.metrics_namespace}'";
    let statements = m.statements();
    for s in statements.iter().filter(|s| s.contains(" metrics ")) {
        if !s.contains(" to use metrics ") || !s.trim_end_matches('"').ends_with(condition) {
            problems.push(format!(
                "`{s}`: the functions may only `use metrics` {condition}"
            ));
        }
    }
    for dg in ["dg_populate", "dg_process", "dg_retry"] {
        let granted = statements.iter().any(|s| {
            s.contains(&format!("dynamic-group ${{local.{dg}}} to use metrics"))
                && s.contains(condition)
        });
        if !granted {
            problems.push(format!(
                "local.{dg} may not post its metrics (use metrics {condition})"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_clean, assert_names, edited, terraform};
    use super::*;

    #[test]
    fn terraform_alarms_on_the_custom_metrics_and_lets_the_functions_post_them() {
        assert_clean(check_metric_alarms(&terraform()));
        assert_clean(check_metrics_grant(&terraform()));
    }

    #[test]
    fn a_broken_or_missing_alarm_is_named() {
        let m = edited(
            "DeliveryLatency[5m].groupBy(targetHost).percentile(0.99)",
            "DeliveryLatency[5m].groupBy(targetHost).median()",
        );
        assert_names(
            check_metric_alarms(&m),
            "outside the MQL the emulator serves",
        );
        let m = edited(
            "MessagesDeadLettered[5m].grouping().sum() > ${var.dead_letters_alarm_threshold}",
            "MessagesDeadLettered[5m].grouping().sum() > 3",
        );
        assert_names(check_metric_alarms(&m), "threshold is not a variable");
        let m = edited("TargetFailureRatio[5m]", "TargetFailRatio[5m]");
        assert_names(
            check_metric_alarms(&m),
            "not a metric the functions publish",
        );
        let m = edited(
            "&& MessagesDelivered[${var.no_delivery_alarm_minutes}m].grouping().absent()",
            "",
        );
        assert_names(
            check_metric_alarms(&m),
            "no deliveries while messages are accepted",
        );
        let m = edited(
            "resource \"oci_monitoring_alarm\" \"process_failures\"",
            "resource \"oci_monitoring_alarm\" \"process_failures_gone\"",
        );
        assert_names(
            check_metric_alarms(&m),
            "process_failures (on OCI's own metrics)",
        );
    }

    #[test]
    fn a_broad_or_missing_metrics_grant_is_named() {
        let m = edited(
            "${local.dg_process} to use metrics ${local.in_app} where target.metrics.namespace = '${var.metrics_namespace}'",
            "${local.dg_process} to use metrics ${local.in_app}",
        );
        let problems = check_metrics_grant(&m);
        assert_names(problems.clone(), "may only `use metrics`");
        assert_names(problems, "local.dg_process may not post");
        let m = edited(
            "${local.dg_retry} to use metrics",
            "${local.dg_retry} to manage metrics",
        );
        assert_names(check_metrics_grant(&m), "may only `use metrics`");
    }
}
