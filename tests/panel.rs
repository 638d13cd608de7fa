//! The web panel in a real headless Chromium (WebDriver through Debian's chromedriver), served
//! by the running Jarvis: directly with a login and behind Home Assistant's own ingress proxy
//! (tests/ingress/ha_ingress.py: HA core's ingress view and the Supervisor's hop), the live
//! feed, a confirmation from the panel, the talk box, push-to-talk from a fake microphone, a
//! model pull's progress, keyboard access and labels; and the bad input the panel must refuse.
//! Screenshots go to `target/panel-screenshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::fake_proxmox::FakeProxmox;
use common::file_server::{Behaviour, FileServer};
use common::webdriver::Browser;
use jarvis::app::App;
use jarvis::config::{Config, Secret};
use serde_json::{Value, json};

const KEY: &str = "panel-key-for-tests";

async fn start(fake: Option<&FakeProxmox>, edit: impl FnOnce(&mut Config)) -> App {
    let mut config = common::test_config();
    if let Some(fake) = fake {
        config.proxmox = fake.config();
        config.proxmox.task_poll_ms = 20;
    }
    config.http.api_key = Secret::new(KEY);
    edit(&mut config);
    common::spawn_app(config).await
}

fn url(app: &App, path: &str) -> String {
    format!("http://{}{path}", app.http_addr.unwrap())
}

async fn command(app: &App, body: Value) -> Value {
    reqwest::Client::new()
        .post(url(app, "/v1/command"))
        .header("x-api-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Every visible control has a name, and Tab reaches every one that is not part of a roving
/// tab list (whose other tabs the arrow keys reach); and axe-core, the automated accessibility
/// checker (WCAG 2.0–2.2 A and AA and its best practices), finds nothing on the page as shown.
/// Returns the controls checked.
async fn check_accessibility(browser: &Browser, page: &str) -> usize {
    let violations = axe(browser).await;
    assert_eq!(violations, json!([]), "{page}: axe-core finds violations");
    let unlabelled = browser
        .eval(
            r#"
            const visible = (e) => e.offsetParent !== null || e === document.activeElement;
            const name = (e) => {
              if (e.getAttribute('aria-label')) return e.getAttribute('aria-label');
              if (e.getAttribute('aria-labelledby')) return document.getElementById(e.getAttribute('aria-labelledby'))?.textContent;
              if (e.labels && e.labels.length) return [...e.labels].map((l) => l.textContent).join(' ');
              if (e.tagName === 'BUTTON' || e.tagName === 'A') return e.textContent;
              return e.title || '';
            };
            const controls = [...document.querySelectorAll('button, input, select, textarea, a[href], [role=tab], progress')].filter(visible);
            controls.forEach((e, i) => e.dataset.a11y = String(i));
            window.a11yCount = controls.length;
            return controls.filter((e) => !(name(e) || '').trim()).map((e) => e.outerHTML);
            "#,
            json!([]),
        )
        .await;
    assert_eq!(unlabelled, json!([]), "{page}: controls without a label");
    let wanted: Vec<String> = browser
        .eval(
            "return [...document.querySelectorAll('[data-a11y]')].filter((e) => e.offsetParent !== null && e.tabIndex >= 0 && e.tagName !== 'PROGRESS').map((e) => e.dataset.a11y)",
            json!([]),
        )
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    browser
        .eval(
            "document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0);",
            json!([]),
        )
        .await;
    let mut reached = std::collections::BTreeSet::new();
    for _ in 0..wanted.len() + 8 {
        browser.keys("\u{E004}").await;
        if let Some(id) = browser
            .eval(
                "return document.activeElement?.dataset?.a11y ?? null",
                json!([]),
            )
            .await
            .as_str()
        {
            reached.insert(id.to_owned());
        }
    }
    let missed: Vec<_> = wanted.iter().filter(|w| !reached.contains(*w)).collect();
    assert!(
        missed.is_empty(),
        "{page}: not reachable by Tab: {missed:?}"
    );
    // The tab list's arrow keys.
    if page != "login" {
        let selected = browser
            .eval(
                "return document.querySelector('[role=tab][aria-selected=true]').id",
                json!([]),
            )
            .await;
        browser
            .eval("document.getElementById('tab-activity').focus()", json!([]))
            .await;
        browser.keys("\u{E014}").await; // ArrowRight
        let focused = browser
            .eval("return document.activeElement.id", json!([]))
            .await;
        assert_eq!(
            focused,
            json!("tab-talk"),
            "{page}: arrow keys move along the tabs"
        );
        browser.keys("\u{E012}").await; // ArrowLeft
        browser
            .click(&format!("#{}", selected.as_str().unwrap()))
            .await;
    }
    wanted.len()
}

/// axe-core's violations on the page as it is shown: id, impact, help and the first elements.
async fn axe(browser: &Browser) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/a11y/node_modules/axe-core/axe.min.js");
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (scripts/bootstrap.sh --test installs axe-core)",
            path.display()
        )
    });
    browser
        .eval(
            &format!("if (!window.axe) {{ {source}\n }} return true;"),
            json!([]),
        )
        .await;
    browser
        .eval_async(
            r#"
            const done = arguments[arguments.length - 1];
            axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] })
              .then((r) => done(r.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ') + ': ' + n.failureSummary),
              }))))
              .catch((e) => done('axe failed: ' + e));
            "#,
            json!([]),
        )
        .await
}

