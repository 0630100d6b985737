//! The assistant's commands in a session, typed at the prompt or read from a batch file:
//! `exec CMD`, `ls [PATH]`, `get REMOTE LOCAL`, `put LOCAL REMOTE`, `info`, `clipboard [set TEXT]`,
//! `screen`, `screenshot FILE`,
//! `monitor [N]`, `click X Y`, `type TEXT`, `chat TEXT`, `quit`.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, bail};
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ponte_e2e::app::ListedKind;
use ponte_e2e::screen::InputEvent;
use ponte_session::files;
use ponte_viewer::screen_client::{self, Progress, ScreenClient};
use ponte_viewer::{QuickAccessReply, TerminalOutput, Viewer};
use ponte_wire::text::PeerText;

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run a command on the customer's machine.
    Exec(String),
    /// List a folder on the customer's machine (`.`: the shared folder).
    List(String),
    /// Copy a remote path to a local one.
    Get {
        /// Path on the customer's machine.
        remote: String,
        /// Local destination.
        local: String,
        /// Replace an existing local destination.
        force: bool,
    },
    /// Copy a local path to a remote one.
    Put {
        /// Local source.
        local: String,
        /// Path on the customer's machine.
        remote: String,
        /// Replace an existing remote destination.
        force: bool,
    },
    /// Show system information.
    Info,
    /// Show the customer's clipboard text, or put text on it.
    Clipboard(Option<String>),
    /// Send a chat message.
    Chat(String),
    /// Interactive shell on the customer's computer (prompt only).
    Shell,
    /// Open a window showing the customer's screen.
    Screen,
    /// Save the customer's current screen as PNG.
    Screenshot(String),
    /// List the customer's monitors, or share monitor N (counting from 1) instead.
    Monitor(Option<usize>),
    /// Click at a position on the customer's screen.
    Click {
        /// Horizontal position.
        x: u16,
        /// Vertical position.
        y: u16,
        /// X button (1 left, 2 middle, 3 right).
        button: u8,
    },
    /// Type text on the customer's computer.
    Type(String),
    /// Ask the customer for quick access and remember their device under this name.
    Remember {
        /// The name in the address book.
        name: String,
        /// Any verified assistant of the organisation, not only this one.
        organisation: bool,
        /// How long, in days.
        days: u32,
    },
    /// End the session.
    Quit,
    /// Show the commands.
    Help,
}

/// Help text of the prompt.
pub const HELP: &str = "commands:
  shell                 open a terminal on the customer's computer (exit the shell to return)
  exec CMD              run CMD on the customer's computer (output and exit status)
  ls [PATH]             list a folder on the customer's computer (default: the shared folder)
  get [-f] REMOTE LOCAL copy a file or directory from the customer's computer
  put [-f] LOCAL REMOTE copy a file or directory to the customer's computer
  info                  show the customer's system information
  screen                open a window with the customer's screen (mouse and keyboard when allowed)
  screenshot FILE.png   save the customer's current screen as PNG
  monitor [N]           list the customer's shared monitors, or switch to monitor N
  click X Y [BUTTON]    click at X,Y on the customer's screen (left, middle or right)
  type TEXT             type TEXT on the customer's computer
  clipboard             show the text on the customer's clipboard (needs 'clipboard')
  clipboard set TEXT    put TEXT on the customer's clipboard
  chat TEXT             send a chat message
  remember [--org] [--days N] NAME
                        ask the customer to let you (--org: your organisation) reconnect
                        without a code for N days (default 90); saves their device as NAME
                        for `ponte-viewer connect --device NAME`
  quit                  end the session";

