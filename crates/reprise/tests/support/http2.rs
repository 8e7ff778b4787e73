//! An HTTP/2 client (prior knowledge, as gRPC clients and proxies speak it)
//! for tests that need what HTTP/1.1 cannot show: one stream reset while
//! its connection lives on.

use std::time::Duration;

/// One HTTP/2 connection to a test server, driven by a runtime of its own
/// so it stays open while the test thread waits.
pub struct Http2 {
    runtime: tokio::runtime::Runtime,
    client: h2::client::SendRequest<&'static [u8]>,
    addr: String,
}

impl Http2 {
    pub fn connect(addr: &str) -> Http2 {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let client = runtime.block_on(async {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (client, connection) = h2::client::Builder::new().handshake(tcp).await.unwrap();
            tokio::spawn(connection);
            client
        });
        Http2 {
            runtime,
            client,
            addr: addr.to_owned(),
        }
    }

    fn request(&self, path: &str) -> http::Request<()> {
        http::Request::get(format!("http://{}{path}", self.addr))
            .body(())
            .unwrap()
    }

    /// GET `path`: the status, and the body or the error it ended in. Each
    /// wait is bounded by 10 s.
    pub fn get(&mut self, path: &str) -> (u16, Result<String, h2::Error>) {
        let request = self.request(path);
        let client = self.client.clone();
        self.runtime.block_on(async move {
            let exchange = async move {
                let mut client = client.ready().await.unwrap();
                let (response, _) = client.send_request(request, true).unwrap();
                let response = response.await.unwrap();
                let status = response.status().as_u16();
                let mut body = response.into_body();
                let mut bytes = Vec::new();
                while let Some(chunk) = body.data().await {
                    match chunk {
                        Ok(chunk) => {
                            let _ = body.flow_control().release_capacity(chunk.len());
                            bytes.extend_from_slice(&chunk);
                        }
                        Err(e) => return (status, Err(e)),
                    }
                }
                (status, Ok(String::from_utf8(bytes).unwrap()))
            };
            tokio::time::timeout(Duration::from_secs(10), exchange)
                .await
                .expect("an HTTP/2 answer within 10 s")
        })
    }

    /// Sends GET `path`, waits `wait` without reading the answer, then
    /// resets the stream (`CANCEL`), as a client that gives up does. The
    /// connection stays open.
    pub fn get_then_reset(&mut self, path: &str, wait: Duration) {
        let request = self.request(path);
        let client = self.client.clone();
        self.runtime.block_on(async move {
            let mut client = client.ready().await.unwrap();
            let (response, mut stream) = client.send_request(request, true).unwrap();
            tokio::time::sleep(wait).await;
            stream.send_reset(h2::Reason::CANCEL);
            drop(response);
        });
    }
}
