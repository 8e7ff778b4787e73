//! wasi:config (`--config NAME=VALUE`) and wasi:keyvalue (`--keyvalue KEY=VALUE`) end to end,
//! through the `config-keyvalue` fixture: a wasi:http handler answering `/config/NAME` from
//! `wasi:config/store` and `/kv/BUCKET/KEY` from `wasi:keyvalue/{store,atomics}`.
//!
//! What Reprise links is wasmtime's own `wasmtime-wasi-config` (`wasi:config@0.2.0-rc.1`) and
//! `wasmtime-wasi-keyvalue` (`wasi:keyvalue@0.2.0-draft`: `store`, `atomics`, `batch`) 48.0.8.
//! The key-value store is wasmtime's in-memory one: a single bucket, named `""` (any other
//! identifier is `no-such-store`), whose seed data is every `--keyvalue KEY=VALUE`. Each instance
//! gets its own copy of the seed (`InstanceState::new` builds a `WasiKeyValueCtx` per instance),
//! and each `store.open` clones that seed again into a new bucket resource, so writes live only
//! as long as the bucket handle that made them: the fixture keeps its handle for the instance's
//! life, so under reuse a write is read back by the instance's later requests, while the next
//! instance (or a new `open`) starts from the seed again. Nothing is shared across instances.

mod support;

use reprise_test_programs::{COMMAND, CONFIG_KEYVALUE};
use support::{Server, run};

/// GET `path`, expecting `status`; the body.
fn get(server: &Server, path: &str, status: u16) -> String {
    let response = server.get(path);
    assert_eq!(
        response.status,
        status,
        "GET {path}: {}\nserver stderr:\n{}",
        response.body,
        server.stderr()
    );
    response.body
}

/// GET `path`, expecting 200; the body and the instance that answered (servers here run with
/// `--expose-instance-id`).
fn get_ok(server: &Server, path: &str) -> (String, u64) {
    let response = server.get(path);
    assert_eq!(
        response.status,
        200,
        "GET {path}: {}\nserver stderr:\n{}",
        response.body,
        server.stderr()
    );
    (
        response.body,
        response.instance.expect("x-reprise-instance"),
    )
}

/// POST `body` to `path`, expecting 200; the body and the instance that answered.
fn post(server: &Server, path: &str, body: &str) -> (String, u64) {
    let (instance, answer) = server.post(path, body.as_bytes());
    (
        String::from_utf8(answer).unwrap(),
        instance.expect("x-reprise-instance"),
    )
}

#[test]
fn config_variables_are_served_and_missing_ones_are_none() {
    let server = Server::start(&[
        CONFIG_KEYVALUE,
        "--config",
        "greeting=hello",
        // Split at the first `=`: the value keeps the rest.
        "--config",
        "motto=a=b",
        "--config",
        "empty=",
    ]);
    assert_eq!(get(&server, "/config/greeting", 200), "hello");
    assert_eq!(get(&server, "/config/motto", 200), "a=b");
    assert_eq!(get(&server, "/config/empty", 200), "");
    assert_eq!(
        get(&server, "/config/missing", 404),
        "no such config missing\n"
    );
    // `get-all`: exactly the flags' variables.
    assert_eq!(
        get(&server, "/config", 200),
        "empty=\ngreeting=hello\nmotto=a=b\n"
    );

    // Without `--config` the store is there, and empty.
    let bare = Server::start(&[CONFIG_KEYVALUE]);
    assert_eq!(
        get(&bare, "/config/greeting", 404),
        "no such config greeting\n"
    );
    assert_eq!(get(&bare, "/config", 200), "");
}

#[test]
fn keyvalue_seed_data_is_in_the_bucket_named_empty() {
    // `--keyvalue KEY=VALUE` seeds wasmtime's in-memory store, whose one bucket is `""` (the
    // fixture's `/kv//KEY`); the value is the bytes after the first `=`.
    let server = Server::start(&[
        CONFIG_KEYVALUE,
        "--keyvalue",
        "greeting=hi",
        "--keyvalue",
        "count=41",
        "--keyvalue",
        "pair=k=v",
        "--expose-instance-id",
    ]);
    assert_eq!(get(&server, "/kv//greeting", 200), "hi");
    assert_eq!(get(&server, "/kv//pair", 200), "k=v");
    assert_eq!(get(&server, "/kv//count", 200), "41");
    assert_eq!(get(&server, "/kv//missing", 404), "no such key missing\n");
    // Any other bucket is `no-such-store`, seeded or not.
    assert_eq!(
        get(&server, "/kv/greeting/greeting", 404),
        "no such store greeting\n"
    );
    assert_eq!(
        get(&server, "/kv/default/greeting", 404),
        "no such store default\n"
    );
    // `atomics.increment` works on a seeded decimal value...
    assert_eq!(post(&server, "/kv//count/incr", "").0, "42");
    // ... and creates a missing key with the delta.
    assert_eq!(post(&server, "/kv//fresh-counter/incr", "").0, "1");
    // Config and key-value are separate: `--keyvalue` sets no config variable.
    assert_eq!(
        get(&server, "/config/greeting", 404),
        "no such config greeting\n"
    );
}