fn feed_has(text: &str) -> String {
    format!(
        "[...document.querySelectorAll('#feed li')].some((li) => li.textContent.includes({}))",
        serde_json::to_string(text).unwrap()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_logs_in_follows_the_feed_confirms_and_talks() {
    let fake = FakeProxmox::homelab().await;
    let app = start(Some(&fake), |_| {}).await;
    let browser = Browser::start(None).await;

    // `/` leads to the panel; without a login it shows the form.
    browser.goto(&url(&app, "/")).await;
    browser
        .wait_for("!document.getElementById('login').hidden")
        .await;
    let path = browser.eval("return location.pathname", json!([])).await;
    assert_eq!(path, json!("/panel/"));
    check_accessibility(&browser, "login").await;
    browser.screenshot("01-login").await;

    // A wrong key is refused and said so.
    browser.type_into("#key", "not-the-key").await;
    browser.click("#login-button").await;
    browser
        .wait_for("document.getElementById('login-error').textContent.includes('wrong API key')")
        .await;
    // The right one opens the panel; the key is nowhere in the page or its cookies.
    browser.type_into("#key", KEY).await;
    browser.click("#login-button").await;
    browser
        .wait_for("!document.getElementById('app').hidden")
        .await;
    browser
        .wait_for("document.getElementById('feed-state').textContent === 'live'")
        .await;
    let leaks = browser
        .eval(
            "return document.documentElement.outerHTML.includes(arguments[0]) || document.cookie.includes(arguments[0]) || document.cookie.includes('jarvis_panel')",
            json!([KEY]),
        )
        .await;
    assert_eq!(
        leaks,
        json!(false),
        "the key or the HttpOnly cookie is visible to the page"
    );

    // A command over HTTP shows in the feed.
    let reply = command(&app, json!({"text": "status of node pve"})).await;
    assert!(
        reply["reply"]
            .as_str()
            .unwrap()
            .starts_with("pve is online")
    );
    browser.wait_for(&feed_has("pve is online")).await;

    // Markup in a command is shown as text, never run or rendered.
    let markup = r#"<img src=x id=pwned onerror="window.pwned=1"><b>bold</b> status of node pve"#;
    command(&app, json!({"text": markup})).await;
    browser.wait_for(&feed_has("<b>bold</b>")).await;
    let rendered = browser
        .eval(
            "return document.querySelector('#feed img, #feed b, #pwned') !== null || window.pwned !== undefined",
            json!([]),
        )
        .await;
    assert_eq!(rendered, json!(false), "markup from a command was rendered");

    // A destructive action asked over HTTP waits; Confirm in the panel carries it out as
    // channel `panel`.
    let reply = command(
        &app,
        json!({"text": "Reboot the media server", "conversation_id": "kitchen"}),
    )
    .await;
    assert_eq!(reply["pending_confirmation"], json!(true));
    browser
        .wait_for("document.querySelector('#pending li button.confirm')")
        .await;
    let label = browser
        .eval("return document.querySelector('#pending li button.confirm').getAttribute('aria-label')", json!([]))
        .await;
    assert_eq!(label, json!("Confirm: reboot media-server"));
    check_accessibility(&browser, "activity").await;
    browser.screenshot("02-pending-confirmation").await;
    browser.click("#pending li button.confirm").await;
    browser
        .wait_for("[...document.querySelectorAll('#feed li.action')].some((li) => li.textContent.includes('panel') && li.textContent.includes('allowed'))")
        .await;
    assert_eq!(fake.count("POST /nodes/pve/qemu/101/status/reboot"), 1);
    browser
        .wait_for("document.querySelectorAll('#pending li').length === 0")
        .await;
    // Filter and search.
    browser
        .eval("const s = document.getElementById('filter-kind'); s.value = 'action'; s.dispatchEvent(new Event('change'));", json!([]))
        .await;
    let shown = browser
        .eval(
            "return [...document.querySelectorAll('#feed li')].map((li) => li.className)",
            json!([]),
        )
        .await;
    assert!(
        shown
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c.as_str().unwrap().contains("action")),
        "{shown}"
    );
    browser
        .eval("const s = document.getElementById('filter-kind'); s.value = 'all'; s.dispatchEvent(new Event('change')); const t = document.getElementById('filter-text'); t.value = 'bold'; t.dispatchEvent(new Event('input'));", json!([]))
        .await;
    let shown = browser
        .eval(
            "return document.querySelectorAll('#feed li').length",
            json!([]),
        )
        .await;
    assert_eq!(shown, json!(1));
    browser.screenshot("03-feed").await;
    browser
        .eval("const t = document.getElementById('filter-text'); t.value = ''; t.dispatchEvent(new Event('input'));", json!([]))
        .await;

    // Command → feed entry, timed in the browser (benchmark figure).
    let mut took = Vec::new();
    for i in 0..15 {
        let ms = browser
            .eval_async(
                r#"
                const [key, text, done] = arguments;
                const start = performance.now();
                const seen = () => [...document.querySelectorAll('#feed li')].some((li) => li.textContent.includes(text));
                const observer = new MutationObserver(() => { if (seen()) { observer.disconnect(); done(performance.now() - start); } });
                observer.observe(document.getElementById('feed'), { childList: true, subtree: true });
                fetch('../v1/command', { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key }, body: JSON.stringify({ text }) });
                "#,
                json!([KEY, format!("how is the cluster doing {i}")]),
            )
            .await;
        took.push(ms.as_f64().unwrap());
    }
    took.sort_by(f64::total_cmp);
    eprintln!(
        "panel bench: command -> feed entry in the browser: median {:.1} ms, max {:.1} ms over {} commands",
        took[took.len() / 2],
        took[took.len() - 1],
        took.len()
    );
    assert!(took[took.len() / 2] < 1000.0, "{took:?}");

    // The talk box.
    browser.click("#tab-talk").await;
    browser
        .type_into("#talk-text", "How is the cluster doing?")
        .await;
    browser.click("#talk-send").await;
    browser
        .wait_for("document.querySelector('#turns li .reply')?.textContent.includes('All 2 nodes are online')")
        .await;
    browser
        .wait_for("document.querySelector('#turns li .timing')?.textContent.includes('reply')")
        .await;
    check_accessibility(&browser, "talk").await;
    browser.screenshot("04-talk").await;

    // Health and latency plots.
    browser.click("#tab-health").await;
    browser
        .wait_for("document.querySelectorAll('#health-list dd').length > 3")
        .await;
    browser
        .wait_for("document.querySelectorAll('#latency svg').length === 3")
        .await;
    let intents = browser
        .eval(
            "return document.querySelectorAll('#latency figcaption')[2].textContent",
            json!([]),
        )
        .await;
    assert!(
        intents.as_str().unwrap().starts_with("Intents"),
        "{intents}"
    );
    assert!(
        !intents.as_str().unwrap().contains(": 0 samples"),
        "{intents}"
    );
    check_accessibility(&browser, "health").await;
    browser.screenshot("05-health").await;

    // Log out: the session is gone.
    browser.click("#logout").await;
    browser
        .wait_for("!document.getElementById('login').hidden")
        .await;
    browser.quit().await;
    app.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_works_behind_an_ingress_prefix_without_a_login() {
    let fake = FakeProxmox::homelab().await;
    let app = start(Some(&fake), |c| {
        c.panel.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let ingress = HaIngress::start(app.http_addr.unwrap()).await;
    let browser = Browser::start(None).await;
    browser.goto(&ingress.url()).await;
    browser
        .wait_for("!document.getElementById('app').hidden")
        .await;
    let where_ = browser.eval("return location.pathname", json!([])).await;
    assert_eq!(where_, json!("/api/hassio_ingress/t0ken/panel/"));
    let mode = browser
        .eval(
            "return document.getElementById('mode').textContent",
            json!([]),
        )
        .await;
    assert_eq!(mode, json!("through Home Assistant"));
    browser
        .wait_for("document.getElementById('feed-state').textContent === 'live'")
        .await;

    command(&app, json!({"text": "status of node pve"})).await;
    browser.wait_for(&feed_has("pve is online")).await;
    // Frigate's arrivals show too.
    let arrival = jarvis::events::Event {
        camera: Some("front_door".into()),
        label: Some("person".into()),
        sub_label: Some("Alice".into()),
        zones: vec!["porch".into()],
        ..jarvis::events::Event::new("frigate:1", jarvis::events::Source::Frigate, "object", 0)
    };
    app.services.frigate.arrivals.send(arrival).unwrap();
    browser.wait_for(&feed_has("Alice in porch")).await;

    browser.click("#tab-talk").await;
    browser
        .type_into("#talk-text", "status of node agent1")
        .await;
    browser.click("#talk-send").await;
    browser
        .wait_for(
            "document.querySelector('#turns li .reply')?.textContent.includes('agent1 is online')",
        )
        .await;
    browser.click("#tab-health").await;
    browser
        .wait_for("document.querySelectorAll('#health-list dd').length > 3")
        .await;
    browser.screenshot("06-ingress").await;
    browser.quit().await;

    // The same requests sent straight to Jarvis, without the proxy's header, need a login.
    let direct = reqwest::Client::new()
        .get(url(&app, "/panel/api/pending"))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 401);
    app.shutdown.cancel();
}

#[tokio::test]
async fn bad_input_is_refused() {
    let app = start(None, |c| c.panel.max_streams = 2).await;
    let http = reqwest::Client::new();
    let origin = format!("http://{}", app.http_addr.unwrap());
    let post = |path: &str| http.post(url(&app, path));

    let session: Value = http
        .get(url(&app, "/panel/api/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["authenticated"], json!(false));
    assert!(session.get("csrf").is_none());

    // Missing and wrong keys.
    let r = post("/panel/api/login")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = post("/panel/api/login")
        .json(&json!({"key": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = post("/panel/api/login")
        .json(&json!({"key": "guess"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("wrong API key"));
    // Without a login nothing is served or done.
    for path in [
        "/panel/api/feed",
        "/panel/api/pending",
        "/panel/api/models",
        "/panel/api/latency",
    ] {
        let r = http.get(url(&app, path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    // Nor are the live streams over a WebSocket, with or without a made-up token.
    for path in [
        "/panel/api/feed/socket",
        "/panel/api/feed/socket?csrf=made-up",
        "/panel/api/models/progress/socket",
    ] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(app.http_addr.unwrap())
            .await
            .unwrap();
        let handshake = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        tcp.write_all(handshake.as_bytes()).await.unwrap();
        let mut head = [0u8; 12];
        tcp.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 401", "{path}");
    }
    let r = post("/panel/api/command")
        .json(&json!({"text": "status of node pve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A login from another site is refused.
    let r = post("/panel/api/login")
        .header("origin", "http://evil.example")
        .json(&json!({"key": KEY}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // A login: an HttpOnly, SameSite=Strict cookie that is not the key.
    let r = post("/panel/api/login")
        .header("origin", &origin)
        .json(&json!({"key": KEY}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(KEY));
    let body: Value = r.json().await.unwrap();
    let csrf = body["csrf"].as_str().unwrap().to_owned();
    assert!(!body.to_string().contains(KEY));
    let session_cookie = cookie.split(';').next().unwrap().to_owned();

    // A cross-site POST: with the cookie (as a browser would attach it) but no token, or
    // marked cross-site, or from another origin.
    let with_cookie = |path: &str| post(path).header("cookie", &session_cookie);
    let r = with_cookie("/panel/api/command")
        .json(&json!({"text": "status"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], json!("csrf"));
    let r = with_cookie("/panel/api/command")
        .header("x-jarvis-csrf", &csrf)
        .header("origin", "http://evil.example")
        .json(&json!({"text": "status"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        json!("cross-site")
    );
    let r = with_cookie("/panel/api/command")
        .header("x-jarvis-csrf", &csrf)
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"text": "status"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = with_cookie("/panel/api/command")
        .header("x-jarvis-csrf", "0".repeat(64))
        .json(&json!({"text": "status"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The real thing passes.
    let r = with_cookie("/panel/api/command")
        .header("x-jarvis-csrf", &csrf)
        .header("origin", &origin)
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"text": "what can you do"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let reply: Value = r.json().await.unwrap();
    assert!(reply["reply_ms"].is_u64());
    // An empty or oversized command.
    let r = with_cookie("/panel/api/command")
        .header("x-jarvis-csrf", &csrf)
        .json(&json!({"text": "  "}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = with_cookie("/panel/api/command")
        .header("x-jarvis-csrf", &csrf)
        .json(&json!({"text": "x".repeat(20_000)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // A 10 MB upload to any panel route is refused before it is read.
    let r = with_cookie("/panel/api/speak")
        .header("x-jarvis-csrf", &csrf)
        .header("content-type", "application/json")
        .body(vec![b' '; 10 * 1024 * 1024])
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }
    // Streams are capped (panel.max_streams = 2 here): a third gets 503 until one closes.
    let feed = |_: ()| {
        http.get(url(&app, "/panel/api/feed"))
            .header("cookie", &session_cookie)
            .send()
    };
    let first = feed(()).await.unwrap();
    let second = feed(()).await.unwrap();
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = feed(()).await.unwrap();
    assert_eq!(third.status(), 503);
    drop(first);
    let deadline = std::time::Instant::now() + common::LIMIT;
    loop {
        let again = feed(()).await.unwrap();
        if again.status() == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the closed stream's permit never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Logging out ends the session.
    let r = with_cookie("/panel/api/logout")
        .header("x-jarvis-csrf", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .get(url(&app, "/panel/api/pending"))
        .header("cookie", &session_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.shutdown.cancel();
}

/// Presses Push to talk, lets the fake microphone play for a few seconds, lets go, and returns
/// the turn's transcript (lower case).
async fn push_to_talk(browser: &Browser) -> String {
    browser.click("#tab-talk").await;
    browser.click("#ptt").await;
    browser
        .wait_for("document.getElementById('ptt').getAttribute('aria-pressed') === 'true'")
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    browser
        .eval("if (document.getElementById('ptt').getAttribute('aria-pressed') === 'true') document.getElementById('ptt').click();", json!([]))
        .await;
    let said = browser
        .wait_for("(() => { const t = document.querySelector('#turns li .said')?.textContent; return t && t !== '…' ? t : null; })()")
        .await;
    said.as_str().unwrap().to_lowercase()
}

/// A script for `eval_async`: `open(token)` opens the microphone's socket; the script's
/// result is the close code and the messages Jarvis sent.
fn listen_script(script: &str) -> String {
    format!(
        r#"
        const done = arguments[arguments.length - 1];
        const csrf = window.jarvisPanel.csrf;
        const open = (token) => {{
          const u = new URL('api/listen' + (token ? '?csrf=' + token : ''), location.href);
          u.protocol = 'ws:';
          const ws = new WebSocket(u);
          ws.binaryType = 'arraybuffer';
          const got = [];
          ws.onmessage = (e) => got.push(JSON.parse(e.data));
          ws.onclose = (e) => done({{ code: e.code, got }});
          return ws;
        }};
        {script}
        "#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_to_talk_gets_a_transcript_and_the_socket_is_bounded() {
    let jfk = common::models_dir().join("whisper/samples/jfk.wav");
    let mut config = common::stt_config();
    config.tts.enabled = true;
    config.http.api_key = Secret::new("");
    let app = common::spawn_app(config).await;
    let browser = Browser::start(Some(&jfk)).await;
    browser.goto(&url(&app, "/panel/")).await;
    browser
        .wait_for("!document.getElementById('app').hidden")
        .await;
    let said = push_to_talk(&browser).await;
    assert!(
        said.contains("american") || said.contains("country"),
        "{said}"
    );
    // The reply is spoken: its first audio is timed, after the transcript and the reply.
    let timing = browser
        .wait_for("(() => { const t = document.querySelector('#turns li .timing')?.textContent; return t && /first audio \\d+ ms/.test(t) ? t : null; })()")
        .await;
    let timing = timing.as_str().unwrap();
    assert!(
        timing.starts_with("end of speech → transcript "),
        "{timing}"
    );
    assert!(timing.contains("→ reply "), "{timing}");
    browser.screenshot("07-push-to-talk").await;
    // `api/speak` is a WAV from the TTS engine; a voice preview too.
    let wav = browser
        .eval_async(
            r#"
            const done = arguments[arguments.length - 1];
            const post = (path, body) => fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', 'x-jarvis-csrf': window.jarvisPanel.csrf }, body: JSON.stringify(body) })
              .then(async (r) => [r.status, r.headers.get('content-type'), new Uint8Array(await r.arrayBuffer()).length]);
            Promise.all([post('api/speak', { text: 'Hello there.' }), post('api/voices/preview', { voice: 'en_US-joe-medium' }), post('api/voices/preview', { voice: 'nobody' })]).then(done);
            "#,
            json!([]),
        )
        .await;
    assert_eq!(wav[0][0], json!(200), "{wav}");
    assert_eq!(wav[0][1], json!("audio/wav"));
    assert!(wav[0][2].as_u64().unwrap() > 10_000, "{wav}");
    assert_eq!(wav[1][0], json!(200), "{wav}");
    assert_eq!(wav[2][0], json!(404), "{wav}");

    // The socket's bounds, from the browser: a 10 MB message, a flood, a missing token.
    let outcome = listen_script;
    let big = browser
        .eval_async(
            &outcome("const ws = open(csrf); ws.onopen = () => ws.send(new ArrayBuffer(10 * 1024 * 1024));"),
            json!([]),
        )
        .await;
    assert_eq!(big["code"], json!(1009), "{big}");
    assert_eq!(big["got"][0]["code"], json!("too-large"), "{big}");
    assert!(
        big["got"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too large")
    );
    let flood = browser
        .eval_async(
            &outcome("const ws = open(csrf); ws.onopen = () => { for (let i = 0; i < 1000; i++) ws.send('{}'); };"),
            json!([]),
        )
        .await;
    assert_eq!(flood["code"], json!(1008), "{flood}");
    assert_eq!(flood["got"][0]["code"], json!("flood"), "{flood}");
    // More than stt.max_audio_secs (30 s) of audio in one turn.
    let long = browser
        .eval_async(
            &outcome("const ws = open(csrf); ws.onopen = () => { for (let i = 0; i < 32; i++) ws.send(new ArrayBuffer(32000)); };"),
            json!([]),
        )
        .await;
    assert_eq!(long["code"], json!(1009), "{long}");
    assert_eq!(long["got"][0]["code"], json!("too-long"), "{long}");
    assert!(
        long["got"][0]["message"]
            .as_str()
            .unwrap()
            .contains("stt.max_audio_secs")
    );
    let no_token = browser.eval_async(&outcome("open(null);"), json!([])).await;
    assert_eq!(no_token["code"], json!(1006), "{no_token}");
    // The flood closed that socket only: a new one is heard.
    let after = browser
        .eval_async(
            &outcome("const ws = open(csrf); ws.onopen = () => { ws.send(new Int16Array(8000).buffer); ws.send(JSON.stringify({ type: 'stop' })); };"),
            json!([]),
        )
        .await;
    assert_eq!(after["got"][0]["type"], json!("transcript"), "{after}");
    let feed = browser
        .eval(
            "return document.getElementById('feed-state').textContent",
            json!([]),
        )
        .await;
    assert_eq!(feed, json!("live"));
    browser.quit().await;
    app.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_pull_shows_its_progress() {
    let server = FileServer::start().await;
    let size = 4 * 1024 * 1024;
    let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    server.put("/files/test.bin", bytes);
    server.set(Behaviour::StallAfter(size / 4));
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "name = \"test-model\"\nkind = \"whisper\"\nfile = \"whisper/test.bin\"\nurl = {:?}\n",
        server.url("/files/test.bin")
    );
    let app = start(None, |c| {
        c.models.dir = dir.path().to_owned();
        c.models.read_timeout_secs = 2;
        c.models.extra = vec![toml::from_str(&extra).unwrap()];
        c.http.api_key = Secret::new("");
    })
    .await;
    let browser = Browser::start(None).await;
    browser.goto(&url(&app, "/panel/")).await;
    browser
        .wait_for("!document.getElementById('app').hidden")
        .await;
    browser.click("#tab-models").await;
    browser
        .wait_for("document.querySelector('tr[data-name=\"test-model\"] button.pull')")
        .await;
    check_accessibility(&browser, "models").await;
    browser
        .click("tr[data-name=\"test-model\"] button.pull")
        .await;
    // Stalled at a quarter: the bar gets there (through earlier progress) and shows it.
    browser
        .wait_for(&format!(
            "(() => {{ const p = document.getElementById('pull-progress'); return p.max === {size} && p.value === {}; }})()",
            size / 4
        ))
        .await;
    let value = browser
        .eval(
            "const p = document.getElementById('pull-progress'); return [p.value, p.max]",
            json!([]),
        )
        .await;
    assert_eq!(value, json!([size / 4, size]));
    browser.screenshot("08-model-pull").await;
    // The stall times out; the page says so. Then the server recovers and a second pull
    // resumes and finishes.
    browser
        .wait_for("document.getElementById('pull-text').textContent.includes('failed')")
        .await;
    server.set(Behaviour::Normal);
    browser
        .click("tr[data-name=\"test-model\"] button.pull")
        .await;
    browser
        .wait_for(
            "document.getElementById('pull-text').textContent.includes('test-model installed')",
        )
        .await;
    browser
        .wait_for("document.querySelector('tr[data-name=\"test-model\"]')?.textContent.includes('installed')")
        .await;
    assert_eq!(
        std::fs::metadata(dir.path().join("whisper/test.bin"))
            .unwrap()
            .len(),
        size as u64
    );
    browser.screenshot("09-model-installed").await;
    // Remove it.
    browser
        .click("tr[data-name=\"test-model\"] button.remove")
        .await;
    browser
        .wait_for("document.querySelector('tr[data-name=\"test-model\"]')?.textContent.includes('missing')")
        .await;
    assert!(!dir.path().join("whisper/test.bin").exists());
    browser.quit().await;
    app.shutdown.cancel();
}

/// Benchmark (`scripts/bench.sh panel`): speech-to-text (the 11 s JFK clip through Wyoming,
/// audio-stop to transcript) and first TTS audio, without panels, then with 50 panel feeds
/// open while commands flow into them, then without again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: scripts/bench.sh panel"]
async fn panel_bench_fifty_open_panels_leave_the_voice_figures_alone() {
    use wyoming::Event;
    use wyoming::asr::Transcribe;
    use wyoming::audio::{AudioChunk, AudioFormat, AudioStart, AudioStop};
    use wyoming::tts::Synthesize;

    let mut config = common::stt_config();
    config.tts.enabled = true;
    config.tts.cache = false;
    config.http.api_key = Secret::new("");
    config.http.rate_limit_per_minute = 100_000;
    let app = common::spawn_app(config).await;
    let wav = hound::WavReader::open(common::models_dir().join("whisper/samples/jfk.wav")).unwrap();
    let pcm: Vec<u8> = wav
        .into_samples::<i16>()
        .flat_map(|s| s.unwrap().to_le_bytes())
        .collect();

    // One speech-to-text turn (audio-stop -> transcript) and one synthesis (request -> first
    // audio), in milliseconds.
    let once = || {
        let pcm = pcm.clone();
        let addr = app.wyoming_addr;
        async move {
            let mut client = common::client(addr).await;
            client.send(Transcribe::default()).await.unwrap();
            client
                .send(AudioStart::new(AudioFormat::HA_MIC, None))
                .await
                .unwrap();
            for chunk in pcm.chunks(3200) {
                client
                    .send(AudioChunk::new(AudioFormat::HA_MIC, chunk.to_vec(), None))
                    .await
                    .unwrap();
            }
            let sent = std::time::Instant::now();
            client.send(AudioStop::default()).await.unwrap();
            loop {
                match common::recv(&mut client).await {
                    Some(Event::Transcript(_)) => break,
                    Some(_) => {}
                    None => panic!("no transcript"),
                }
            }
            let stt = sent.elapsed().as_secs_f64() * 1000.0;
            let mut client = common::client(addr).await;
            let sent = std::time::Instant::now();
            client
                .send(Synthesize {
                    text: "The cluster is healthy, and every backup succeeded last night.".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            loop {
                match common::recv(&mut client).await {
                    Some(Event::AudioChunk(_)) => break,
                    Some(_) => {}
                    None => panic!("no audio"),
                }
            }
            (stt, sent.elapsed().as_secs_f64() * 1000.0)
        }
    };
    // Commands flowing into the feeds: two a second.
    let http = reqwest::Client::new();
    let traffic = || {
        let http = http.clone();
        let target = url(&app, "/v1/command");
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let _ = http
                    .post(&target)
                    .json(&json!({"text": "what can you do"}))
                    .send()
                    .await;
            }
        })
    };
    // 50 panels: each follows the feed over the WebSocket the page uses, with its own page token,
    // read by one Python process (scripts/bench/panel_readers.py), so what the readers cost is
    // not counted in Jarvis's process.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let panel_url = url(&app, "/panel/");
    let open_panels = || async {
        let readers = tokio::process::Command::new(root.join(".venv-hacs/bin/python"))
            .arg(root.join("scripts/bench/panel_readers.py"))
            .args([panel_url.as_str(), "50"])
            .kill_on_drop(true)
            .spawn()
            .expect("Home Assistant's Python (.venv-hacs: scripts/bootstrap.sh --test)");
        // Until all 50 hold a socket (a 51st would be refused past panel.max_streams).
        let deadline = std::time::Instant::now() + common::LIMIT;
        while open_streams(&app).await < 50 {
            assert!(
                std::time::Instant::now() < deadline,
                "the panels did not connect"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        readers
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // What the panels cost Jarvis: its CPU time over 5 s, with and without them.
    for busy in [false, true] {
        let load = busy.then(traffic);
        let without = cpu_over(Duration::from_secs(5)).await;
        let readers = open_panels().await;
        let with = cpu_over(Duration::from_secs(5)).await;
        drop(readers);
        if let Some(load) = load {
            load.abort();
        }
        let label = if busy { "2 commands/s" } else { "no commands" };
        eprintln!(
            "panel bench: {label}: Jarvis's CPU {without:.1} ms/s without panels, {with:.1} ms/s with 50 \
             ({:+.1} ms/s, {:.2} % of a core)",
            with - without,
            (with - without) / 10.0
        );
    }
    // Interleaved, so a change in the machine's load weighs on both sides alike.
    const SETTLE: Duration = Duration::from_secs(1);
    once().await;
    for busy in [false, true] {
        let load = busy.then(traffic);
        let (mut without, mut with) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
        // Enough rounds that a median moves by less than the 5 % to be shown (8 moved by 10 %,
        // 24 by up to 6 %).
        let rounds: usize = std::env::var("JARVIS_PANEL_BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(48);
        for _ in 0..rounds {
            let (stt, tts) = once().await;
            without.0.push(stt);
            without.1.push(tts);
            let readers = open_panels().await;
            // Starting 50 reader processes is the machine's work, not the panels' cost: let it
            // settle before measuring (and likewise after they end).
            tokio::time::sleep(SETTLE).await;
            let (stt, tts) = once().await;
            with.0.push(stt);
            with.1.push(tts);
            drop(readers);
            tokio::time::sleep(SETTLE).await;
        }
        if let Some(load) = load {
            load.abort();
        }
        let label = if busy { "2 commands/s" } else { "no commands" };
        // Each round's pair (without, with) ran seconds apart: the median of the pairs' ratios
        // is the change the panels make, with the machine's drift between rounds taken out.
        let paired = |a: &[f64], b: &[f64]| {
            (median(a.iter().zip(b).map(|(a, b)| b / a).collect()) - 1.0) * 100.0
        };
        let (stt_change, tts_change) = (paired(&without.0, &with.0), paired(&without.1, &with.1));
        let (s0, t0, s1, t1) = (
            median(without.0),
            median(without.1),
            median(with.0),
            median(with.1),
        );
        eprintln!(
            "panel bench: {label}, {rounds} rounds: speech-to-text {s0:.0} ms -> {s1:.0} ms with 50 panels \
             ({:+.1} %; paired {stt_change:+.1} %), first TTS audio {t0:.0} ms -> {t1:.0} ms \
             ({:+.1} %; paired {tts_change:+.1} %)",
            (s1 / s0 - 1.0) * 100.0,
            (t1 / t0 - 1.0) * 100.0
        );
    }
    app.shutdown.cancel();
}

/// Established connections to Jarvis's HTTP port (each open panel holds one).
async fn open_streams(app: &App) -> usize {
    let port = app.http_addr.unwrap().port();
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!(":{port:04X} ");
    tcp.lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|a| format!("{a} ").ends_with(&local))
        })
        .filter(|l| l.split_whitespace().nth(3) == Some("01"))
        .count()
}

/// This process's CPU time per second of wall time over `window`, in milliseconds.
async fn cpu_over(window: Duration) -> f64 {
    fn cpu_ms() -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime: fields 14 and 15 of the file, in clock ticks (100 a second).
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        ticks * 10.0
    }
    let start = cpu_ms();
    tokio::time::sleep(window).await;
    (cpu_ms() - start) / window.as_secs_f64()
}

/// Logs in over HTTP; returns the cookie and the CSRF token.
async fn login(app: &App) -> (String, String) {
    let r = reqwest::Client::new()
        .post(url(app, "/panel/api/login"))
        .json(&json!({"key": KEY}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let csrf = r.json::<Value>().await.unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_owned();
    (cookie, csrf)
}

#[tokio::test]
async fn confirm_from_the_panel_is_capped_by_its_channel_and_cancel_is_audited() {
    use jarvis::brain::policy::Tier;
    let fake = FakeProxmox::homelab().await;
    let audit = tempfile::tempdir().unwrap();
    let app = start(Some(&fake), |c| {
        c.policy.channels.panel = Tier::SafeWrite;
        c.audit.path = audit.path().join("audit.jsonl");
    })
    .await;
    let (cookie, csrf) = login(&app).await;
    let http = reqwest::Client::new();
    let pending = || async {
        http.get(url(&app, "/panel/api/pending"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let settle = |id: String, confirm: bool| {
        http.post(url(&app, "/panel/api/confirm"))
            .header("cookie", &cookie)
            .header("x-jarvis-csrf", &csrf)
            .json(&json!({"id": id, "confirm": confirm}))
            .send()
    };

    let asked = command(
        &app,
        json!({"text": "Reboot the media server", "conversation_id": "a"}),
    )
    .await;
    assert_eq!(asked["pending_confirmation"], json!(true));
    let waiting = pending().await;
    assert_eq!(waiting[0]["id"], json!("http:a"));
    assert_eq!(waiting[0]["guest"], json!("media-server"));
    assert_eq!(waiting[0]["action"], json!("reboot"));
    // The panel may only start guests here: Confirm is refused by the policy.
    let r: Value = settle("http:a".into(), true)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["reply"].as_str().unwrap().contains("the panel"), "{r}");
    assert_eq!(r["actions"][0]["decision"], json!("refused"));
    assert_eq!(fake.count("POST /nodes/pve/qemu/101/status/reboot"), 0);
    assert_eq!(pending().await, json!([]));
    // Nothing twice.
    let r: Value = settle("http:a".into(), true)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["reply"],
        json!("There's nothing waiting for a confirmation.")
    );

    // Cancel: dropped, said, and in the audit log.
    command(
        &app,
        json!({"text": "Reboot the media server", "conversation_id": "b"}),
    )
    .await;
    let r: Value = settle("http:b".into(), false)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["reply"], json!("Okay, I won't reboot media-server."));
    assert_eq!(pending().await, json!([]));
    let log = std::fs::read_to_string(audit.path().join("audit.jsonl")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|l| l["channel"] == json!("panel")
        && l["kind"] == json!("action")
        && l["decision"] == json!("refused")));
    assert!(lines.iter().any(|l| l["channel"] == json!("panel")
        && l["text"] == json!("cancel")
        && l["outcome"] == json!("cancelled")));
    assert!(!log.contains(KEY));
    app.shutdown.cancel();
}

/// Home Assistant's own ingress in front of Jarvis: HA core's ingress view (imported from the
/// installed Home Assistant) and the Supervisor's ingress hop (`tests/ingress/ha_ingress.py`).
struct HaIngress {
    _child: tokio::process::Child,
    addr: SocketAddr,
}

impl HaIngress {
    const TOKEN: &'static str = "t0ken";

    async fn start(jarvis: SocketAddr) -> Self {
        use tokio::io::AsyncBufReadExt;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut child = tokio::process::Command::new(root.join(".venv-hacs/bin/python"))
            .arg(root.join("tests/ingress/ha_ingress.py"))
            .arg(jarvis.to_string())
            .arg(Self::TOKEN)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("Home Assistant's Python (.venv-hacs: scripts/bootstrap.sh --test)");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the ingress proxy starts")
            .unwrap()
            .expect("the ingress proxy prints its port");
        let port: u16 = line.strip_prefix("PORT ").unwrap().parse().unwrap();
        Self {
            _child: child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/api/hassio_ingress/{}/", self.addr, Self::TOKEN)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_to_talk_works_through_home_assistants_own_ingress() {
    let jfk = common::models_dir().join("whisper/samples/jfk.wav");
    let mut config = common::stt_config();
    config.tts.enabled = true;
    config.http.api_key = Secret::new(KEY);
    config.panel.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let app = common::spawn_app(config).await;
    let ingress = HaIngress::start(app.http_addr.unwrap()).await;
    let browser = Browser::start(Some(&jfk)).await;
    browser.goto(&ingress.url()).await;
    browser
        .wait_for("!document.getElementById('app').hidden")
        .await;
    // Push-to-talk: the microphone's audio over the WebSocket, through both hops.
    let said = push_to_talk(&browser).await;
    assert!(
        said.contains("american") || said.contains("country"),
        "{said}"
    );
    browser.screenshot("08-push-to-talk-ingress").await;
    // A message over HA's own limit (4 MiB) is refused by HA's proxy: the socket closes, and
    // a new one is heard.
    let outcome = |script: &str| listen_script(&format!("const ws = open(csrf); {script}"));
    let big = browser
        .eval_async(
            &outcome("ws.onopen = () => ws.send(new ArrayBuffer(10 * 1024 * 1024));"),
            json!([]),
        )
        .await;
    assert_ne!(big["code"], json!(1000), "{big}");
    let after = browser
        .eval_async(
            &outcome("ws.onopen = () => { ws.send(new Int16Array(8000).buffer); ws.send(JSON.stringify({ type: 'stop' })); };"),
            json!([]),
        )
        .await;
    assert_eq!(after["got"][0]["type"], json!("transcript"), "{after}");
    browser.quit().await;
    app.shutdown.cancel();
}
