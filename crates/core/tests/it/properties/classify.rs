//! The classifier: every outcome maps to exactly one decision, the one its rules give, and a
//! retry never goes beyond the attempt or the age bound.

use std::time::{Duration, SystemTime};

use datasync_core::classify::{
    classify, retry_or_exhaust, AttemptContext, AttemptOutcome, Decision, ErrorClass, RetryAfter,
    Rules, StatusSet, TransportFailure,
};
use proptest::prelude::*;

const T0: Duration = Duration::from_secs(1_800_000_000);

fn class() -> impl Strategy<Value = ErrorClass> {
    use ErrorClass::*;
    prop::sample::select(vec![
        ServiceUnavailable,
        TooManyRequests,
        RequestTimeout,
        Timeout,
        Connect,
        InternalServer,
        BadGateway,
        GatewayTimeout,
        RetryableStatus,
        Deadline,
        Unauthorized,
        Redirect,
        ClientError,
        Invalid,
        NotAllowed,
        SecretUnavailable,
        Exhausted,
    ])
}

fn retry_after() -> impl Strategy<Value = Option<RetryAfter>> {
    prop_oneof![
        Just(None),
        (0u64..10_000_000).prop_map(|s| Some(RetryAfter::Delay(Duration::from_secs(s)))),
        // An HTTP date from a day before to a year after T0.
        (0u64..(366 * 86_400)).prop_map(|s| Some(RetryAfter::At(
            SystemTime::UNIX_EPOCH + T0 - Duration::from_secs(86_400) + Duration::from_secs(s)
        ))),
    ]
}

fn outcome() -> impl Strategy<Value = AttemptOutcome> {
    use TransportFailure::*;
    prop_oneof![
        3 => (100u16..=599, retry_after())
            .prop_map(|(status, retry_after)| AttemptOutcome::Status { status, retry_after }),
        1 => prop::sample::select(vec![Connect, Timeout, Reset, InvalidRequest, Blocked])
            .prop_map(AttemptOutcome::Transport),
    ]
}

fn context() -> impl Strategy<Value = AttemptContext> {
    (
        1u32..40,
        0u64..(48 * 3600),
        any::<bool>(),
        any::<bool>(),
        0.0f64..1.0,
    )
        .prop_map(|(attempts, age, used_secret, secret_refreshed, jitter)| {
            let now = SystemTime::UNIX_EPOCH + T0;
            AttemptContext {
                attempts,
                received_at: now - Duration::from_secs(age),
                now,
                used_secret,
                secret_refreshed,
                jitter,
            }
        })
}

fn status_set() -> impl Strategy<Value = StatusSet> {
    let spec = prop::sample::select(vec![
        "408", "425", "429", "5xx", "!501", "409", "4xx", "!404", "500-504", "2xx", "3xx", "301",
    ]);
    prop::collection::vec(spec, 0..5).prop_map(|specs| StatusSet::parse(&specs).unwrap())
}

fn rules() -> impl Strategy<Value = Rules> {
    (
        prop_oneof![Just(None), status_set().prop_map(Some)],
        prop_oneof![Just(None), status_set().prop_map(Some)],
        1u32..12,
        0u64..(30 * 3600),
        0u64..120,
        0u64..7200,
        0u64..120,
    )
        .prop_map(|(retry, success, max_attempts, age, base, max, throttle)| {
            let mut rules = Rules::default();
            if let Some(retry) = retry {
                rules.retry_statuses = retry;
            }
            if let Some(success) = success {
                rules.success_statuses = success;
            }
            rules.max_attempts = max_attempts;
            rules.max_age = Duration::from_secs(age);
            rules.base_delay = Duration::from_secs(base);
            rules.max_delay = Duration::from_secs(max);
            rules.throttle_min_delay = Duration::from_secs(throttle);
            rules
        })
}

