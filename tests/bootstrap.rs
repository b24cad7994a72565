//! The `bootstrap` binary against a stand-in Lambda Runtime API: it answers an
//! invocation with the envelope, and a missing variable is reported once, clearly,
//! through `/runtime/init/error`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
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
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut served = false;
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            let give_event = !served;
            served = true;
            thread::spawn(move || serve(stream, tx, give_event, event));
        }
    });
    (addr, rx)
}

fn serve(stream: TcpStream, tx: mpsc::Sender<Seen>, mut give_event: bool, event: &str) {
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
            if !give_event {
                thread::sleep(Duration::from_secs(60));
                return;
            }
            give_event = false;
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 60_000;
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: req-0001\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:foundry-vtt-instance-management\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793\r\nContent-Length: {}\r\n\r\n{event}",
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