/// Parses one line; `None` for blank lines and comments.
pub fn parse(line: &str) -> anyhow::Result<Option<Command>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let two = |rest: &str| -> anyhow::Result<(bool, String, String)> {
        let mut parts: Vec<&str> = rest.split_whitespace().collect();
        let force = parts.first() == Some(&"-f");
        if force {
            parts.remove(0);
        }
        match parts.as_slice() {
            [a, b] => Ok((force, (*a).to_owned(), (*b).to_owned())),
            _ => bail!("{word} needs two paths (no spaces in paths): {word} [-f] FROM TO"),
        }
    };
    Ok(Some(match word {
        "exec" if !rest.is_empty() => Command::Exec(rest.to_owned()),
        "exec" => bail!("exec needs a command"),
        "ls" if rest.is_empty() => Command::List(".".to_owned()),
        "ls" => Command::List(rest.to_owned()),
        "get" => {
            let (force, remote, local) = two(rest)?;
            Command::Get { remote, local, force }
        }
        "put" => {
            let (force, local, remote) = two(rest)?;
            Command::Put { local, remote, force }
        }
        "info" => Command::Info,
        "clipboard" if rest.is_empty() => Command::Clipboard(None),
        "clipboard" => match rest.split_once(char::is_whitespace) {
            Some(("set", text)) if !text.trim().is_empty() => {
                Command::Clipboard(Some(text.trim().to_owned()))
            }
            _ => bail!("usage: clipboard, or clipboard set TEXT"),
        },
        "chat" if !rest.is_empty() => Command::Chat(rest.to_owned()),
        "chat" => bail!("chat needs a message"),
        "shell" => Command::Shell,
        "screen" => Command::Screen,
        "screenshot" if !rest.is_empty() => Command::Screenshot(rest.to_owned()),
        "screenshot" => bail!("screenshot needs a file name: screenshot FILE.png"),
        "monitor" if rest.is_empty() => Command::Monitor(None),
        "monitor" => match rest.parse::<usize>() {
            Ok(n) if n >= 1 => Command::Monitor(Some(n - 1)),
            _ => bail!("usage: monitor [N] (N counts from 1; `monitor` lists them)"),
        },
        "click" => {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            let usage = "usage: click X Y [left|middle|right]";
            let (x, y, button) = match parts.as_slice() {
                [x, y] => (x, y, "left"),
                [x, y, b] => (x, y, *b),
                _ => bail!("{usage}"),
            };
            let button = match button {
                "left" | "1" => 1,
                "middle" | "2" => 2,
                "right" | "3" => 3,
                other => bail!("unknown button {other:?}; {usage}"),
            };
            Command::Click {
                x: x.parse().with_context(|| format!("bad X {x:?}; {usage}"))?,
                y: y.parse().with_context(|| format!("bad Y {y:?}; {usage}"))?,
                button,
            }
        }
        "type" if !rest.is_empty() => Command::Type(rest.to_owned()),
        "type" => bail!("type needs text"),
        "remember" => {
            let usage = "usage: remember [--org] [--days N] NAME";
            let mut organisation = false;
            let mut days = 90;
            let mut words = rest.split_whitespace().peekable();
            while let Some(flag) = words.next_if(|w| w.starts_with("--")) {
                match flag {
                    "--org" => organisation = true,
                    "--days" => {
                        let n = words.next().with_context(|| usage.to_owned())?;
                        days = n
                            .parse()
                            .with_context(|| format!("bad number of days {n:?}; {usage}"))?;
                    }
                    other => bail!("unknown option {other:?}; {usage}"),
                }
            }
            let name = words.collect::<Vec<_>>().join(" ");
            if name.is_empty() {
                bail!("{usage}");
            }
            Command::Remember {
                name,
                organisation,
                days,
            }
        }
        "quit" | "exit" => Command::Quit,
        "help" | "?" => Command::Help,
        other => bail!("unknown command {other:?}; type help"),
    }))
}

/// Runs commands against a joined session and prints what happens. Everything from the
/// customer's computer is printed through `PeerText` (inert), except a terminal's and a
/// command's own output, which goes to the assistant's terminal as a terminal shows it.
pub struct Runner {
    viewer: Viewer,
    /// The shared screen, once asked for.
    screen: Option<ScreenClient>,
    /// What had arrived at the last screenshot.
    last_shot: Progress,
    /// The name to save the customer's device under, when they answer the quick-access request
    /// at the end of the session.
    remember: Option<String>,
}

/// A progress bar for a transfer, fed by [`Progress`] steps: shown once the transfer starts
/// (not while the customer is still being asked), with the size it announced.
fn progress_bar(what: &str) -> (ProgressBar, impl FnMut(files::Progress) + Send + use<>) {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    let feed = bar.clone();
    (bar, move |step| match step {
        files::Progress::Started(totals) => {
            feed.set_length(totals.bytes);
            feed.set_draw_target(ProgressDrawTarget::stderr());
        }
        files::Progress::Advanced(n) => feed.inc(n),
    })
}

