//! Tables 1 and 2: the cold start and the memory of the release `bootstrap`,
//! next to the floor (`examples/floor.rs`, a hello-world `lambda_runtime` binary built with
//! the same profile), against a stand-in Lambda Runtime API served by this program.
//!
//! * **Cold start**: from just before `spawn` to the first `GET …/invocation/next` the binary
//!   sends, and to its first answer (`POST …/response`) to a `status` event for a user that
//!   does not exist (one DynamoDB GetItem against the local AWS). Median of `BENCH_RUNS`
//!   runs, the two binaries interleaved, after one warm-up run each (page cache).
//! * **Memory**: peak RSS (`VmHWM` of `/proc/<pid>/status`), read while the binary waits in
//!   its `/next` after 1 and after `BENCH_INVOCATIONS` invocations.
//!
//! Environment (the Makefile sets it):
//! * `BENCH_BINARIES`: `name=path,name=path,…`, the first one is the floor
//!   (default `floor=target/release/examples/floor,bootstrap=target/release/bootstrap`);
//! * the local AWS's variables (`localaws.py up --env-out`) are the function's configuration;
//! * `BENCH_RUNS` (default 25), `BENCH_INVOCATIONS` (default 1000), `BENCH_MEMORY_RUNS`
//!   (default 3);
//! * `BENCH_CGROUP` (optional): a cgroup whose CPU quota the binary gets from its first `/next`
//!   on (`make bench-lambda-cpu`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The event every invocation gets: `status` of a user that does not exist.
const EVENT: &str = r#"{"action":"status","userId":"100000000000000001"}"#;

/// What the stand-in saw, and when.
#[derive(Debug)]
enum Mark {
    /// The n-th `GET …/next` (1-based), with the memory read before it was answered (if asked)
    /// and, for the first two, the CPU time the binary had used.
    Next(usize, Instant, Option<Memory>, Option<Duration>),
    /// The answer to the n-th invocation.
    Response(usize, Instant),
    /// An error report (`…/error` or `…/init/error`): the run is invalid.
    Error(String),
}

#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    /// Peak resident set size, KiB.
    hwm_kib: u64,
    /// Resident set size now, KiB.
    rss_kib: u64,
    /// Of which anonymous memory (heap, stacks), KiB.
    anon_kib: u64,
    /// Of which file-backed pages (the binary and the libraries it touched), KiB.
    file_kib: u64,
}

/// CPU time used so far by all threads of `pid` (`/proc/<pid>/task/*/schedstat`, in ns). Less
/// sensitive than wall time to other work on the machine.
fn cpu_of(pid: u32) -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        let text = std::fs::read_to_string(path).ok()?;
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

fn memory_of(pid: u32) -> Option<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some(Memory {
        hwm_kib: field("VmHWM:")?,
        rss_kib: field("VmRSS:")?,
        anon_kib: field("RssAnon:")?,
        file_kib: field("RssFile:")?,
    })
}

/// A stand-in Runtime API for one run: answers `invocations` events, then holds the next
/// `/next` open (as the real API does while no event is waiting).
struct StandIn {
    addr: String,
    marks: mpsc::Receiver<Mark>,
    pid: Arc<AtomicU32>,
}

struct Shared {
    served: Mutex<usize>,
    invocations: usize,
    /// Read the child's memory before answering these `/next` numbers.
    probe_at: Vec<usize>,
    pid: Arc<AtomicU32>,
    tx: Mutex<mpsc::Sender<Mark>>,
    /// `BENCH_CGROUP`: a cgroup (v1 `cpu` controller) the binary is moved into at its first
    /// `/next`, to give the invocations a Lambda-like CPU share (`make bench-lambda-cpu`).
    cgroup: Option<std::path::PathBuf>,
}

impl StandIn {
    fn start(invocations: usize, probe_at: Vec<usize>) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stand-in Runtime API");
        let addr = listener.local_addr().expect("local addr").to_string();
        let (tx, rx) = mpsc::channel();
        let pid = Arc::new(AtomicU32::new(0));
        let shared = Arc::new(Shared {
            served: Mutex::new(0),
            invocations,
            probe_at,
            pid: pid.clone(),
            tx: Mutex::new(tx),
            cgroup: std::env::var_os("BENCH_CGROUP").map(std::path::PathBuf::from),
        });
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                thread::spawn(move || serve(stream, &shared));
            }
        });
        StandIn { addr, marks: rx, pid }
    }
}

