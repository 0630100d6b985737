//! The Files tab: the assistant's folder and the customer's side by side, browsable; a file or
//! folder moves by a button or by dragging it to the other pane, through a queue that shows
//! each transfer's progress and lets it be cancelled.
//!
//! The customer's side is hostile: its names are shown inert, and one becomes a local file name
//! only if it is a single plain name ([`local_name`]) — a listing cannot make a download land
//! outside the assistant's folder.

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use eframe::egui::{self, RichText};
use ponte_e2e::app::{ListEntry, ListedKind};
use ponte_session::files::Progress;
use ponte_wire::PeerText;

use super::session::Update;
use super::{AMBER, GREEN, Peer, RED};
use ponte_viewer::client::ViewerError;

/// After this long without a byte moving, a transfer is shown as waiting for the customer (the
/// customer's computer asks them about places outside the shared folder and replacements).
const ASKING_AFTER: Duration = Duration::from_millis(800);

/// What a files task tells the app.
pub enum FilesUpdate {
    /// The customer's folder at `path` was listed.
    Listed {
        path: String,
        result: Result<Vec<ListEntry>, String>,
    },
    /// A transfer advanced.
    Progress { job: u64, progress: Progress },
    /// A transfer ended: what arrived, or why not.
    Finished {
        job: u64,
        result: Result<String, String>,
    },
}

/// A name dragged from one pane to the other.
#[derive(Clone)]
enum Dragged {
    Local(String),
    Remote(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Down,
    Up,
}

enum JobState {
    Running {
        task: tokio::task::AbortHandle,
        done: u64,
        total: Option<u64>,
        moved: Instant,
    },
    /// The target is there already: replace it, or not.
    Exists,
    Done(String),
    Failed(String),
}

struct Job {
    id: u64,
    direction: Direction,
    /// The remote path.
    remote: String,
    /// The local path.
    local: PathBuf,
    state: JobState,
}

/// An entry as a pane shows it: its name, and its line (built once; a customer's name inert).
struct Row {
    name: String,
    line: String,
    dir: bool,
}

/// The Files tab of one session.
pub struct Files {
    local: PathBuf,
    local_entries: Result<Vec<Row>, String>,
    local_selected: Option<String>,
    /// The customer's folder shown: a path relative to their shared folder ("." is it).
    remote: String,
    /// Its entries, once listed (`None`: being listed).
    remote_entries: Option<Result<Vec<Row>, String>>,
    remote_selected: Option<String>,
    /// The customer's folder is to be listed (again) when next shown.
    relist: bool,
    jobs: Vec<Job>,
    next_job: u64,
}

impl Files {
    /// The tab, the assistant's side starting in `local`.
    pub fn new(local: PathBuf) -> Files {
        let mut files = Files {
            local,
            local_entries: Ok(Vec::new()),
            local_selected: None,
            remote: ".".to_owned(),
            remote_entries: None,
            remote_selected: None,
            relist: true,
            jobs: Vec::new(),
            next_job: 0,
        };
        files.read_local();
        files
    }

    /// Lists the customer's folder (again).
    fn list_remote(&mut self, peer: &Peer) {
        self.remote_entries = None;
        self.relist = false;
        let (viewer, outbox, path) = (peer.viewer.clone(), peer.outbox.clone(), self.remote.clone());
        peer.runtime.spawn(async move {
            let result = viewer.list(&path).await.map_err(|e| e.to_string());
            outbox.send(Update::Files(FilesUpdate::Listed { path, result }));
        });
    }

