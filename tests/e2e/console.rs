//! The relay's web console in a real browser: headless Chromium driven through chromedriver
//! (WebDriver), against the real `ponte-relay --console` with a real agent and viewer.
//!
//! An admin logs in, adds an assistant and uses the credential shown once, sees the live
//! session, ends it with a reason both programs then show, finds its row in the ledger by
//! ticket, downloads CSV and JSON that match `ledger export`, and finds it all in the audit
//! log; another session is ended while its customer is still asked whether to let anyone
//! in. Then as the attacker on the console: nothing but `/health` without a login, the
//! billing role refused the admin pages (403), password guessing rate-limited per account, a
//! forged form refused for its CSRF token, the cookie's flags, a removed account logged out.
//!
//! Needs `chromium` and `chromium-driver` (Debian), which `.ci/run` installs. Screenshots go
//! to `$PONTE_SCREENSHOTS` when it is set (the README's come from there).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use ponte_testbed::{Running, binary, free_tcp_port};

use crate::world::{WAIT, run_with_timeout, start_text_agent, text};

pub const PASSWORD: &str = "correct horse battery staple";

/// A headless Chromium behind its chromedriver.
struct Browser {
    client: Client,
    _driver: Running,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let port = free_tcp_port();
        let mut driver = Command::new("chromedriver");
        driver.arg(format!("--port={port}")).stdin(Stdio::null());
        let driver = Running::start(driver);
        driver.expect("started successfully");
        let profile = tempfile::tempdir().unwrap();
        let capabilities = serde_json::json!({
            // The relay's self-signed certificate beyond loopback, accepted as its operator
            // would once (after checking its fingerprint).
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,900", "--lang=en-GB",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("cannot start Chromium through chromedriver: {e}"));
        Browser {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// The page's visible text.
    async fn text(&self) -> String {
        self.client
            .find(Locator::Css("body"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn type_into(&self, css: &str, value: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    /// Clicks what `css` names (a submit button) and waits for the next page.
    async fn click(&self, css: &str) {
        let page = self.client.find(Locator::Css("body")).await.unwrap();
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let deadline = Instant::now() + WAIT;
        // The old page's body goes stale when the next page replaces it.
        while page.tag_name().await.is_ok() {
            assert!(Instant::now() < deadline, "no new page after clicking {css}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn log_in(&self, base: &str, name: &str, password: &str) -> String {
        self.log_in_with_code(base, name, password, "").await
    }

    async fn log_in_with_code(&self, base: &str, name: &str, password: &str, code: &str) -> String {
        self.goto(&format!("{base}login")).await;
        self.type_into("input[name=name]", name).await;
        self.type_into("input[name=password]", password).await;
        self.type_into("input[name=code]", code).await;
        self.click("form.login button[type=submit]").await;
        self.text().await
    }

    /// A request made outside the page (a script in it could not: the console's
    /// Content-Security-Policy allows none) with the browser's login cookie, if it has one:
    /// `(status, body)`. With `post_body`, a form POST.
    async fn request(&self, relay: &Relay, path: &str, post_body: Option<&str>) -> (u16, String) {
        let cookie = self.client.get_named_cookie("ponte_console").await.ok();
        let cookie = cookie.as_ref().map(|c| c.value());
        let (status, _, body) = http(&relay.base, path, cookie, post_body).await;
        (status, body)
    }

    /// A wrong-password login for `name` made outside the page (not counted against the
    /// browser's own session): its status.
    async fn request_login(&self, relay: &Relay, name: &str) -> u16 {
        http(
            &relay.base,
            "/login",
            None,
            Some(&format!("name={name}&password=not+the+password")),
        )
        .await
        .0
    }

    /// Keeps a screenshot in `$PONTE_SCREENSHOTS/<name>.png`, if that is set.
    async fn keep(&self, name: &str) {
        if let Some(dir) = std::env::var_os("PONTE_SCREENSHOTS") {
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
        }
    }

    /// Reloads `url` until its text contains `needle` (or fails after [`WAIT`]).
    async fn until(&self, url: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            self.goto(url).await;
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(Instant::now() < deadline, "{needle:?} never on {url}:\n{text}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// One HTTP/1.1 request to the console at `base` (`http://HOST:PORT/`), with the login cookie
/// `cookie` if given; with `post_body`, a form POST. Returns the status, the head and the body.
pub async fn http(
    base: &str,
    path: &str,
    cookie: Option<&str>,
    post_body: Option<&str>,
) -> (u16, String, String) {
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    http_as(base, host, path, cookie, post_body).await
}

/// [`http`], saying `host` in the Host header.
pub async fn http_as(
    base: &str,
    host: &str,
    path: &str,
    cookie: Option<&str>,
    post_body: Option<&str>,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cookie = cookie
        .map(|c| format!("Cookie: ponte_console={c}\r\n"))
        .unwrap_or_default();
    let address = base.trim_start_matches("http://").trim_end_matches('/');
    let request = match post_body {
        None => format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}Connection: close\r\n\r\n"),
        Some(body) => format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    };
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

/// `%XX` escapes decoded (a data: URL's text).
fn percent_decode(text: &str) -> String {
    let mut out = Vec::new();
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex: String = bytes.by_ref().take(2).map(char::from).collect();
            out.push(u8::from_str_radix(&hex, 16).unwrap());
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).unwrap()
}

/// Logs in to the console at `base` without a browser; returns the login cookie.
pub async fn log_in(base: &str, name: &str, password: &str) -> String {
    let form = format!("name={name}&password={}", password.replace(' ', "+"));
    let (status, head, body) = http(base, "/login", None, Some(&form)).await;
    assert_eq!(status, 303, "{head}\n{body}");
    let at = head.find("ponte_console=").unwrap() + "ponte_console=".len();
    head[at..at + 64].to_owned()
}

/// The value of the first `name="NAME" value="…"` after `from` in an HTML page.
pub fn field_after<'a>(html: &'a str, from: &str, name: &str) -> &'a str {
    let rest = &html[html
        .find(from)
        .unwrap_or_else(|| panic!("{from:?} not in {html}"))..];
    let needle = format!("name=\"{name}\" value=\"");
    let at = rest.find(&needle).unwrap() + needle.len();
    &rest[at..at + rest[at..].find('"').unwrap()]
}

/// A relay with its console, in `dir`.
struct Relay {
    running: Running,
    data: PathBuf,
    addr: std::net::SocketAddr,
    fingerprint: String,
    /// `http://127.0.0.1:PORT/`
    base: String,
}

impl Relay {
    fn start(dir: &Path, extra: &[&str]) -> Relay {
        let data = dir.join("relay");
        let mut cmd = Command::new(binary("ponte-relay"));
        // On loopback unless the test says where.
        let console: &[&str] = if extra.contains(&"--console") {
            &[]
        } else {
            &["--console", "127.0.0.1:0"]
        };
        cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .args(console)
            .args(extra)
            .stdin(Stdio::null());
        let running = Running::start(cmd);
        let addr = running.line_after("listening on ", WAIT).parse().unwrap();
        let fingerprint = running.line_after("fingerprint: ", WAIT);
        let base = running.line_after("console on ", WAIT);
        assert!(base.ends_with('/'), "{base}");
        Relay {
            running,
            data,
            addr,
            fingerprint,
            base,
        }
    }

    /// Runs `ponte-relay ARGS` against this relay's data, with `stdin` as its input.
    fn cli(&self, args: &[&str], stdin: &str) -> std::process::Output {
        let mut cmd = Command::new(binary("ponte-relay"));
        cmd.args(args)
            .arg("--data-dir")
            .arg(&self.data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    fn operator(&self, name: &str, role: &str) {
        let out = self.cli(
            &["console-user", "add", name, "--role", role],
            &format!("{PASSWORD}\n"),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }

    /// A customer's `ponte-agent` at `home` trusting this relay, sharing `home/agent-dir`, with
    /// the front-end and grants of `args`.
    fn agent(&self, home: &Path, args: &[&str], stdin: Stdio) -> Command {
        std::fs::create_dir_all(home.join("agent-dir")).unwrap();
        let mut agent = program(home, "ponte-agent", self);
        agent
            .args(args)
            .args(["--fingerprint", &self.fingerprint, "--dir"])
            .arg(home.join("agent-dir"))
            .stdin(stdin);
        agent
    }

    /// An assistant's `ponte-viewer connect` to session `id` for `ticket` trusting this
    /// relay, running the commands of `batch`.
    fn viewer(&self, home: &Path, (id, code): (&str, &str), ticket: &str, batch: &Path) -> Command {
        let mut viewer = program(home, "ponte-viewer", self);
        viewer
            .args(["connect", id, "--code", code, "--ticket", ticket])
            .args(["--fingerprint", &self.fingerprint, "--batch"])
            .arg(batch)
            .stdin(Stdio::null());
        viewer
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path.trim_start_matches('/'))
    }
}

fn program(home: &Path, bin: &str, relay: &Relay) -> Command {
    let mut cmd = Command::new(binary(bin));
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("PONTE_RELAY", relay.addr.to_string())
        .env_remove("PONTE_CREDENTIAL")
        .env_remove("RUST_LOG");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_hands_out_a_credential_watches_a_session_ends_it_and_bills_it() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(
        dir.path(),
        &["--assistants", "required", "--ledger-addresses", "full"],
    );
    relay.operator("anna", "admin");
    let b = Browser::start().await;

    let landed = b.log_in(&relay.base, "anna", PASSWORD).await;
    assert_eq!(b.path().await, "/sessions", "{landed}");
    assert!(
        landed.contains("anna (admin)") && landed.contains("No session right now"),
        "{landed}"
    );

    // A new assistant; its credential is on the page once.
    b.goto(&relay.url("assistants")).await;
    b.type_into("input[name=name]", "carol").await;
    b.click("form[action='/assistants/add'] button").await;
    let added = b.text().await;
    let credential = match b.client.find(Locator::Id("credential")).await {
        Ok(c) => c.text().await.unwrap(),
        Err(e) => panic!("{e}: {added}"),
    };
    assert!(credential.starts_with("ponte-assistant-v1-"), "{credential}");
    // The Download button's file is the same credential, as a line of text.
    let href = b.client.find(Locator::Css("a[download]")).await.unwrap();
    let href = href.attr("href").await.unwrap().unwrap();
    let downloaded = percent_decode(href.strip_prefix("data:text/plain;charset=utf-8,").unwrap());
    assert_eq!(downloaded, format!("{}\n", credential.trim()));
    b.keep("console-assistant-added").await;
    b.goto(&relay.url("assistants")).await;
    let listed = b.text().await;
    assert!(
        listed.contains("carol") && !listed.contains(credential.trim()),
        "shown once: {listed}"
    );
    let credential_file = dir.path().join("carol.credential");
    std::fs::write(&credential_file, downloaded).unwrap();

    // A customer and the assistant with that credential, in a session that lasts.
    let home = dir.path().join("home");
    let agent = relay.agent(&home, &["--json", "--allow", "terminal"], Stdio::null());
    let agent = Running::start(agent);
    let ready = agent.event("ready", WAIT);
    let id = ready["session_id"].as_str().unwrap().replace(' ', "");
    let code = ready["code"].as_str().unwrap().to_owned();
    let batch = dir.path().join("batch");
    std::fs::write(&batch, "exec sleep 300\n").unwrap();
    let mut viewer = relay.viewer(&home, (&id, &code), "ACME-7", &batch);
    viewer.arg("--credential").arg(&credential_file);
    let viewer = tokio::task::spawn_blocking(move || run_with_timeout(viewer, WAIT * 2));

    // It appears, with its ticket and assistant, and without its whole ID.
    let live = b.until(&relay.url("sessions"), "ACME-7").await;
    assert!(live.contains("carol"), "{live}");
    assert!(
        live.contains(&format!("{} •••", &id[..3])) && !live.contains(&id),
        "{live}"
    );
    agent.event("activity", WAIT);
    b.keep("console-sessions").await;

    // Ended from the console, with a reason both sides see.
    let reason = "Suspected fraud: call the office on 0123";
    b.type_into("form[action='/sessions/end'] input[name=reason]", reason)
        .await;
    b.click("form[action='/sessions/end'] button").await;
    let ended = agent.event("ended", WAIT);
    assert!(
        ended["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("the relay's operator ended the session: \"{reason}\"")),
        "{ended}"
    );
    let out = viewer.await.unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&format!("the relay's operator ended the session: \"{reason}\"")),
        "{}",
        text(&out.stderr)
    );
    assert!(
        b.until(&relay.url("sessions"), "No session right now")
            .await
            .contains("0 session(s)")
    );

    // The ledger has it, by ticket; the downloads match `ledger export`.
    let ledger = b
        .until(
            &relay.url("ledger?ticket=ACME-7&reason=ended_by_operator"),
            "1 session(s)",
        )
        .await;
    assert!(
        ledger.contains("1 session(s)") && ledger.contains("carol"),
        "{ledger}"
    );
    b.keep("console-ledger").await;
    // Another session in the ledger, of another ticket, for the filter to leave out.
    let mut other = ponte_relay::ledger::Target::parse(None, &relay.data)
        .unwrap()
        .open()
        .await
        .unwrap()
        .unwrap();
    let mut row = other.rows(i64::MIN, i64::MAX).await.unwrap().remove(0);
    row.id += 1;
    row.session = "111222333".into();
    row.ticket = Some("OTHER-1".into());
    other.upsert(vec![row]).await.unwrap();
    let (status, csv) = b.request(&relay, "/ledger.csv?ticket=ACME-7", None).await;
    assert_eq!(status, 200);
    let export = text(&relay.cli(&["ledger", "export"], "").stdout);
    assert_eq!(export.lines().count(), 3, "{export}");
    let expected: String = export
        .lines()
        .filter(|l| !l.contains("OTHER-1"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(csv, expected);
    assert!(csv.contains(&id) && csv.contains("ended_by_operator"), "{csv}");
    let (_, json) = b.request(&relay, "/ledger.json?ticket=ACME-7", None).await;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let all: serde_json::Value = serde_json::from_str(&text(
        &relay.cli(&["ledger", "export", "--format", "json"], "").stdout,
    ))
    .unwrap();
    let acme: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ticket"] == "ACME-7")
        .cloned()
        .collect();
    assert_eq!(json, serde_json::Value::Array(acme));
    let (_, other) = b.request(&relay, "/ledger.csv?ticket=OTHER-1", None).await;
    assert!(
        other.lines().count() == 2 && other.contains("111222333"),
        "{other}"
    );
    let (_, none) = b.request(&relay, "/ledger.csv?ticket=NONE-1", None).await;
    assert_eq!(none.lines().count(), 1, "only the header: {none}");

    // The report per ticket and the audit log.
    let report = b
        .until(&relay.url("reports?by=ticket&round_up=15"), "ACME-7")
        .await;
    assert!(report.contains("0:15:00"), "rounded up to 15 minutes: {report}");
    let audit = b.until(&relay.url("audit"), "end-session").await;
    for needle in ["login", "add-assistant", "carol", reason] {
        assert!(
            audit.contains(needle),
            "{needle:?} not in the audit log:\n{audit}"
        );
    }
    b.keep("console-audit").await;

    // Removing the assistant.
    b.goto(&relay.url("assistants")).await;
    b.click("form[action='/assistants/remove'] button").await;
    assert!(!b.text().await.contains("carol"));
    let list = relay.cli(&["assistant", "list"], "");
    assert!(!text(&list.stdout).contains("carol"));

    // An operator with a second factor: the password alone is not enough, and a code works once.
    let out = relay.cli(
        &["console-user", "add", "tess", "--role", "admin", "--totp"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let mut lines = printed.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("otpauth://totp/Ponte%20relay:tess?secret=")
    );
    let secret = data_encoding::BASE32_NOPAD
        .decode(lines.next().unwrap().as_bytes())
        .unwrap();
    b.click("header form button").await;
    assert!(
        b.log_in(&relay.base, "tess", PASSWORD)
            .await
            .contains("Wrong name, password or code")
    );
    let step = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30;
    let code = ponte_relay::console::accounts::totp_at(&secret, step).unwrap();
    b.log_in_with_code(&relay.base, "tess", PASSWORD, &code).await;
    assert_eq!(b.path().await, "/sessions");
    b.click("header form button").await;
    let again = b.log_in_with_code(&relay.base, "tess", PASSWORD, &code).await;
    assert!(
        again.contains("Wrong name, password or code"),
        "a code works once: {again}"
    );
    b.client.clone().close().await.unwrap();
}

/// The operator ends a session while its customer is still being asked whether to let the
/// assistant in: the question goes, the agent exits, and both sides say the operator ended it,
/// in the operator's words; the ledger bills it as ended by the operator. (Without a browser:
/// the console's form, as the page posts it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_ends_a_session_while_the_customer_is_still_asked() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    relay.operator("anna", "admin");
    let home = dir.path().join("home");
    let agent = relay.agent(&home, &["--text", "--no-quick-access"], Stdio::piped());
    let (mut agent, id, code) = start_text_agent(agent);
    let id = id.replace(' ', "");
    let batch = dir.path().join("batch");
    std::fs::write(&batch, "chat let me in\n").unwrap();
    let viewer = relay.viewer(&home, (&id, &code), "ACME-9", &batch);
    let viewer = tokio::task::spawn_blocking(move || run_with_timeout(viewer, WAIT * 2));
    agent.expect("What may they do?");

    let cookie = log_in(&relay.base, "anna", PASSWORD).await;
    let (_, _, page) = http(&relay.base, "/sessions", Some(&cookie), None).await;
    assert!(page.contains("ACME-9"), "{page}");
    let csrf = field_after(&page, "<body", "csrf");
    let row = field_after(&page, "action=\"/sessions/end\"", "row");
    let words = "Not one of ours: hang up";
    let form = format!("csrf={csrf}&node=&row={row}&reason={}", words.replace(' ', "+"));
    let (status, head, _) = http(&relay.base, "/sessions/end", Some(&cookie), Some(&form)).await;
    assert_eq!(status, 303, "{head}");

    let told = format!("the relay's operator ended the session: \"{words}\"");
    agent.expect(&told);
    agent.wait(WAIT);
    assert!(
        !agent.seen().iter().any(|l| l.contains("Connected: ")),
        "nobody was let in: {:?}",
        agent.seen()
    );
    let out = viewer.await.unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(&told), "{}", text(&out.stderr));
    let export = text(&relay.cli(&["ledger", "export"], "").stdout);
    let billed: Vec<_> = export.lines().filter(|l| l.contains(&id)).collect();
    assert!(
        billed.len() == 1 && billed[0].contains("ended_by_operator") && billed[0].contains("ACME-9"),
        "{export}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_holds_against_strangers_guessers_forgers_and_the_billing_role() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    for (name, role) in [("anna", "admin"), ("dora", "admin"), ("bill", "billing")] {
        relay.operator(name, role);
    }
    let b = Browser::start().await;

    // Nothing but the health check without a login.
    b.goto(&relay.url("health")).await;
    assert_eq!(b.text().await.trim(), "ok");
    for path in [
        "",
        "sessions",
        "ledger",
        "ledger.csv",
        "ledger.json",
        "reports",
        "assistants",
        "cluster",
        "audit",
    ] {
        b.goto(&relay.url(path)).await;
        assert_eq!(b.path().await, "/login", "{path} without a login");
    }
    let (status, _) = b
        .request(&relay, "/assistants/add", Some("csrf=x&name=eve"))
        .await;
    assert_eq!(status, 303, "sent to the login page");

    // Guessing anna's password: a few tries, then the account waits, even for the right one.
    // (Its allowance grows back one try in 12 s: on a slow machine a sixth or seventh guess may
    // still be heard.)
    let mut tries = 0;
    loop {
        let page = b.log_in(&relay.base, "anna", "wrong password!").await;
        tries += 1;
        if page.contains("Too many attempts") {
            break;
        }
        assert!(page.contains("Wrong name, password or code"), "{page}");
        assert!(tries < 8, "still guessing after {tries} tries");
    }
    assert!(tries >= 6, "limited after {tries} tries");
    assert!(
        b.log_in(&relay.base, "anna", PASSWORD)
            .await
            .contains("Too many attempts")
    );
    // A name that is no account is limited the same way, on its own: whether a name is an
    // account cannot be told from when the limit comes.
    for _ in 0..5 {
        assert_eq!(b.request_login(&relay, "ghost").await, 401);
    }
    assert_eq!(b.request_login(&relay, "ghost").await, 429);
    assert_eq!(b.request_login(&relay, "ghost2").await, 401);
    // Another site's page re-pointed at the console's address (DNS rebinding) gets nothing.
    let rebound = http_as(&relay.base, "evil.example:80", "/login", None, None).await;
    assert_eq!(rebound.0, 421, "{}", rebound.1);
    b.keep("console-login-limited").await;

    // Billing sees the ledger and reports only.
    let landed = b.log_in(&relay.base, "bill", PASSWORD).await;
    assert_eq!(b.path().await, "/ledger", "{landed}");
    assert!(
        !landed.contains("Assistants") && !landed.contains("Audit log"),
        "{landed}"
    );
    for path in ["/sessions", "/assistants", "/cluster", "/audit"] {
        let (status, body) = b.request(&relay, path, None).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (status, _) = b.request(&relay, "/reports", None).await;
    assert_eq!(status, 200);
    let csrf_of = |html: &str| field_after(html, "<body", "csrf").to_owned();
    let (_, page) = b.request(&relay, "/ledger", None).await;
    let token = csrf_of(&page);
    let (status, _) = b
        .request(&relay, "/assistants/add", Some(&format!("csrf={token}&name=eve")))
        .await;
    assert_eq!(status, 403, "billing may not add assistants");
    for (path, form) in [
        ("/assistants/remove", format!("csrf={token}&name=eve")),
        ("/sessions/end", format!("csrf={token}&node=&row=1&reason=x")),
    ] {
        let (status, _) = b.request(&relay, path, Some(&form)).await;
        assert_eq!(status, 403, "billing may not POST {path}");
    }

    // The cookie is out of scripts' reach and never sent cross-site or in clear.
    let cookie = b.client.get_named_cookie("ponte_console").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(
        cookie.same_site().map(|s| s.to_string()).as_deref(),
        Some("Strict")
    );

    // An admin's form with a forged token is refused; the same with the page's token works.
    let old_cookie = cookie.value().to_owned();
    b.click("header form button").await;
    assert_eq!(b.path().await, "/login");
    let (status, head, _) = http(&relay.base, "/ledger", Some(&old_cookie), None).await;
    assert_eq!(status, 303, "a cookie replayed after its logout: {head}");
    b.log_in(&relay.base, "dora", PASSWORD).await;
    assert_eq!(b.path().await, "/sessions");
    let (status, _) = b
        .request(
            &relay,
            "/assistants/add",
            Some(&format!("csrf={}&name=eve", "0".repeat(64))),
        )
        .await;
    assert_eq!(status, 403);
    assert!(!text(&relay.cli(&["assistant", "list"], "").stdout).contains("eve"));
    let (_, page) = b.request(&relay, "/assistants", None).await;
    let (status, body) = b
        .request(
            &relay,
            "/assistants/add",
            Some(&format!("csrf={}&name=eve", csrf_of(&page))),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(text(&relay.cli(&["assistant", "list"], "").stdout).contains("eve"));

    // An account removed while logged in is logged out at its next request.
    let out = relay.cli(&["console-user", "remove", "dora"], "");
    assert!(out.status.success());
    b.goto(&relay.url("sessions")).await;
    assert_eq!(b.path().await, "/login");
    drop(relay.running);
    b.client.clone().close().await.unwrap();
}

/// Beyond loopback the console speaks only HTTPS, with the relay's own certificate: a relay
/// whose console listens on an address of a veth pair to a network namespace of the test's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_the_console_speaks_only_https_with_the_relays_certificate() {
    let ns = crate::path::Namespace::new();
    let addr = std::net::SocketAddr::new(ns.outer_addr(), free_tcp_port());
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--console", &addr.to_string()]);
    assert_eq!(relay.base, format!("https://{addr}/"));
    relay.operator("anna", "admin");

    // Plain HTTP gets no page.
    // (`http` panics when the server hangs up mid-answer: that is a refusal too.)
    let plain = tokio::spawn(async move { http(&format!("http://{addr}/"), "/health", None, None).await });
    let plain = tokio::time::timeout(WAIT, plain).await.unwrap();
    assert!(
        plain.is_err() || plain.as_ref().is_ok_and(|(status, _, _)| *status != 200),
        "{plain:?}"
    );

    // The certificate is the relay's: the fingerprint its clients pin.
    let script = format!(
        "openssl s_client -connect {addr} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    let seen: String = text(&out.stdout)
        .split('=')
        .nth(1)
        .unwrap_or_default()
        .trim()
        .replace(':', "")
        .to_lowercase();
    assert_eq!(seen, relay.fingerprint, "{}", text(&out.stdout));

    // And a browser logs in over it.
    let b = Browser::start().await;
    b.log_in(&relay.base, "anna", PASSWORD).await;
    assert_eq!(b.path().await, "/sessions");
    assert_eq!(b.client.current_url().await.unwrap().scheme(), "https");
    b.client.clone().close().await.unwrap();
}