/// Output lines with everything but their text escaped (see [`PeerText`]); line breaks stay.
fn inert_lines(data: &[u8]) -> String {
    String::from_utf8_lossy(data)
        .split('\n')
        .map(|line| PeerText::from(line.strip_suffix('\r').unwrap_or(line)).to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether the terminal is in raw mode (a remote shell runs): lines then need a carriage
/// return of their own.
static RAW: AtomicBool = AtomicBool::new(false);

/// Runs `f`, which may block (a write to a stdout piped into a paused pager, a PNG written to a
/// slow disk), off the runtime's scheduling: the command runs on a worker, and the tasks queued
/// behind it there — the connection's, whose keep-alives hold the session — move to another
/// thread meanwhile.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Prints a line of the viewer's own on stderr, whatever mode the terminal is in.
pub fn say(line: &str) {
    if RAW.load(Ordering::Relaxed) {
        eprint!("\r{line}\r\n");
    } else {
        eprintln!("{line}");
    }
}

/// Saves the customer's device under `name` in the address book.
async fn save_device(name: String, grant: ponte_e2e::app::QuickAccessGrant) -> anyhow::Result<()> {
    use ponte_viewer::devices::Devices;
    let path = Devices::default_path();
    // Read again under the lock: another viewer may have added a device while the customer
    // thought about it.
    let added = name.clone();
    tokio::task::spawn_blocking(move || Devices::update(&path, |book| book.add(&added, grant))).await??;
    eprintln!(
        "[ponte] the customer allowed quick access; saved as {name:?} (ponte-viewer connect --device {name:?})"
    );
    Ok(())
}

impl Runner {
    /// Commands for `viewer`.
    pub fn new(viewer: Viewer) -> Runner {
        Runner {
            viewer,
            screen: None,
            last_shot: Progress::default(),
            remember: None,
        }
    }

    /// Ends the session; with a quick-access request pending, waits for the customer's
    /// answer and saves their device. `Ok(false)`: the customer did not allow it.
    pub async fn finish(&mut self) -> anyhow::Result<bool> {
        if self.remember.is_some() {
            eprintln!("[ponte] waiting for the customer's answer about quick access…");
        }
        let answer = self.viewer.quit().await;
        let Some(name) = self.remember.take() else {
            return Ok(true);
        };
        match answer {
            Some(grant) => save_device(name, grant).await.map(|()| true),
            None => {
                eprintln!("[ponte] the customer did not allow quick access");
                Ok(false)
            }
        }
    }

    /// The session.
    pub fn viewer(&mut self) -> &mut Viewer {
        &mut self.viewer
    }

    /// Runs one command; `Ok(false)` means the session should end.
    pub async fn run(&mut self, command: Command) -> anyhow::Result<bool> {
        if let Some(reason) = self.viewer.state().ended {
            bail!("session ended: {reason}");
        }
        match command {
            Command::Exec(cmd) => self.exec(&cmd).await?,
            Command::Get { remote, local, force } => {
                let (bar, mut feed) = progress_bar(&remote);
                let totals = self
                    .viewer
                    .get(&remote, Path::new(&local), force, &mut feed)
                    .await;
                bar.finish_and_clear();
                let totals = totals?;
                eprintln!(
                    "[ponte] received {remote} → {local} ({} file(s), {} bytes, hash verified)",
                    totals.files, totals.bytes
                );
            }
            Command::Put { local, remote, force } => {
                let (bar, mut feed) = progress_bar(&local);
                let totals = self
                    .viewer
                    .put(Path::new(&local), &remote, force, &mut feed)
                    .await;
                bar.finish_and_clear();
                let totals = totals?;
                eprintln!(
                    "[ponte] sent {local} → {remote} ({} file(s), {} bytes, hash verified by the customer's computer)",
                    totals.files, totals.bytes
                );
            }
            Command::Info => self.info().await?,
            Command::List(path) => self.list(&path).await?,
            // The customer's text, inert: the assistant reads it here and copies what they need.
            Command::Clipboard(None) => println!("{}", self.viewer.clipboard().await?),
            Command::Clipboard(Some(text)) => self.viewer.set_clipboard(&text).await?,
            Command::Chat(text) => self.viewer.chat(&text).await?,
            Command::Shell => bail!("shell needs an interactive terminal; in a batch use exec CMD"),
            Command::Screen => {
                let state = self.viewer.watch();
                let client = self.screen().await?;
                ponte_viewer::window::show(client, state).await?;
            }
            Command::Screenshot(path) => self.screenshot(&path).await?,
            Command::Monitor(None) => {
                let (names, current) = self.screen().await?.monitors().await?;
                for (i, name) in names.iter().enumerate() {
                    let shared = if i == current { "  (shared)" } else { "" };
                    println!("{:>2}  {name}{shared}", i + 1);
                }
            }
            Command::Monitor(Some(index)) => {
                let client = self.screen().await?;
                client.switch(index).await?;
                let (names, _) = client.monitors().await?;
                let name = names.get(index).map_or("", String::as_str);
                eprintln!("[ponte] now sharing monitor {}: {name}", index + 1);
            }
            Command::Click { x, y, button } => {
                self.viewer
                    .input(vec![
                        InputEvent::Move { x, y },
                        InputEvent::Button {
                            button,
                            pressed: true,
                        },
                        InputEvent::Button {
                            button,
                            pressed: false,
                        },
                    ])
                    .await?
            }
            Command::Type(text) => self.viewer.input(vec![InputEvent::Text(text.into())]).await?,
            Command::Remember {
                name,
                organisation,
                days,
            } => self.remember(name, organisation, days).await?,
            Command::Help => println!("{HELP}"),
            Command::Quit => return Ok(false),
        }
        Ok(true)
    }

    /// `exec`: runs a command; its output shown inert on a terminal, byte for byte when piped.
    async fn exec(&self, cmd: &str) -> anyhow::Result<()> {
        // A command's output is the customer's computer's text: on a terminal it is shown
        // inert (no escapes that retitle it, set the clipboard or forge our lines);
        // piped, it stays byte for byte for scripts.
        let (out_tty, err_tty) = (std::io::stdout().is_terminal(), std::io::stderr().is_terminal());
        let status = self
            .viewer
            .exec(cmd, |stderr, data| {
                let shown = if stderr { err_tty } else { out_tty };
                let inert;
                let data = if shown {
                    inert = inert_lines(data);
                    inert.as_bytes()
                } else {
                    data
                };
                let _ = blocking(|| {
                    if stderr {
                        std::io::stderr().lock().write_all(data)
                    } else {
                        let mut out = std::io::stdout().lock();
                        out.write_all(data).and_then(|()| out.flush())
                    }
                });
            })
            .await?;
        match status {
            Some(0) => {}
            Some(code) => bail!("exit status {code}"),
            None => bail!("the command was killed by a signal"),
        }
        Ok(())
    }

    /// `ls`: one line per entry — kind, size, last change (local time), name (inert).
    async fn list(&self, path: &str) -> anyhow::Result<()> {
        let entries = self.viewer.list(path).await?;
        for entry in &entries {
            let (kind, size) = match entry.kind {
                ListedKind::File => ("file", indicatif::HumanBytes(entry.size).to_string()),
                ListedKind::Dir => ("dir", String::new()),
                ListedKind::Link => ("link", String::new()),
                ListedKind::Other => ("other", String::new()),
            };
            let modified = entry
                .modified
                .and_then(|secs| jiff::Timestamp::from_second(i64::try_from(secs).ok()?).ok())
                .map(|t| {
                    t.to_zoned(jiff::tz::TimeZone::system())
                        .strftime("%Y-%m-%d %H:%M")
                        .to_string()
                })
                .unwrap_or_default();
            println!("{kind:<5} {size:>10}  {modified:<16}  {}", entry.name);
        }
        if entries.len() == ponte_e2e::app::MAX_LISTING {
            println!("(the listing stops at {} entries)", ponte_e2e::app::MAX_LISTING);
        }
        Ok(())
    }

    /// `info`: the customer's system facts, aligned.
    async fn info(&self) -> anyhow::Result<()> {
        let facts = self.viewer.info().await?;
        let shown: Vec<(String, String)> = facts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let width = shown.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
        for (k, v) in shown {
            println!("{k:width$}  {v}");
        }
        Ok(())
    }

    /// `remember`: asks the customer for quick access, to be saved under `name`.
    async fn remember(&mut self, name: String, organisation: bool, days: u32) -> anyhow::Result<()> {
        // The address book first: the customer answers once per session.
        ponte_viewer::devices::Devices::load(&ponte_viewer::devices::Devices::default_path())?
            .can_add(&name)?;
        match self.viewer.request_quick_access(organisation, days).await? {
            QuickAccessReply::Later => {
                eprintln!(
                    "[ponte] the customer will be asked for quick access when this session ends; stay connected until they answer"
                );
                self.remember = Some(name);
            }
            QuickAccessReply::Allowed(grant) => save_device(name, grant).await?,
            QuickAccessReply::Refused => bail!("the customer did not allow quick access"),
        }
        Ok(())
    }

    /// An interactive terminal on the customer's computer, in raw mode until the remote shell
    /// exits. `input` delivers the local keystrokes.
    pub async fn shell(&self, input: &mut tokio::sync::mpsc::Receiver<Vec<u8>>) -> anyhow::Result<()> {
        let (cols, rows) = crossterm::terminal::size().unwrap_or((80, 24));
        let mut terminal = self.viewer.shell(cols, rows).await?;
        crossterm::terminal::enable_raw_mode().context("switching the terminal to raw mode")?;
        RAW.store(true, Ordering::Relaxed);
        struct Restore;
        impl Drop for Restore {
            fn drop(&mut self) {
                let _ = crossterm::terminal::disable_raw_mode();
                RAW.store(false, Ordering::Relaxed);
            }
        }
        let _restore = Restore;
        #[cfg(unix)]
        let mut resized = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
        loop {
            #[cfg(unix)]
            let resize = resized.recv();
            #[cfg(not(unix))]
            let resize = std::future::pending::<Option<()>>();
            tokio::select! {
                output = terminal.output() => match output? {
                    TerminalOutput::Output(data) => blocking(|| {
                        let mut out = std::io::stdout().lock();
                        out.write_all(&data).and_then(|()| out.flush())
                    })?,
                    TerminalOutput::Exit(_) => return Ok(()),
                },
                keys = input.recv() => match keys {
                    Some(bytes) => terminal.input(bytes).await?,
                    None => {
                        terminal.close().await?;
                        return Ok(());
                    }
                },
                _ = resize => {
                    if let Ok((cols, rows)) = crossterm::terminal::size() {
                        terminal.resize(cols, rows).await?;
                    }
                }
            }
        }
    }

    /// The screen stream, opened on first use (again if the last one ended).
    async fn screen(&mut self) -> anyhow::Result<&mut ScreenClient> {
        if self.screen.as_ref().is_some_and(|s| s.progress().ended.is_some()) {
            self.screen = None;
        }
        let client = match self.screen.take() {
            Some(client) => client,
            None => {
                self.last_shot = Progress::default();
                self.viewer.screen(screen_client::FPS).await?
            }
        };
        Ok(self.screen.insert(client))
    }

    async fn screenshot(&mut self, path: &str) -> anyhow::Result<()> {
        let client = self.screen().await?;
        let now = client.refresh().await?;
        let (width, height) = blocking(|| client.save_png(Path::new(path)))?;
        let last = std::mem::replace(&mut self.last_shot, now.clone());
        if let Some(why) = now.view_only.as_ref().filter(|_| last.view_only.is_none()) {
            eprintln!("[ponte] {why}");
        }
        eprintln!(
            "[ponte] saved {path} ({width}×{height}; {} tiles in {} frames since the last screenshot)",
            now.tiles - last.tiles,
            now.frames - last.frames
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(parse("monitor").unwrap(), Some(Command::Monitor(None)));
        assert_eq!(parse("monitor 2").unwrap(), Some(Command::Monitor(Some(1))));
        for bad in ["monitor 0", "monitor two", "monitor -1"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse("exec ls -la /tmp").unwrap(),
            Some(Command::Exec("ls -la /tmp".into()))
        );
        assert_eq!(
            parse("get -f a b").unwrap(),
            Some(Command::Get {
                remote: "a".into(),
                local: "b".into(),
                force: true
            })
        );
        assert_eq!(
            parse("put x y").unwrap(),
            Some(Command::Put {
                local: "x".into(),
                remote: "y".into(),
                force: false
            })
        );
        assert_eq!(parse("  # comment").unwrap(), None);
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("quit").unwrap(), Some(Command::Quit));
        assert!(parse("get onlyone").is_err());
        assert!(parse("exec").is_err());
        assert!(parse("rm -rf /").is_err());
        assert_eq!(
            parse("screenshot a.png").unwrap(),
            Some(Command::Screenshot("a.png".into()))
        );
        assert_eq!(
            parse("click 10 20 right").unwrap(),
            Some(Command::Click {
                x: 10,
                y: 20,
                button: 3
            })
        );
        assert_eq!(
            parse("click 10 20").unwrap(),
            Some(Command::Click {
                x: 10,
                y: 20,
                button: 1
            })
        );
        assert!(parse("click 10").is_err());
        assert!(parse("click -1 5").is_err());
        assert!(parse("click 1 5 thumb").is_err());
        assert_eq!(
            parse("type hello world").unwrap(),
            Some(Command::Type("hello world".into()))
        );
    }
}