/// The binary's pid. The parent stores it right after `spawn` returns; on a busy machine the
/// binary can be quicker, so wait for it (a second at most).
fn child_pid(shared: &Shared) -> u32 {
    for _ in 0..1000 {
        let pid = shared.pid.load(Ordering::SeqCst);
        if pid != 0 {
            return pid;
        }
        thread::sleep(Duration::from_millis(1));
    }
    0
}

fn send(shared: &Shared, mark: Mark) {
    let tx = shared.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let _ = tx.send(mark);
}

/// One HTTP/1.1 connection of the runtime client (keep-alive: many requests).
fn serve(stream: TcpStream, shared: &Shared) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut content_length = 0usize;
        let mut chunked = false;
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
                let k = k.trim().to_ascii_lowercase();
                if k == "content-length" {
                    content_length = v.trim().parse().unwrap_or(0);
                } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                    chunked = true;
                }
            }
        }
        let body_ok = if chunked {
            read_chunked(&mut reader)
        } else {
            let mut body = vec![0; content_length];
            reader.read_exact(&mut body).is_ok()
        };
        if !body_ok {
            return;
        }
        let now = Instant::now();
        if method == "GET" && path.ends_with("/invocation/next") {
            let n = {
                let mut served = shared.served.lock().unwrap_or_else(|e| e.into_inner());
                *served += 1;
                *served
            };
            let memory = if shared.probe_at.contains(&(n - 1)) {
                memory_of(child_pid(shared))
            } else {
                None
            };
            if n == 1 {
                if let Some(cgroup) = &shared.cgroup {
                    // The init phase ends here: from now on the binary runs with the CPU share
                    // of the cgroup, as a Lambda function runs with the share of its memory size.
                    let pid = child_pid(shared);
                    if let Err(e) = std::fs::write(cgroup.join("cgroup.procs"), pid.to_string()) {
                        send(
                            shared,
                            Mark::Error(format!("cannot move {pid} into {}: {e}", cgroup.display())),
                        );
                    }
                }
            }
            let cpu = if n <= 2 { cpu_of(child_pid(shared)) } else { None };
            send(shared, Mark::Next(n, now, memory, cpu));
            if n > shared.invocations {
                // Hold the request: the binary waits here until it is killed.
                let mut sink = [0u8; 64];
                while matches!(reader.read(&mut sink), Ok(k) if k > 0) {}
                return;
            }
            let deadline_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
                + 300_000;
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: req-{n}\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline_ms}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:foundry-vtt-instance-management\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793\r\nContent-Length: {}\r\n\r\n{EVENT}",
                EVENT.len()
            );
            if out.write_all(resp.as_bytes()).is_err() {
                return;
            }
        } else if method == "POST" && path.ends_with("/response") {
            let n = path
                .rsplit('/')
                .nth(1)
                .and_then(|id| id.strip_prefix("req-"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            send(shared, Mark::Response(n, now));
            if out
                .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n")
                .is_err()
            {
                return;
            }
        } else {
            send(shared, Mark::Error(format!("{method} {path}")));
            let _ = out.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}");
        }
    }
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> bool {
    loop {
        let mut size = String::new();
        if reader.read_line(&mut size).unwrap_or(0) == 0 {
            return false;
        }
        let Ok(n) = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16) else {
            return false;
        };
        let mut chunk = vec![0; n + 2];
        if reader.read_exact(&mut chunk).is_err() {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

/// One run of `binary`: the times to the first `/next` and to the first answer, and the
/// memory after 1 and after `invocations` invocations.
#[derive(Debug, Clone, Copy)]
struct Run {
    first_next: Duration,
    first_answer: Duration,
    /// CPU time of the binary until its first `/next`, and until its second (after answering).
    cpu_next: Duration,
    cpu_answer: Duration,
    after_one: Memory,
    after_all: Memory,
}

fn spawn(binary: &str, api: &str, env: &BTreeMap<String, String>) -> Child {
    Command::new(binary)
        .env_clear()
        .envs(env)
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "foundry-vtt-instance-management")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            "/aws/lambda/foundry-vtt-instance-management",
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/12/01/[$LATEST]bench")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {binary}: {e}"))
}