    /// Takes what a files task said.
    pub fn apply(&mut self, update: FilesUpdate) {
        match update {
            FilesUpdate::Listed { path, result } if path == self.remote => {
                self.remote_entries = Some(result.map(|entries| {
                    let mut rows: Vec<Row> = entries
                        .iter()
                        .map(|e| {
                            let dir = e.kind == ListedKind::Dir;
                            Row {
                                name: e.name.as_raw().to_owned(),
                                line: line(&e.name.to_string(), dir, e.size),
                                dir,
                            }
                        })
                        .collect();
                    rows.sort_by(|a, b| (!a.dir, &a.name).cmp(&(!b.dir, &b.name)));
                    rows
                }));
            }
            FilesUpdate::Listed { .. } => {}
            FilesUpdate::Progress { job, progress } => {
                if let Some(JobState::Running {
                    done, total, moved, ..
                }) = self.jobs.iter_mut().find(|j| j.id == job).map(|j| &mut j.state)
                {
                    match progress {
                        Progress::Started(totals) => *total = Some(totals.bytes),
                        Progress::Advanced(n) => *done = done.saturating_add(n),
                    }
                    *moved = Instant::now();
                }
            }
            FilesUpdate::Finished { job, result } => {
                let Some(j) = self.jobs.iter_mut().find(|j| j.id == job) else {
                    return;
                };
                let direction = j.direction;
                j.state = match result {
                    Ok(what) => JobState::Done(what),
                    Err(why) => JobState::Failed(why),
                };
                match direction {
                    Direction::Down => self.read_local(),
                    Direction::Up => self.relist = true,
                }
            }
        }
    }

    fn read_local(&mut self) {
        self.local_entries = std::fs::read_dir(&self.local)
            .map_err(|e| e.to_string())
            .map(|dir| {
                let mut rows: Vec<Row> = dir
                    .filter_map(Result::ok)
                    .filter_map(|e| {
                        let meta = e.metadata().ok()?;
                        let name = e.file_name().to_str()?.to_owned();
                        Some(Row {
                            line: line(
                                &PeerText::new(name.clone()).to_string(),
                                meta.is_dir(),
                                meta.len(),
                            ),
                            name,
                            dir: meta.is_dir(),
                        })
                    })
                    .filter(|r| !r.name.starts_with('.'))
                    .collect();
                rows.sort_by(|a, b| (!a.dir, &a.name).cmp(&(!b.dir, &b.name)));
                rows
            });
    }

    fn remote_path(&self, name: &str) -> String {
        if self.remote == "." {
            name.to_owned()
        } else {
            format!("{}/{name}", self.remote)
        }
    }

    /// The entry of the customer's folder shown at `remote` (a path in it), if listed.
    fn remote_row(&self, remote: &str) -> Option<&Row> {
        let name = remote.rsplit('/').next().unwrap_or(remote);
        match &self.remote_entries {
            Some(Ok(rows)) => rows.iter().find(|r| r.name == name),
            _ => None,
        }
    }

    /// Starts a download of the customer's `name` into the assistant's folder.
    fn download(&mut self, name: &str, peer: &Peer) {
        let remote = self.remote_path(name);
        let Some(local) = local_name(name).map(|n| self.local.join(n)) else {
            let id = self.take_id();
            self.jobs.push(Job {
                id,
                direction: Direction::Down,
                remote,
                local: self.local.clone(),
                state: JobState::Failed(
                    "the customer's computer sent a name that is not a plain file name".into(),
                ),
            });
            return;
        };
        self.queue(Direction::Down, remote, local, false, peer);
    }

    /// Starts an upload of the assistant's `name` into the customer's folder shown.
    fn upload(&mut self, name: &str, peer: &Peer) {
        let (remote, local) = (self.remote_path(name), self.local.join(name));
        self.queue(Direction::Up, remote, local, false, peer);
    }

    fn take_id(&mut self) -> u64 {
        self.next_job += 1;
        self.next_job
    }

