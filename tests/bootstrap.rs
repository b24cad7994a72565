//! The `bootstrap` binary against a stand-in Lambda Runtime API: it answers an
//! invocation with the envelope, and a missing variable is reported once, clearly,
//! through `/runtime/init/error`.

mod moto_env;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

/// One request the binary sent to the Runtime API.
#[derive(Debug)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// Serves the Runtime API on an ephemeral port: the first `GET …/next` gets `event`,
/// later ones hang (as the real API does between invocations).
fn runtime_api(event: &'static str) -> (String, mpsc::Receiver<Seen>) {
    runtime_api_serving(vec![event.to_string()], 60_000)
}

/// The Runtime API serving `events` in order (request ids `req-0001`, `req-0002`, …);
/// once they are served, `GET …/next` hangs.
fn runtime_api_serving(events: Vec<String>, time_limit_ms: u128) -> (String, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (tx, rx) = mpsc::channel();
    let queue = Arc::new(Mutex::new(events.into_iter().enumerate().collect::<VecDeque<_>>()));
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            let queue = queue.clone();
            thread::spawn(move || serve(stream, tx, queue, time_limit_ms));
        }
    });
    (addr, rx)
}

type Queue = Arc<Mutex<VecDeque<(usize, String)>>>;

fn serve(stream: TcpStream, tx: mpsc::Sender<Seen>, queue: Queue, time_limit_ms: u128) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let is_next = path.ends_with("/invocation/next");
        let _ = tx.send(Seen {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        if is_next {
            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
            let Some((n, event)) = next else {
                thread::sleep(Duration::from_secs(60));
                return;
            };
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + time_limit_ms;
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: req-{:04}\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:foundry-vtt-instance-management\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793\r\nContent-Length: {}\r\n\r\n{event}",
                n + 1,
                event.len()
            );
            let _ = out.write_all(resp.as_bytes());
        } else {
            let _ = out.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}");
        }
    }
}

fn bootstrap(api: &str, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bootstrap"));
    cmd.env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "foundry-vtt-instance-management")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

fn wait_for(rx: &mpsc::Receiver<Seen>, what: impl Fn(&Seen) -> bool) -> Seen {
    loop {
        let seen = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the runtime API was called");
        if what(&seen) {
            return seen;
        }
    }
}

#[test]
fn a_missing_variable_is_reported_once_through_the_init_error_path() {
    let (api, rx) = runtime_api("{}");
    let vars: Vec<(&str, &str)> = foundry_lambda::config::test_vars()
        .into_iter()
        .filter(|(k, _)| *k != "DOMAIN_NAME" && *k != "VPC_ID")
        .collect();
    let child = bootstrap(&api, &vars).spawn().expect("spawn bootstrap");
    let seen = wait_for(&rx, |s| s.method == "POST");
    assert_eq!(seen.path, "/2018-06-01/runtime/init/error");
    assert!(seen
        .headers
        .iter()
        .any(|(k, v)| k == "lambda-runtime-function-error-type" && v == "Runtime.InitError"));
    let body: serde_json::Value = serde_json::from_str(&seen.body).expect("JSON error report");
    assert_eq!(
        body["errorMessage"],
        "Invalid configuration: missing required environment variables: VPC_ID, DOMAIN_NAME"
    );
    let out = child.wait_with_output().expect("bootstrap exits");
    assert!(!out.status.success(), "bootstrap must exit with an error");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("VPC_ID"), "the cold-start error is logged: {stdout}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "no panic");
}

#[test]
fn an_invocation_gets_the_envelope_and_its_log_lines_carry_the_request_id() {
    let (api, rx) = runtime_api("{}");
    let mut child = bootstrap(&api, &foundry_lambda::config::test_vars())
        .spawn()
        .expect("spawn bootstrap");
    let seen = wait_for(&rx, |s| s.method == "POST");
    assert_eq!(seen.path, "/2018-06-01/runtime/invocation/req-0001/response");
    assert_eq!(
        seen.body,
        r#"{"statusCode":400,"headers":{"Content-Type":"application/json"},"body":"{\"error\":\"Missing required parameters: action, userId\"}"}"#
    );
    child.kill().expect("kill");
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.contains("\"requestId\""))
        .map(|l| serde_json::from_str(l).expect("JSON log line"))
        .collect();
    assert!(!lines.is_empty(), "{stdout}");
    assert!(lines.iter().all(|l| l["requestId"] == "req-0001"), "{stdout}");
}