/// What a `Retry` decision must respect, whatever led to it.
fn check_retry(
    class: ErrorClass,
    not_before: SystemTime,
    ctx: &AttemptContext,
    rules: &Rules,
) -> Result<(), TestCaseError> {
    prop_assert!(class.is_retryable(), "{class:?} retried");
    // A deadline re-route and a secret not yet readable are not attempts at the target: only
    // the age bounds them.
    if !matches!(class, ErrorClass::Deadline | ErrorClass::SecretUnavailable) {
        prop_assert!(
            ctx.attempts < rules.max_attempts,
            "retry after attempt {} of at most {}",
            ctx.attempts,
            rules.max_attempts
        );
    }
    prop_assert!(not_before >= ctx.now, "a retry in the past");
    let wait = not_before.duration_since(ctx.now).unwrap();
    prop_assert!(wait <= rules.max_delay.max(rules.throttle_min_delay));
    let age = not_before.duration_since(ctx.received_at).unwrap();
    prop_assert!(
        age <= rules.max_age,
        "retry at age {age:?} beyond {:?}",
        rules.max_age
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_outcome_maps_to_the_one_decision_its_rules_give(
        outcome in outcome(),
        ctx in context(),
        rules in rules(),
    ) {
        let decision = classify(outcome, &ctx, &rules);
        prop_assert_eq!(decision, classify(outcome, &ctx, &rules), "not a function of its input");
        let success = matches!(outcome, AttemptOutcome::Status { status, .. } if rules.success_statuses.contains(status));
        let refresh = !success
            && matches!(outcome, AttemptOutcome::Status { status: 401 | 403, .. })
            && ctx.used_secret
            && !ctx.secret_refreshed;
        let retryable_failure = match outcome {
            AttemptOutcome::Status { status, .. } => rules.retry_statuses.contains(status),
            AttemptOutcome::Transport(t) => matches!(
                t,
                TransportFailure::Connect | TransportFailure::Reset | TransportFailure::Timeout
            ),
        };
        match decision {
            Decision::Delivered => prop_assert!(success),
            Decision::RefreshSecretAndRetry => prop_assert!(refresh),
            Decision::Retry { class, not_before } => {
                prop_assert!(!success && !refresh && retryable_failure);
                check_retry(class, not_before, &ctx, &rules)?;
            }
            Decision::Permanent { class: ErrorClass::Exhausted, last } => {
                prop_assert!(!success && !refresh && retryable_failure);
                prop_assert!(last.is_some_and(ErrorClass::is_retryable), "{last:?}");
            }
            Decision::Permanent { class, last } => {
                prop_assert!(!success && !refresh && !retryable_failure, "{outcome:?} -> {class:?}");
                prop_assert!(!class.is_retryable() && last.is_none());
            }
        }
    }

    #[test]
    fn a_failure_found_before_the_call_is_retried_only_within_the_bounds(
        class in class(),
        retry_after in retry_after(),
        ctx in context(),
        rules in rules(),
    ) {
        match retry_or_exhaust(class, retry_after, &ctx, &rules) {
            Decision::Retry { class: retried, not_before } => {
                prop_assert_eq!(retried, class);
                check_retry(class, not_before, &ctx, &rules)?;
            }
            Decision::Permanent { class: permanent, last } if !class.is_retryable() => {
                prop_assert_eq!(permanent, class);
                prop_assert_eq!(last, None);
            }
            Decision::Permanent { class: ErrorClass::Exhausted, last } => {
                prop_assert_eq!(last, Some(class));
            }
            other => prop_assert!(false, "{other:?} for a failure of class {class:?}"),
        }
    }

    #[test]
    fn the_first_attempts_are_retried_while_young_and_the_last_never(
        status in prop::sample::select(vec![408u16, 425, 429, 500, 502, 503, 504]),
        attempts in 1u32..16,
        jitter in 0.0f64..1.0,
    ) {
        // Under the default rules a message received now is retried until its attempts run out.
        let rules = Rules::default();
        let now = SystemTime::UNIX_EPOCH + T0;
        let ctx = AttemptContext { attempts, received_at: now, now, used_secret: false, secret_refreshed: false, jitter };
        let decision = classify(AttemptOutcome::Status { status, retry_after: None }, &ctx, &rules);
        let retried = matches!(decision, Decision::Retry { .. });
        prop_assert_eq!(retried, attempts < rules.max_attempts, "{:?}", decision);
    }
}
