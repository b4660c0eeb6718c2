//! Figures through the `metrics` facade (feature `metrics`), for whatever
//! exporter the application installed (Prometheus, OpenTelemetry, ...).
//! Labels are bounded: the namespace, the keyspace prefix, the operation, a
//! reason or an error kind; never keys or values. The names are listed in
//! the guide's observability page.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::SharedString;

/// The labels of one keyspace on one handle.
#[derive(Clone, Debug)]
pub(crate) struct Labels {
    namespace: SharedString,
    keyspace: SharedString,
}

impl Labels {
    pub(crate) fn new(namespace: Option<&str>, prefix: &str) -> Self {
        let shared = |text: &str| SharedString::from_shared(std::sync::Arc::from(text));
        Labels {
            namespace: shared(namespace.unwrap_or_default()),
            keyspace: shared(prefix),
        }
    }

    /// The counter `name` of this keyspace. Registered now: install the
    /// recorder before making views.
    /// With a `reason`, the counter carries it as a label.
    pub(crate) fn counter(
        &self,
        name: &'static str,
        reason: Option<&'static str>,
    ) -> metrics::Counter {
        let (namespace, keyspace) = (self.namespace.clone(), self.keyspace.clone());
        match reason {
            Some(reason) => {
                metrics::counter!(name, "namespace" => namespace, "keyspace" => keyspace, "reason" => reason)
            }
            None => metrics::counter!(name, "namespace" => namespace, "keyspace" => keyspace),
        }
    }

    /// How long one loader call took.
    pub(crate) fn load_took(&self, took: Duration) {
        let labels = [
            ("namespace", self.namespace.clone()),
            ("keyspace", self.keyspace.clone()),
        ];
        metrics::histogram!("cache_load_seconds", &labels).record(took.as_secs_f64());
    }

    /// Local copies dropped because Redis said their keys changed.
    pub(crate) fn invalidated(&self) {
        let labels = [
            ("namespace", self.namespace.clone()),
            ("keyspace", self.keyspace.clone()),
        ];
        metrics::counter!("cache_local_invalidations_total", &labels).increment(1);
    }

    /// The local tier emptied, and why.
    pub(crate) fn flushed(&self, reason: &'static str) {
        metrics::counter!(
            "cache_local_flushes_total",
            "namespace" => self.namespace.clone(),
            "keyspace" => self.keyspace.clone(),
            "reason" => reason
        )
        .increment(1);
    }
}

/// The call-time histograms of one handle's most frequent calls, each
/// registered on its first use: naming a metric builds its key (an
/// allocation), which a GET or SET should not pay every time.
#[derive(Debug, Default)]
pub(crate) struct CallTimes {
    get: OnceLock<metrics::Histogram>,
    set: OnceLock<metrics::Histogram>,
    del: OnceLock<metrics::Histogram>,
}

impl CallTimes {
    /// One Redis call: how long it took, and how it failed if it did.
    pub(crate) fn record(
        &self,
        operation: &'static str,
        took: Duration,
        error: Option<&crate::Error>,
    ) {
        let kept = match operation {
            "GET" => &self.get,
            "SET" => &self.set,
            "DEL" => &self.del,
            _ => return backend_call(operation, took, error),
        };
        let histogram = kept.get_or_init(|| call_histogram(operation));
        histogram.record(took.as_secs_f64());
        if let Some(error) = error {
            backend_error(operation, error);
        }
    }
}

fn call_histogram(operation: &'static str) -> metrics::Histogram {
    metrics::histogram!("cache_backend_call_seconds", "operation" => operation)
}

/// One Redis call: how long it took, and how it failed if it did.
pub(crate) fn backend_call(operation: &'static str, took: Duration, error: Option<&crate::Error>) {
    call_histogram(operation).record(took.as_secs_f64());
    if let Some(error) = error {
        backend_error(operation, error);
    }
}

/// One failed Redis call, counted by its kind.
fn backend_error(operation: &'static str, error: &crate::Error) {
    let kind = match error {
        crate::Error::Timeout { .. } | crate::Error::ConnectTimeout { .. } => {
            metrics::counter!("cache_timeouts_total", "operation" => operation).increment(1);
            return;
        }
        crate::Error::Connection { .. } => "connection",
        error if error.is_wrong_type() => "wrong_type",
        _ => "server",
    };
    metrics::counter!("cache_backend_errors_total", "operation" => operation, "kind" => kind)
        .increment(1);
}
