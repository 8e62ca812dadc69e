//! The floor of a native data plane, for bench/hop.ts: a reverse proxy on tokio and hyper, on one
//! thread like nginx's one worker and the gateway's one Bun thread, with a keep-alive pool to the
//! upstream, that does nothing but forward (it drops the bearer token, as the gateway does): no
//! authorization, request ids, timeouts or metrics. Whatever a native plat data plane adds comes on
//! top of this figure.
//!
//!   native-proxy LISTEN_ADDR UPSTREAM_HOST:PORT
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::args().nth(1).expect("listen address");
    let upstream: &'static str = Box::leak(std::env::args().nth(2).expect("upstream host:port").into_boxed_str());
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1024).build(connector);
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let client = client.clone();
        tokio::spawn(async move {
            let service = service_fn(move |mut req: Request<Incoming>| {
                let client = client.clone();
                let path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let uri = format!("http://{}{}", upstream, path);
                async move {
                    *req.uri_mut() = uri.parse().unwrap();
                    req.headers_mut().remove(AUTHORIZATION);
                    client.request(req).await
                }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