/// [`try_run`], once more if it fails (a busy machine can starve a run past its timeouts).
fn run_once(binary: &str, env: &BTreeMap<String, String>, invocations: usize) -> Result<Run, String> {
    try_run(binary, env, invocations).or_else(|e| {
        eprintln!("{binary}: {e}; trying once more");
        try_run(binary, env, invocations)
    })
}

fn try_run(binary: &str, env: &BTreeMap<String, String>, invocations: usize) -> Result<Run, String> {
    let api = StandIn::start(invocations, vec![1, invocations]);
    let t0 = Instant::now();
    let mut child = spawn(binary, &api.addr, env);
    api.pid.store(child.id(), Ordering::SeqCst);
    let mut first_next = None;
    let mut first_answer = None;
    let mut after_one = None;
    let mut after_all = None;
    let mut cpu_next = None;
    let mut cpu_answer = None;
    let result = loop {
        let mark = match api.marks.recv_timeout(Duration::from_secs(60)) {
            Ok(m) => m,
            Err(_) => break Err(format!("{binary}: no word from the binary within 60 s")),
        };
        match mark {
            Mark::Next(n, at, memory, cpu) => {
                if n == 1 {
                    first_next = Some(at - t0);
                    cpu_next = cpu;
                }
                if n == 2 {
                    after_one = memory;
                    cpu_answer = cpu;
                }
                if n == invocations + 1 {
                    after_all = memory;
                    break Ok(());
                }
            }
            Mark::Response(n, at) => {
                if n == 1 {
                    first_answer = Some(at - t0);
                }
            }
            Mark::Error(what) => break Err(format!("{binary} reported an error: {what}")),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    result?;
    match (first_next, first_answer, after_one, after_all) {
        (Some(first_next), Some(first_answer), Some(after_one), Some(after_all)) => Ok(Run {
            first_next,
            first_answer,
            cpu_next: cpu_next.unwrap_or_default(),
            cpu_answer: cpu_answer.unwrap_or_default(),
            after_one,
            after_all,
        }),
        _ => Err(format!("{binary}: incomplete run (memory not readable?)")),
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}

/// The size of `path` zipped alone as `bootstrap` (deflate), in MiB: the deployment package's
/// size for this binary. NaN when Python cannot make the zip.
fn zipped_mib(path: &str) -> f64 {
    const ZIP: &str = "import io, sys, zipfile\n\
        buf = io.BytesIO()\n\
        with zipfile.ZipFile(buf, 'w', zipfile.ZIP_DEFLATED) as z:\n    z.write(sys.argv[1], 'bootstrap')\n\
        print(len(buf.getvalue()))";
    let python = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    Command::new(python)
        .args(["-c", ZIP, path])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u64>().ok())
        .map(|bytes| bytes as f64 / 1_048_576.0)
        .unwrap_or(f64::NAN)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Runs the cold starts and the memory runs, and prints tables 1 and 2.
pub fn run(env: &BTreeMap<String, String>) {
    let binaries: Vec<(String, String)> = std::env::var("BENCH_BINARIES")
        .unwrap_or_else(|_| "floor=target/release/examples/floor,bootstrap=target/release/bootstrap".into())
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(n, p)| (n.trim().to_string(), p.trim().to_string()))
        .collect();
    for (name, path) in &binaries {
        assert!(
            std::path::Path::new(path).exists(),
            "{name}: {path} does not exist (make bench builds it)"
        );
    }
    let runs = super::env_number("BENCH_RUNS", 25).max(1);
    let invocations = super::env_number("BENCH_INVOCATIONS", 1000).max(1);
    let memory_runs = super::env_number("BENCH_MEMORY_RUNS", 3).max(1);

    // Cold starts: one warm-up each (page cache), then the binaries interleaved.
    let mut cold: Vec<Vec<Run>> = vec![Vec::new(); binaries.len()];
    for round in 0..=runs {
        for (i, (name, path)) in binaries.iter().enumerate() {
            let run = run_once(path, env, 1).unwrap_or_else(|e| panic!("{name}: {e}"));
            if round > 0 {
                cold[i].push(run);
            }
        }
    }
    // Memory: `invocations` events per run.
    let mut mem: Vec<Vec<Run>> = vec![Vec::new(); binaries.len()];
    for _ in 0..memory_runs {
        for (i, (name, path)) in binaries.iter().enumerate() {
            let run = run_once(path, env, invocations).unwrap_or_else(|e| panic!("{name}: {e}"));
            mem[i].push(run);
        }
    }

    let next: Vec<f64> = cold
        .iter()
        .map(|r| median(r.iter().map(|x| ms(x.first_next)).collect()))
        .collect();
    let answer: Vec<f64> = cold
        .iter()
        .map(|r| median(r.iter().map(|x| ms(x.first_answer)).collect()))
        .collect();
    let p90_next: Vec<f64> = cold
        .iter()
        .map(|r| percentile(r.iter().map(|x| ms(x.first_next)).collect(), 0.9))
        .collect();
    let p90_answer: Vec<f64> = cold
        .iter()
        .map(|r| percentile(r.iter().map(|x| ms(x.first_answer)).collect(), 0.9))
        .collect();
    let size = |path: &str| {
        std::fs::metadata(path)
            .map(|m| m.len() as f64 / 1_048_576.0)
            .unwrap_or(f64::NAN)
    };
    let zips: Vec<f64> = binaries.iter().map(|(_, path)| zipped_mib(path)).collect();

    println!();
    println!(
        "Table 1. Cold start: spawn to the first GET /2018-06-01/runtime/invocation/next, and to the first \
         answer of `status` (unknown user: one DynamoDB GetItem against the local AWS). Median (p90) of {runs} runs."
    );
    println!();
    let cpu_next: Vec<f64> = cold
        .iter()
        .map(|r| median(r.iter().map(|x| ms(x.cpu_next)).collect()))
        .collect();
    let cpu_answer: Vec<f64> = cold
        .iter()
        .map(|r| median(r.iter().map(|x| ms(x.cpu_answer)).collect()))
        .collect();
    println!(
        "| binary | size | zip | first /next | first answer | /next ÷ floor | answer ÷ floor | CPU to /next | CPU to answer |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, (name, path)) in binaries.iter().enumerate() {
        println!(
            "| {name} | {:.1} MiB | {:.2} MiB | {:.2} ms ({:.2}) | {:.2} ms ({:.2}) | {:.2}× | {:.2}× | {:.2} ms | {:.2} ms |",
            size(path),
            zips[i],
            next[i],
            p90_next[i],
            answer[i],
            p90_answer[i],
            next[i] / next[0],
            answer[i] / answer[0],
            cpu_next[i],
            cpu_answer[i]
        );
    }
    println!();
    println!(
        "The zip is the binary alone as `bootstrap` in a deflated zip, as a Lambda deployment \
         package holds it (Python's zipfile, default level)."
    );
    println!(
        "Wall times are from just before spawn; CPU times are the binary's own (all threads, \
         /proc/<pid>/task/*/schedstat), read when it asks for its first and second event, and \
         vary less when the machine is busy."
    );

    let hwm = |runs: &[Run], f: fn(&Run) -> Memory| median(runs.iter().map(|r| mib(f(r).hwm_kib)).collect());
    let rss = |runs: &[Run], f: fn(&Run) -> Memory| median(runs.iter().map(|r| mib(f(r).rss_kib)).collect());
    println!();
    println!(
        "Table 2. Memory: peak RSS (VmHWM) after 1 and after {invocations} invocations (median of {memory_runs} \
         runs; RSS now in brackets)."
    );
    println!();
    println!(
        "| binary | after 1 | after {invocations} | growth | after {invocations} ÷ floor | RSS after {invocations}: anon + file |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let floor_all = hwm(&mem[0], |r| r.after_all);
    for (i, (name, _)) in binaries.iter().enumerate() {
        let one = hwm(&mem[i], |r| r.after_one);
        let all = hwm(&mem[i], |r| r.after_all);
        let anon = median(mem[i].iter().map(|r| mib(r.after_all.anon_kib)).collect());
        let file = median(mem[i].iter().map(|r| mib(r.after_all.file_kib)).collect());
        println!(
            "| {name} | {one:.2} MiB ({:.2}) | {all:.2} MiB ({:.2}) | {:+.1}% | {:.2}× | {anon:.2} + {file:.2} MiB |",
            rss(&mem[i], |r| r.after_one),
            rss(&mem[i], |r| r.after_all),
            (all / one - 1.0) * 100.0,
            all / floor_all
        );
    }
    println!();
}
