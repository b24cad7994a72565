//! How the SDK is set up: one `SdkConfig` and one HTTPS client for the process, and SDK
//! clients built on first use, so that a cold start pays only for the clients its
//! invocation needs.
//!
//! Building an SDK client is not free: each one parses its service's endpoint partitions
//! (JSON and regexes), and its HTTP client's "validate base client config" hook builds a
//! TLS connector (loading the system's root certificates once per process and parsing them
//! into a root store for every client) only to throw it away. With nine clients built at
//! cold start that was most of the time before the first `GET …/invocation/next`
//! (docs/performance.md has the profile and the figures). Most invocations use one or
//! two services: `status` and `list-all` only DynamoDB.
//!
//! * [`LazyClient`] builds its client on the first call, from the one shared `SdkConfig`.
//! * [`shared_http_client`] is one HTTPS client for every SDK client and credentials provider,
//!   wrapped in [`DeferredHttpClient`] so that building a client does not build a throw-away
//!   TLS connector. The connector (and the root store) is built once, on the first request,
//!   and cached by the HTTP client for every SDK client that shares it.

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// An SDK client that is built from `sdk` by `build` the first time it is used.
///
/// It dereferences to the client, so an adapter calls `self.client.get_item()` as before.
pub struct LazyClient<C> {
    sdk: aws_config::SdkConfig,
    build: fn(&aws_config::SdkConfig) -> C,
    client: OnceLock<C>,
}

impl<C> LazyClient<C> {
    pub fn new(sdk: &aws_config::SdkConfig, build: fn(&aws_config::SdkConfig) -> C) -> Self {
        LazyClient {
            sdk: sdk.clone(),
            build,
            client: OnceLock::new(),
        }
    }

    /// Whether the client has been built (tests).
    pub fn is_built(&self) -> bool {
        self.client.get().is_some()
    }
}

impl<C> Deref for LazyClient<C> {
    type Target = C;

    fn deref(&self) -> &C {
        self.client.get_or_init(|| (self.build)(&self.sdk))
    }
}

impl<C> fmt::Debug for LazyClient<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyClient")
            .field("built", &self.is_built())
            .finish_non_exhaustive()
    }
}

/// The shared HTTP client without its eager "validate base client config" step.
///
/// The default HTTP client implements that hook by building a complete TLS connector, so
/// that certificate problems show when a client is built. Every SDK client built from the
/// same `SdkConfig` does it again, and the connector is dropped at once; the one requests
/// use is built (and cached per connector settings) by `http_connector` at the first
/// request. Built lazily, a client is used right after it is built, so the check would only
/// double the work. Everything else is delegated.
#[derive(Debug, Clone)]
pub struct DeferredHttpClient<H>(pub H);

impl<H: HttpClient> HttpClient for DeferredHttpClient<H> {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn validate_final_config(&self, runtime_components: &RuntimeComponents, cfg: &ConfigBag) -> Result<(), BoxError> {
        self.0.validate_final_config(runtime_components, cfg)
    }

    fn connector_metadata(&self) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// The HTTPS client the SDK would build for each client by default (hyper 1, rustls with
/// aws-lc, proxy settings from the environment), built once, to be shared by every SDK client
/// and credentials provider of the process, with its TLS setup deferred to the first request.
///
/// Shared, it keeps one connector (one TLS configuration, one root store) and one connection
/// pool for the process, instead of one of each per SDK client.
pub fn shared_http_client() -> SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
    use aws_smithy_http_client::tls::Provider;
    use aws_smithy_http_client::{Builder, ConnectorBuilder};

    let client = Builder::new().build_with_connector_fn(|settings, runtime_components| {
        let mut connector = ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = runtime_components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    });
    SharedHttpClient::new(DeferredHttpClient(client))
}

/// The process's one `SdkConfig`: standard retries with jittered backoff (3 attempts),
/// explicit timeouts, the [`shared_http_client`], credentials and endpoint from the
/// environment (`AWS_ENDPOINT_URL` points every client at moto locally).
pub async fn load_config(region: &str) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    // Lambda always puts the function's credentials in the environment (AWS_ACCESS_KEY_ID,
    // AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), the default chain's first link. Asking the
    // environment directly spares building the rest of the chain (profile files, web identity
    // with its STS client, ECS and IMDS clients) at every cold start.
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        loader = loader.credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new());
    }
    loader
        .http_client(shared_http_client())
        .region(Region::new(region.to_string()))
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(20))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .load()
        .await
}

/// `sdk`, with the [`shared_http_client`] if it has no HTTP client of its own (a caller that
/// set one keeps it).
pub fn with_shared_http_client(sdk: &aws_config::SdkConfig) -> aws_config::SdkConfig {
    match sdk.http_client() {
        Some(_) => sdk.clone(),
        None => sdk.to_builder().http_client(shared_http_client()).build(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    static BUILT: AtomicUsize = AtomicUsize::new(0);

    fn config() -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build()
    }

    #[test]
    fn a_client_is_built_once_on_first_use() {
        let lazy = LazyClient::new(&config(), |sdk| {
            BUILT.fetch_add(1, Ordering::SeqCst);
            sdk.region().map(|r| r.to_string())
        });
        assert!(!lazy.is_built());
        assert_eq!(BUILT.load(Ordering::SeqCst), 0);
        assert_eq!(lazy.as_deref(), Some("us-east-1"));
        assert_eq!(lazy.as_deref(), Some("us-east-1"));
        assert!(lazy.is_built());
        assert_eq!(BUILT.load(Ordering::SeqCst), 1);
    }
}