    fn queue(&mut self, direction: Direction, remote: String, local: PathBuf, replace: bool, peer: &Peer) {
        let id = self.take_id();
        let (exists, folder) = match direction {
            Direction::Down => match std::fs::symlink_metadata(&local) {
                Ok(meta) => (true, meta.is_dir()),
                Err(_) => (false, false),
            },
            Direction::Up => match self.remote_row(&remote) {
                Some(row) => (true, row.dir),
                None => (false, false),
            },
        };
        // A folder is never replaced: its contents would merge with what is there.
        if exists && folder {
            self.jobs.push(Job {
                id,
                direction,
                remote,
                local,
                state: JobState::Failed("a folder of that name is there already".into()),
            });
            return;
        }
        if exists && !replace {
            self.jobs.push(Job {
                id,
                direction,
                remote,
                local,
                state: JobState::Exists,
            });
            return;
        }
        let (viewer, outbox) = (peer.viewer.clone(), peer.outbox.clone());
        let (from, to) = (remote.clone(), local.clone());
        let task = peer.runtime.spawn(async move {
            let progress_box = outbox.clone();
            let mut progress =
                move |progress| progress_box.send(Update::Files(FilesUpdate::Progress { job: id, progress }));
            let result = match direction {
                Direction::Down => viewer.get(&from, &to, replace, &mut progress).await,
                Direction::Up => viewer.put(&to, &from, replace, &mut progress).await,
            };
            let result = result
                .map(|totals| summary(totals.files, totals.bytes))
                .map_err(|e| match e {
                    ViewerError::Refused(why) => format!("the customer's computer refused: {why}"),
                    other => other.to_string(),
                });
            outbox.send(Update::Files(FilesUpdate::Finished { job: id, result }));
        });
        self.jobs.push(Job {
            id,
            direction,
            remote,
            local,
            state: JobState::Running {
                task: task.abort_handle(),
                done: 0,
                total: None,
                moved: Instant::now(),
            },
        });
    }

    /// Draws the tab. `download` and `upload`: whether the customer allows them now.
    pub fn show(&mut self, ui: &mut egui::Ui, peer: &Peer, (download, upload): (bool, bool)) {
        if std::mem::take(&mut self.relist) {
            self.list_remote(peer);
        }
        ui.horizontal(|ui| {
            let selected = self.remote_selected.clone();
            if ui
                .add_enabled(download && selected.is_some(), egui::Button::new("⬅ Download"))
                .on_disabled_hover_text(if download {
                    "choose a file on the customer's side"
                } else {
                    "the customer does not allow copying files from their computer"
                })
                .clicked()
                && let Some(name) = selected
            {
                self.download(&name, peer);
            }
            let selected = self.local_selected.clone();
            if ui
                .add_enabled(upload && selected.is_some(), egui::Button::new("Upload ➡"))
                .on_disabled_hover_text(if upload {
                    "choose a file on your side"
                } else {
                    "the customer does not allow putting files on their computer"
                })
                .clicked()
                && let Some(name) = selected
            {
                self.upload(&name, peer);
            }
            ui.weak("or drag a file to the other side");
        });
        let queue_height = if self.jobs.is_empty() { 0.0 } else { 160.0 };
        let panes_height = (ui.available_height() - queue_height).max(120.0);
        let dropped = ui.columns(2, |columns| {
            columns[0].set_height(panes_height);
            columns[1].set_height(panes_height);
            let on_local = self.local_pane(&mut columns[0]);
            self.remote_pane(&mut columns[1], peer).or(on_local)
        });
        match dropped {
            Some(Dragged::Remote(name)) if download => self.download(&name, peer),
            Some(Dragged::Local(name)) if upload => self.upload(&name, peer),
            _ => {}
        }
        self.queue_view(ui, peer);
    }

    /// The assistant's folder; returns what was dropped on it.
    fn local_pane(&mut self, ui: &mut egui::Ui) -> Option<Dragged> {
        let mut go = None;
        let pane = ui.scope(|ui| {
            ui.horizontal(|ui| {
                ui.strong("Your computer");
                if ui.small_button("⬆ Up").clicked() {
                    go = self.local.parent().map(Path::to_path_buf);
                }
            });
            ui.label(RichText::new(self.local.display().to_string()).small());
            ui.separator();
            match &self.local_entries {
                Err(e) => {
                    ui.colored_label(RED, e);
                }
                Ok(entries) => {
                    let (clicked, opened) = rows(
                        ui,
                        "local",
                        entries,
                        self.local_selected.as_deref(),
                        Dragged::Local,
                    );
                    if let Some(name) = clicked {
                        self.local_selected = Some(name);
                    }
                    if let Some(name) = opened {
                        go = Some(self.local.join(name));
                    }
                }
            }
        });
        if let Some(dir) = go {
            self.local = dir;
            self.local_selected = None;
            self.read_local();
        }
        match pane.response.dnd_release_payload::<Dragged>().as_deref() {
            Some(Dragged::Remote(name)) => Some(Dragged::Remote(name.clone())),
            _ => None,
        }
    }

