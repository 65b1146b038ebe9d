//! The status page in a real browser: Debian's headless Chromium driven over WebDriver
//! (chromedriver, through fantoccini) against `datasync up`. A delivery, a dead letter and a
//! retryable failure are caused; the page, loaded once at 1280x1000, must show what a person
//! would look for — the failing row with its id and class, the dead letter, charts with points,
//! the target host turning red and, once the target recovers, green again — updating in place;
//! its search box then shows the recovered message's story.
//! Screenshots go under the target directory (`status-page-red.png`, `status-page-green.png`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};
use up_support::*;

/// Short sampling and health window so red turns green within seconds; retries every second;
/// a breaker that probes again quickly and enough attempts that the failing message is not
/// dead-lettered while the target fails.
fn config() -> String {
    format!(
        "{FAST}\n[functions.config]\nmax_attempts = \"50\"\nbreaker_cool_down_ms = \"500\"\n\n\
         [status]\nsample_interval_ms = 500\nhealth_window_seconds = 4\n"
    )
}

/// A chromedriver on a free port, killed when dropped.
struct Driver(Child, String);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_driver() -> Driver {
    for tool in ["chromium", "chromedriver"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            found,
            "{tool} is missing: scripts/test.sh installs it (Debian: apt-get install chromium chromium-driver)"
        );
    }
    let port = free_addr().rsplit(':').next().unwrap().to_owned();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let ready = eventually(Duration::from_secs(20), || async {
        let r = client.get(format!("{url}/status")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    assert!(ready.is_some(), "chromedriver did not start");
    Driver(child, url)
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--lang=en-US"]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.1)
        .await
        .expect("a WebDriver session with headless Chromium")
}

/// Runs `script` (a function body returning a value) in the page.
async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// What the page shows, read as a person would: the visible text of each part and the colour
/// of each target host's card.
async fn view(c: &Client) -> Value {
    js(
        c,
        r##"const text = (id) => { const e = document.getElementById(id); return e && !e.hidden ? e.innerText : ""; };
           const hosts = {};
           for (const h of document.querySelectorAll("#hosts .card")) {
             hosts[h.dataset.host] = { level: h.dataset.level, border: getComputedStyle(h).borderLeftColor, text: h.innerText };
           }
           const counts = {};
           for (const p of document.querySelectorAll("svg polyline")) counts[p.dataset.series] = Number(p.dataset.count);
           return { overall: document.getElementById("overall").dataset.level, hosts, counts,
                    failing: text("failing"), failingEmpty: text("failing-empty"), dead: text("dead"),
                    loaded: Number(document.body.dataset.loaded || 0), marker: window.__marker || null };"##,
    )
    .await
}

/// Polls the page's view until `ok` holds (at most `limit`); the last view otherwise.
async fn wait_for(c: &Client, limit: Duration, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let v = view(c).await;
        if ok(&v) {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "the page never showed {what}: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Types `id` into the page's search box, submits it, and returns the timeline's rows (cells
/// tab-separated) once it shows a delivery.
async fn search(c: &Client, id: &str) -> String {
    let start = Instant::now();
    loop {
        let script = r#"const [id] = arguments;
            document.getElementById("search-kind").value = "id";
            document.getElementById("search-text").value = id;
            document.getElementById("search").requestSubmit();
            return null;"#;
        c.execute(script, vec![json!(id)]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rows = js(
            c,
            r##"return [...document.querySelectorAll("#trace-result tbody tr")]
                 .map((r) => r.innerText).join("\n");"##,
        )
        .await;
        let rows = rows.as_str().unwrap_or_default().to_owned();
        if rows.contains("delivered") || start.elapsed() > Duration::from_secs(20) {
            return rows;
        }
    }
}

fn screenshot_path(name: &str) -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

async fn post_one(up: &Up, key: &str) -> String {
    let (s, v) = up
        .post(
            "/stream/sync",
            Some(&up.source_key()),
            &sync_request(&up.target(), key, 1),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

async fn target_mode(up: &Up, mode: Value) {
    let url = format!("{}/_control", up.target());
    assert_eq!(post_json(&up.client, &url, &mode).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_failures_dead_letters_charts_and_recovery() {
    let tmp = tempfile::tempdir().unwrap();
    let mut up = Up::start_in(tmp.path(), &config(), &[]).await;
    let driver = start_driver().await;
    let c = browser(&driver).await;
    c.set_window_size(1280, 1000).await.unwrap();
    c.goto(&up.gateway()).await.unwrap();
    // Set once: a full reload of the page would lose it.
    js(&c, "window.__marker = 'same page'; return null;").await;
    let host = up.target().trim_start_matches("http://").to_owned();

    // A delivery.
    post_one(&up, "fine").await;
    let delivered = eventually(Duration::from_secs(20), || async {
        (received(&up.client, &up.target()).await.total >= 1).then_some(())
    })
    .await;
    assert!(delivered.is_some(), "the first message was never delivered");
    // A dead letter (400 is permanent).
    target_mode(&up, json!({"status": 400})).await;
    let dead = post_one(&up, "doomed").await;
    let dead_seen = eventually(Duration::from_secs(20), || async {
        let st = up.status().await;
        (st.dead_letters
            .rows
            .iter()
            .any(|r| r.message.id.as_deref() == Some(dead.as_str())))
        .then_some(())
    })
    .await;
    assert!(dead_seen.is_some(), "the dead letter never reached /status");
    // A retryable failure that keeps failing until the target recovers.
    target_mode(&up, json!({"status": 503})).await;
    let failing = post_one(&up, "patient").await;

    let red = wait_for(&c, Duration::from_secs(30), "the failure in red", |v| {
        v["hosts"][&host]["level"] == "red"
            && v["failing"].as_str().unwrap().contains(failing.as_str())
            && v["failing"]
                .as_str()
                .unwrap()
                .contains("serviceUnavailable")
            && v["dead"].as_str().unwrap().contains(dead.as_str())
            && v["counts"]["delivered"].as_u64().unwrap_or(0) >= 2
    })
    .await;
    // Red is shown as red, not only named so.
    assert_eq!(red["hosts"][&host]["border"], "rgb(198, 40, 40)", "{red:#}");
    assert_eq!(red["overall"], "red");
    assert!(
        red["dead"].as_str().unwrap().contains("clientError"),
        "{red:#}"
    );
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshot_path("status-page-red.png"), png).unwrap();

    // The target recovers: the retry schedule delivers the message and the window passes.
    target_mode(&up, json!({"status": 200})).await;
    let green = wait_for(&c, Duration::from_secs(40), "the host green again", |v| {
        v["hosts"][&host]["level"] == "green" && v["failing"] == "" && v["failingEmpty"] != ""
    })
    .await;
    assert_eq!(
        green["hosts"][&host]["border"], "rgb(26, 127, 55)",
        "{green:#}"
    );
    // Updated in place: many fetches, one page.
    assert_eq!(green["marker"], "same page", "the page reloaded: {green:#}");
    assert!(green["loaded"].as_u64().unwrap() >= 3, "{green:#}");
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshot_path("status-page-green.png"), png).unwrap();

    // The search box tells the recovered message's story: accepted, refused with 503,
    // re-routed, delivered with 200, in that order.
    let story = search(&c, &failing).await;
    let rows: Vec<&str> = story.lines().collect();
    let at = |event: &str, detail: &str| {
        rows.iter()
            .position(|r| r.contains(&format!("\t{event}\t")) && r.contains(detail))
    };
    let steps = [
        at("accepted", "partition="),
        at("attempt", "status=503"),
        at("rerouted", "stream=datasync-errors-service-unavailable"),
        at("delivered", "status=200"),
    ];
    assert!(
        steps.iter().all(Option::is_some) && steps.windows(2).all(|w| w[0] < w[1]),
        "the search's timeline: {steps:?}\n{story}"
    );

    // The page's own cost, as the browser measured it.
    let nav = js(
        &c,
        r#"const n = performance.getEntriesByType("navigation")[0];
           return { bytes: n.encodedBodySize, load_ms: n.loadEventEnd - n.startTime,
                    dom_ms: n.domContentLoadedEventEnd - n.startTime };"#,
    )
    .await;
    println!("status page navigation: {nav}");
    assert!(nav["bytes"].as_u64().unwrap() < 64 * 1024, "{nav}");
    c.close().await.unwrap();
    up.stop();
}