/// Every realistic event, plus some that carry secrets, through the real binary at TRACE
/// against the local AWS: no password, token, admin key or secret value reaches the log,
/// and every one is answered with an envelope.
#[test]
fn at_trace_no_event_leaves_a_secret_in_the_log() {
    let aws = moto_env::local_aws();
    let uid = moto_env::unique_user_id();
    let password = "Trace-Pa55word-that-must-stay-hidden";
    let token = aws.var("KOFI_VERIFICATION_TOKEN").to_string();
    // Every recorded event but those that start or tear down servers of the events'
    // shared user (their waits would only make this slow; the secret-bearing create
    // below makes real calls with a password and a secret value).
    let slow = [
        "create",
        "start",
        "stop",
        "destroy",
        "delete",
        "prepare",
        "auto-shutdown",
        "admin-",
        "end-scheduled",
        "cancel",
    ];
    let mut events: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/events"))
        .expect("events/")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            !slow
                .iter()
                .any(|s| name.starts_with(s) || name.contains(&format!("-{s}")))
        })
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    events.push(
        serde_json::json!({"action":"create","userId":uid,"sanitizedUsername":format!("tr{}", &uid[uid.len() - 10..]),
                           "foundryUsername":"gm@example.com","foundryPassword":password})
        .to_string(),
    );
    events.push(
        serde_json::json!({"action":"create","userId":"1","sanitizedUsername":"x","foundryPassword":97531864})
            .to_string(),
    );
    events.push(
        serde_json::json!({"action":"kofi-webhook","body": serde_json::json!({"verification_token": token,
            "message_id": format!("trace-{uid}"), "type":"Donation","amount":"1.00","currency":"USD",
            "from_name":"Jo","message":"Discord: 42","email":"jo.private@example.com"}).to_string()})
        .to_string(),
    );
    events.push(format!(
        r#"{{"action":"status","userId":"1","x":{}{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    ));
    let count = events.len();
    events.sort();
    // A short time limit: the actions that wait (destroy's cleanup) give up early.
    let (api, rx) = runtime_api_serving(events, 20_000);
    let mut vars: Vec<(&str, &str)> = aws.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    vars.push(("RUST_LOG", "trace"));
    let mut child = bootstrap(&api, &vars).spawn().expect("spawn bootstrap");
    // Read the output while the binary runs: at TRACE it writes more than a pipe holds.
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let mut answers = Vec::new();
    for _ in 0..count {
        let seen = loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(s) if s.method == "POST" => break s,
                Ok(_) => continue,
                Err(_) => {
                    let _ = child.kill();
                    let log = stdout.join().unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(15).collect();
                    panic!(
                        "only {} of {count} answered; the log ends with:\n{}",
                        answers.len(),
                        tail.join("\n")
                    );
                }
            }
        };
        assert!(
            seen.path.ends_with("/response"),
            "an envelope, not an error: {} {}",
            seen.path,
            seen.body
        );
        let envelope: serde_json::Value = serde_json::from_str(&seen.body).expect("JSON envelope");
        assert!(envelope["body"].is_string(), "{envelope}");
        answers.push(envelope);
    }
    child.kill().expect("kill");
    let _ = child.wait();
    let log = format!(
        "{}{}",
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default()
    );
    assert!(log.lines().count() > count, "the log was captured");
    let mut secrets = vec![
        password.to_string(),
        token,
        "97531864".to_string(),
        "jo.private@example.com".to_string(),
    ];
    for a in &answers {
        let body: serde_json::Value = serde_json::from_str(a["body"].as_str().unwrap_or("{}")).unwrap_or_default();
        if let Some(key) = body["adminKey"].as_str() {
            secrets.push(key.to_string());
        }
    }
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "{secret} is in the log");
    }
}