    /// The customer's folder; returns what was dropped on it.
    fn remote_pane(&mut self, ui: &mut egui::Ui, peer: &Peer) -> Option<Dragged> {
        let mut go = None;
        let pane = ui.scope(|ui| {
            ui.horizontal(|ui| {
                ui.strong("Customer's computer");
                if ui.small_button("⬆ Up").clicked() {
                    go = Some(parent(&self.remote));
                }
                if ui.small_button("⟳ Refresh").clicked() {
                    go = Some(self.remote.clone());
                }
            });
            let shown = if self.remote == "." {
                "the shared folder".to_owned()
            } else {
                format!("shared folder / {}", PeerText::path(Path::new(&self.remote)))
            };
            ui.label(RichText::new(shown).small());
            ui.separator();
            match &self.remote_entries {
                None => {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label("listing… (the customer may be asked)");
                    });
                }
                Some(Err(e)) => {
                    ui.colored_label(RED, e);
                }
                Some(Ok(entries)) if entries.is_empty() => {
                    ui.weak("(empty)");
                }
                Some(Ok(entries)) => {
                    let (clicked, opened) = rows(
                        ui,
                        "remote",
                        entries,
                        self.remote_selected.as_deref(),
                        Dragged::Remote,
                    );
                    if let Some(name) = clicked {
                        self.remote_selected = Some(name);
                    }
                    if let Some(name) = opened {
                        go = Some(self.remote_path(&name));
                    }
                }
            }
        });
        if let Some(path) = go {
            self.remote = path;
            self.remote_selected = None;
            self.list_remote(peer);
        }
        match pane.response.dnd_release_payload::<Dragged>().as_deref() {
            Some(Dragged::Local(name)) => Some(Dragged::Local(name.clone())),
            _ => None,
        }
    }

    fn queue_view(&mut self, ui: &mut egui::Ui, peer: &Peer) {
        if self.jobs.is_empty() {
            return;
        }
        ui.separator();
        let mut replace = None;
        let mut remove = None;
        egui::ScrollArea::vertical()
            .id_salt("queue")
            .stick_to_bottom(true)
            .show(ui, |ui| {
                for job in &mut self.jobs {
                    ui.horizontal(|ui| {
                        let what = match job.direction {
                            Direction::Down => format!("⬅ {}", PeerText::path(Path::new(&job.remote))),
                            Direction::Up => format!("➡ {}", PeerText::path(Path::new(&job.remote))),
                        };
                        ui.label(what);
                        match &job.state {
                            JobState::Running {
                                task,
                                done,
                                total,
                                moved,
                            } => {
                                if *done == 0 && total.is_none() && moved.elapsed() > ASKING_AFTER {
                                    ui.spinner();
                                    ui.label(RichText::new("waiting for the customer…").color(AMBER));
                                } else {
                                    let fraction = total.map_or(0.0, |t| *done as f32 / t.max(1) as f32);
                                    ui.add(egui::ProgressBar::new(fraction).desired_width(200.0).text(
                                        format!("{} of {}", bytes(*done), total.map_or("?".into(), bytes)),
                                    ));
                                }
                                if ui.small_button("Cancel").clicked() {
                                    task.abort();
                                    job.state = JobState::Failed("cancelled".into());
                                }
                            }
                            JobState::Exists => {
                                let place = match job.direction {
                                    Direction::Down => "is already in your folder:",
                                    Direction::Up => {
                                        "is already on the customer's computer (they will be asked):"
                                    }
                                };
                                ui.colored_label(AMBER, place);
                                if ui.small_button("Replace").clicked() {
                                    replace = Some(job.id);
                                }
                                if ui.small_button("Skip").clicked() {
                                    job.state = JobState::Failed("skipped".into());
                                }
                            }
                            JobState::Done(what) => {
                                ui.colored_label(GREEN, format!("done: {what}, hash verified"));
                                if ui.small_button("✖").clicked() {
                                    remove = Some(job.id);
                                }
                            }
                            JobState::Failed(why) => {
                                ui.colored_label(RED, format!("failed: {why}"));
                                if ui.small_button("✖").clicked() {
                                    remove = Some(job.id);
                                }
                            }
                        }
                    });
                }
            });
        if let Some(id) = remove {
            self.jobs.retain(|j| j.id != id);
        }
        if let Some(index) = replace.and_then(|id| self.jobs.iter().position(|j| j.id == id)) {
            let job = self.jobs.remove(index);
            self.queue(job.direction, job.remote, job.local, true, peer);
        }
        // A running transfer's "waiting" appears without an event.
        if self
            .jobs
            .iter()
            .any(|j| matches!(j.state, JobState::Running { .. }))
        {
            ui.ctx().request_repaint_after(ASKING_AFTER);
        }
    }
}

