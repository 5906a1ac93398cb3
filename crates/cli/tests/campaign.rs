//! `bzapper campaign run` against a real gateway (`bzapper serve --sim`, spawned): a small CSV
//! file goes out through two linked numbers, the command prints the summary, and the simulated
//! network received every templated text.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;

const ADMIN: &str = "campaign-admin-token-0123456789";
/// Long enough for anything here on a loaded machine; every wait polls up to it.
const PATIENCE: Duration = Duration::from_secs(60);

/// A spawned gateway, killed when dropped.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One API call outside the CLI: the status and the JSON answer.
fn call(url: &str, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req =
            reqwest::Client::new().request(method, format!("{url}{path}")).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    })
}

fn ok(url: &str, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let (s, v) = call(url, token, method, path, body);
    assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
    v
}

/// A number with quick pacing (no gap between sends, no warming), linked to `phone` through
/// the simulator; returns its id once connected.
fn linked_number(url: &str, key: &str, name: &str, phone: &str) -> String {
    let limits = json!({"min_gap_ms": 0, "max_gap_ms": 20, "per_minute": 60, "per_hour": 600, "per_day": 6000});
    let v = ok(
        url,
        key,
        "POST",
        "/v1/instances",
        Some(json!({"name": name, "limits": limits, "warming_days": 0})),
    );
    let id = v["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + PATIENCE;
    // The phone scans once the network shows a QR code.
    loop {
        let (s, v) = call(url, key, "GET", &format!("/v1/instances/{id}/qr"), None);
        if s == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "{id} never showed a QR code: {s} {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    ok(url, ADMIN, "POST", &format!("/v1/sim/instances/{id}/scan"), Some(json!({"phone": phone})));
    loop {
        let v = ok(url, key, "GET", &format!("/v1/instances/{id}"), None);
        if v["status"] == "connected" {
            return id;
        }
        assert!(Instant::now() < deadline, "{id} never connected: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_csv_campaign_runs_to_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = support::serve_sim(&dir.path().join("data"), ADMIN);
    let _gateway = Gateway(child);
    let tenant = ok(&url, ADMIN, "POST", "/v1/tenants", Some(json!({"name": "acme"})));
    let key = tenant["api_key"].as_str().unwrap().to_string();
    let a = linked_number(&url, &key, "one", "+5511900000001");
    let b = linked_number(&url, &key, "two", "+5511900000002");

    let csv = dir.path().join("march.csv");
    std::fs::write(
        &csv,
        "phone,name,city\n\
         +5511988880001,Ana,Recife\n\
         +5511988880002,\"Silva, Bo\",Natal\n\
         +5511988880003,Cid,\"Rio \"\"de\"\" Janeiro\"\n\
         +5511988880004,Di,Belém\n\
         +5511988880005,Eva,Lima\n",
    )
    .unwrap();

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bzapper"));
    cmd.args(["campaign", "run"])
        .arg(&csv)
        .args(["--template", "Hi {{name}} from {{city}}"])
        .env("BZAPPER_URL", &url)
        .env("BZAPPER_TOKEN", &key)
        .env_remove("BZAPPER_ADMIN_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut run = cmd.spawn().unwrap();
    let mut out_pipe = run.stdout.take().unwrap();
    let mut err_pipe = run.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(s) = run.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = run.kill();
            panic!("campaign run did not finish within {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "exit {status}\nstdout:\n{stdout}\nstderr:\n{stderr}");

    // The summary: the campaign finished, its totals, and what each number carried.
    let id = stdout.lines().next().unwrap().strip_prefix("campaign ").unwrap().to_string();
    assert!(stdout.contains(&format!("campaign {id} \"march\": finished")), "{stdout}");
    let totals = stdout.lines().find(|l| l.starts_with("recipients ")).expect("a totals line");
    let count = |name: &str| -> u64 {
        let words: Vec<&str> = totals.split_whitespace().collect();
        let i = words.iter().position(|w| *w == name).unwrap();
        words[i + 1].parse().unwrap()
    };
    assert_eq!(count("recipients"), 5, "{totals}");
    assert_eq!(count("sent") + count("delivered") + count("read"), 5, "{totals}");
    assert_eq!(count("failed"), 0, "{totals}");
    let header = stdout.lines().position(|l| l.starts_with("INSTANCE")).expect("a table");
    let mut carried = 0;
    for line in stdout.lines().skip(header + 1) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert!(cells[0] == a || cells[0] == b, "an unknown number in {line}");
        carried += cells[1..4].iter().map(|c| c.parse::<u64>().unwrap()).sum::<u64>();
    }
    assert_eq!(carried, 5, "{stdout}");
    assert!(stderr.contains("5/5 sent"), "{stderr}");

    // The simulated network received every text, the quoted comma and quotes intact.
    let mut texts = Vec::new();
    for iid in [&a, &b] {
        let v = ok(&url, ADMIN, "GET", &format!("/v1/sim/instances/{iid}/outbox"), None);
        for e in v["items"].as_array().unwrap() {
            if let Some(t) = e.get("text").and_then(Value::as_str) {
                texts.push(t.to_string());
            }
        }
    }
    texts.sort();
    assert_eq!(
        texts,
        [
            "Hi Ana from Recife",
            "Hi Cid from Rio \"de\" Janeiro",
            "Hi Di from Belém",
            "Hi Eva from Lima",
            "Hi Silva, Bo from Natal",
        ]
    );

    // Running the same command again creates nothing: the same campaign, already finished.
    let again = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).output().unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let again = String::from_utf8(again.stdout).unwrap();
    assert!(again.starts_with(&format!("campaign {id}\n")), "{again}");
    let list = ok(&url, &key, "GET", "/v1/campaigns", None);
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");

    // A row with a column too many is refused before anything is sent, naming its line.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "phone,name\n+5511988880009,Fa\n+5511988880010,Gil,extra\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bzapper"))
        .args(["campaign", "run"])
        .arg(&bad)
        .args(["--template", "Hi {{name}}"])
        .env("BZAPPER_URL", &url)
        .env("BZAPPER_TOKEN", &key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3: 3 columns, but the header has 2"), "{err}");
}