#[test]
fn incrementing_a_value_that_is_not_a_number_fails() {
    let server = Server::start(&[CONFIG_KEYVALUE, "--keyvalue", "greeting=hi"]);
    let body = get(&server, "/kv//greeting/incr", 405);
    assert_eq!(body, "method not allowed\n");
    let url = format!("http://{}/kv//greeting/incr", server.addr);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent.post(&url).send(&[][..]).unwrap();
    assert_eq!(response.status(), 500);
    let body = response.body_mut().read_to_string().unwrap();
    assert!(
        body.starts_with("cannot increment greeting: other: "),
        "{body}"
    );
}

#[test]
fn under_reuse_a_write_is_read_by_the_instances_next_requests() {
    let server = Server::start(&[
        CONFIG_KEYVALUE,
        "--policy",
        "reuse",
        "--expose-instance-id",
        "--keyvalue",
        "color=red",
        "--keyvalue",
        "count=41",
    ]);
    let (answer, writer) = post(&server, "/kv//color", "blue");
    assert_eq!(answer, "stored\n");
    let (value, reader) = get_ok(&server, "/kv//color");
    assert_eq!(
        reader, writer,
        "serial requests under reuse share an instance"
    );
    assert_eq!(value, "blue");
    // A new key, too.
    assert_eq!(post(&server, "/kv//shape", "round").0, "stored\n");
    assert_eq!(get_ok(&server, "/kv//shape"), ("round".into(), writer));
    // Increments accumulate on the instance.
    assert_eq!(post(&server, "/kv//count/incr", ""), ("42".into(), writer));
    assert_eq!(post(&server, "/kv//count/incr", ""), ("43".into(), writer));

    // The write belongs to the bucket handle, not to the instance: a new `open` on the same
    // instance starts from the seed data again (the README's "every `open` of the bucket
    // starting from the seed data").
    let (value, reopened_on) = get_ok(&server, "/kv//color?reopen");
    assert_eq!(reopened_on, writer);
    assert_eq!(value, "red");
    assert_eq!(get(&server, "/kv//shape", 404), "no such key shape\n");
    assert_eq!(get(&server, "/kv//count", 200), "41");
}

#[test]
fn the_store_is_not_shared_across_instances() {
    // `--policy fresh`: every request a new instance, each with its own copy of the seed data.
    let server = Server::start(&[
        CONFIG_KEYVALUE,
        "--policy",
        "fresh",
        "--expose-instance-id",
        "--keyvalue",
        "color=red",
        "--keyvalue",
        "count=41",
    ]);
    let (answer, writer) = post(&server, "/kv//color", "blue");
    assert_eq!(answer, "stored\n");
    let (value, reader) = get_ok(&server, "/kv//color");
    assert_ne!(reader, writer, "fresh instances");
    assert_eq!(value, "red", "the write stayed in its instance");
    assert_eq!(post(&server, "/kv//shape", "round").0, "stored\n");
    assert_eq!(get(&server, "/kv//shape", 404), "no such key shape\n");
    // Every instance increments the seed's value.
    let (first, a) = post(&server, "/kv//count/incr", "");
    let (second, b) = post(&server, "/kv//count/incr", "");
    assert_ne!(a, b);
    assert_eq!((first.as_str(), second.as_str()), ("42", "42"));
}

#[test]
fn malformed_config_and_keyvalue_flags_are_refused_naming_the_flag() {
    let output_path = support::scratch_path("config-keyvalue-preinit.wasm");
    let output_path = output_path.to_str().unwrap();
    let commands: &[&[&str]] = &[
        &["serve", CONFIG_KEYVALUE],
        &["run", COMMAND],
        &["call", CONFIG_KEYVALUE, "f()"],
        &["check", CONFIG_KEYVALUE],
        &["preinit", CONFIG_KEYVALUE, "-o", output_path],
    ];
    for command in commands {
        for (flag, bad) in [
            ("--config", "novalue"),
            ("--config", "=value"),
            ("--keyvalue", "novalue"),
            ("--keyvalue", "=value"),
        ] {
            let mut args = command.to_vec();
            args.extend([flag, bad]);
            let output = run(&args);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
            // clap's `invalid value 'novalue' for '--config <NAME=VALUE>': `novalue` is not
            // `NAME=VALUE``.
            assert!(
                stderr.contains(&format!("invalid value '{bad}' for '{flag} ")),
                "{args:?}: {stderr}"
            );
            assert!(
                stderr.contains(&format!("`{bad}` is not `NAME=VALUE`")),
                "{args:?}: {stderr}"
            );
        }
    }
    assert!(!std::path::Path::new(output_path).exists());
}