/// The customer's entry `name` as a file name in the assistant's folder: only a single plain
/// name (no separator, no `..`), so a listing cannot choose where a download lands; not a
/// hidden one, which in a home folder could be a shell's or a program's start-up file; none
/// that reads as another (invisible or direction-changing characters) or as an option or a
/// home folder to a shell (`-`, `~`).
pub fn local_name(name: &str) -> Option<&str> {
    let mut components = Path::new(name).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(_)), None)
            if !name.starts_with(['.', '-', '~'])
                && !name.contains(['/', '\\', '\0'])
                && name
                    .chars()
                    .all(|c| !c.is_control() && !ponte_wire::text::is_invisible(c)) =>
        {
            Some(name)
        }
        _ => None,
    }
}

fn line(name: &str, dir: bool, size: u64) -> String {
    if dir {
        format!("🗀 {name}/")
    } else {
        format!("🗋 {name}   {}", bytes(size))
    }
}

/// A pane's entries, only those in view laid out (a folder may list 10,000); returns the name
/// clicked and the folder double-clicked, if any. Each row can be dragged to the other pane.
fn rows(
    ui: &mut egui::Ui,
    salt: &str,
    entries: &[Row],
    selected: Option<&str>,
    dragged: fn(String) -> Dragged,
) -> (Option<String>, Option<String>) {
    let (mut clicked, mut opened) = (None, None);
    let height = ui.spacing().interact_size.y;
    egui::ScrollArea::vertical()
        .id_salt(salt)
        .auto_shrink([false, false])
        .show_rows(ui, height, entries.len(), |ui, range| {
            for entry in &entries[range] {
                let response = ui.add(
                    egui::Button::selectable(selected == Some(entry.name.as_str()), entry.line.as_str())
                        .sense(egui::Sense::click_and_drag()),
                );
                response.dnd_set_drag_payload(dragged(entry.name.clone()));
                if response.clicked() {
                    clicked = Some(entry.name.clone());
                }
                if response.double_clicked() && entry.dir {
                    opened = Some(entry.name.clone());
                }
            }
        });
    (clicked, opened)
}

/// The folder above `path` (relative to the shared folder, whose own is `..`).
fn parent(path: &str) -> String {
    match path {
        "." => "..".to_owned(),
        p if p == ".." || p.ends_with("/..") => format!("{p}/.."),
        p => match p.rsplit_once('/') {
            Some((up, _)) => up.to_owned(),
            None => ".".to_owned(),
        },
    }
}

fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

fn summary(files: u64, total: u64) -> String {
    if files == 1 {
        bytes(total)
    } else {
        format!("{files} files, {}", bytes(total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_goes_up_from_the_shared_folder_and_above_it() {
        assert_eq!(parent("."), "..");
        assert_eq!(parent(".."), "../..");
        assert_eq!(parent("../.."), "../../..");
        assert_eq!(parent("docs/2026"), "docs");
        assert_eq!(parent("docs"), ".");
    }

    #[test]
    fn a_listed_name_lands_only_in_the_assistants_folder() {
        assert_eq!(local_name("report.pdf"), Some("report.pdf"));
        for hostile in [
            "../.bashrc",
            "/etc/passwd",
            "a/b",
            "..",
            ".",
            ".ssh",
            "",
            "a\\b",
            "evil\u{1b}[2J",
            "nul\0",
            "invoice\u{202e}fdp.sh",
            "zero\u{200b}width",
            "-rf",
            "~root",
        ] {
            assert_eq!(local_name(hostile), None, "{hostile:?}");
        }
    }
}
