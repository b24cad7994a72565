//! A small HTTP client for services outside AWS, on the HTTPS stack the binary already
//! carries: the AWS SDK's own connector (hyper 1 and rustls with aws-lc, proxy settings
//! from the environment), not a second TLS stack.
//!
//! A GET, and a POST of a JSON body, each with a time budget that covers connecting, the
//! answer and its body; the body is read up to a limit. Every failure is an
//! [`HttpFailure`], never a panic. An `Authorization` value is held as [`Sensitive`] and is
//! never logged or shown by `Debug`.

use std::sync::OnceLock;
use std::time::Duration;

use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::Provider;
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_runtime_api::http::Request;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;

use crate::secret::Sensitive;

/// Why a request brought no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpFailure {
    /// The URL cannot be requested.
    #[error("invalid URL")]
    InvalidUrl,
    /// The time budget ran out (connecting, waiting for the answer or reading its body).
    #[error("timeout")]
    Timeout,
    /// No connection could be made (refused, unreachable, DNS, TLS).
    #[error("refused")]
    Refused,
    /// The connection broke, or the answer was not HTTP.
    #[error("broken")]
    Broken,
}

/// An answer: its status code, its body up to the limit asked for, and the one header a
/// caller needs to be polite (`retry-after`, in seconds, as sent).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: Vec<u8>,
    pub retry_after: Option<String>,
}

/// The client: one connector (one TLS configuration, one connection pool) per process,
/// built at the first request.
#[derive(Debug, Default)]
pub struct HttpClient {
    connector: OnceLock<Connector>,
}

impl HttpClient {
    pub fn new() -> Self {
        HttpClient::default()
    }

    fn connector(&self) -> &Connector {
        self.connector.get_or_init(|| {
            let mut builder = Connector::builder().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
            builder.set_proxy_config(Some(aws_smithy_http_client::proxy::ProxyConfig::from_env()));
            builder.build()
        })
    }

    /// `GET url`, all of it within `budget`; reads at most `max_body` bytes of the body
    /// (the rest is left unread).
    pub async fn get(&self, url: &str, budget: Duration, max_body: usize) -> Result<HttpAnswer, HttpFailure> {
        let mut request = Request::get(url).map_err(|_| HttpFailure::InvalidUrl)?;
        let headers = request.headers_mut();
        headers.insert("accept", "application/json");
        headers.insert("user-agent", "foundry-lambda");
        self.exchange(request, budget, max_body).await
    }

    /// `POST url` with a JSON `body` and, when given, an `Authorization` header; all of it
    /// within `budget`, at most `max_body` bytes of the answer read.
    pub async fn post_json(
        &self,
        url: &str,
        authorization: Option<&Sensitive>,
        body: Vec<u8>,
        budget: Duration,
        max_body: usize,
    ) -> Result<HttpAnswer, HttpFailure> {
        let mut request = Request::new(SdkBody::from(body));
        request.set_method("POST").map_err(|_| HttpFailure::InvalidUrl)?;
        request.set_uri(url).map_err(|_| HttpFailure::InvalidUrl)?;
        let headers = request.headers_mut();
        headers.insert("accept", "application/json");
        headers.insert("content-type", "application/json");
        headers.insert("user-agent", "foundry-lambda (https://github.com/foundry-lambda, 1)");
        if let Some(auth) = authorization {
            // A value that is not a valid header is refused without echoing it.
            headers
                .try_insert("authorization", auth.expose().to_string())
                .map_err(|_| HttpFailure::InvalidUrl)?;
        }
        self.exchange(request, budget, max_body).await
    }

    async fn exchange(&self, request: Request, budget: Duration, max_body: usize) -> Result<HttpAnswer, HttpFailure> {
        let exchange = async {
            let response = self.connector().call(request).await.map_err(|e| {
                if e.is_timeout() {
                    HttpFailure::Timeout
                } else if e.is_io() {
                    HttpFailure::Refused
                } else if e.is_user() {
                    HttpFailure::InvalidUrl
                } else {
                    HttpFailure::Broken
                }
            })?;
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").map(str::to_string);
            let mut stream = ByteStream::new(response.into_body());
            let mut body = Vec::new();
            while body.len() < max_body {
                match stream.next().await {
                    None => break,
                    Some(Ok(chunk)) => {
                        let room = max_body - body.len();
                        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    }
                    Some(Err(_)) => return Err(HttpFailure::Broken),
                }
            }
            Ok(HttpAnswer {
                status,
                body,
                retry_after,
            })
        };
        // The time budget is real time (a network wait), not the invocation's clock.
        match tokio::time::timeout(budget, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(HttpFailure::Timeout),
        }
    }
}
