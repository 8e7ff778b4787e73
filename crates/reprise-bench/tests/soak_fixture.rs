//! The `soak` fixture answers each path the way `reprise-bench soak` expects, on Reprise's HTTP
//! front end with the soak's limits (a 1 s call timeout, a 64 MiB memory cap): `/ok` 200 `ok`,
//! `/trap` the trap answer, `/loop` the timeout, `/bomb` the memory limit, each classified by the
//! soak's own code. A soak that classified wrongly would count every misbehaving answer as
//! unexpected (or, worse, none).

#[path = "../src/soak/answer.rs"]
#[allow(dead_code)]
mod answer;

use answer::Kind;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use reprise_host::front::http::{HttpFrontEnd, Routing};
use reprise_host::pool::InstanceLimits;
use reprise_host::runtime::component::Source;
use reprise_host::runtime::instance::GuestEnvironment;
use reprise_host::setup::{HostSettings, Setup};
use reprise_test_programs::SOAK;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_path_gets_the_answer_the_soak_expects() {
    let settings = HostSettings {
        limits: InstanceLimits {
            max_memory: Some(64 << 20),
            timeout: Some(Duration::from_secs(1)),
            ..InstanceLimits::default()
        },
        concurrent: true,
        ..HostSettings::default()
    };
    let setup = Setup::prepare(Source::File(SOAK.into()), settings).unwrap();
    let manager = Arc::new(setup.manager(GuestEnvironment::default()).unwrap());
    let front = HttpFrontEnd::new(manager, Routing::default(), false, 0).unwrap();

    let mut paths = vec![("/", Kind::Ok), (answer::OK_PATH, Kind::Ok)];
    paths.extend(
        answer::MISBEHAVING
            .into_iter()
            .map(|(_, path, expected)| (path, expected)),
    );
    // The path after a failure is served too: a failed instance is replaced.
    paths.push((answer::OK_PATH, Kind::Ok));
    for (path, expected) in paths {
        let request = http::Request::get(format!("http://localhost{path}"))
            .body(
                Full::new(Bytes::new())
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .unwrap();
        let started = Instant::now();
        let response = front.handle(request).await;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let kind = answer::classify(status, &String::from_utf8_lossy(&body));
        assert_eq!(kind, expected, "{path}: {status} {body:?}");
        if expected == Kind::Timeout {
            assert!(started.elapsed() >= Duration::from_secs(1), "{path}");
        }
    }
    // Any other path is refused by the component itself.
    let request = http::Request::get("http://localhost/elsewhere")
        .body(
            Full::new(Bytes::new())
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .unwrap();
    assert_eq!(front.handle(request).await.status(), 404);
}
