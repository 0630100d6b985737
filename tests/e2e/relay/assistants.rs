//! `ponte-relay assistant add/remove` run as real processes at the same time, as two operators
//! (or a provisioning script run twice) would: no change may be lost, and a removed credential
//! must never be admitted again — for the data directory's file and for a cluster's Redis.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ponte_relay::assistants::{AssistantStore, Assistants};
use ponte_testbed::{RedisServer, binary};
use ponte_transport::credential::AssistantCredential;

/// Longest a batch of CLI processes may take before the test fails instead of hanging.
const WAIT: Duration = Duration::from_secs(60);

/// `ponte-relay ARGS --data-dir DIR [--cluster URL]`, started and not waited for.
fn spawn(dir: &Path, cluster: Option<&str>, args: &[&str]) -> Child {
    let mut cmd = Command::new(binary("ponte-relay"));
    cmd.args(args).arg("--data-dir").arg(dir);
    if let Some(url) = cluster {
        cmd.args(["--cluster", url]);
    }
    cmd.env_remove("PONTE_RELAY_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for every process (bounded by [`WAIT`]), each of which must succeed; returns their
/// standard outputs.
fn finish(children: Vec<Child>) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    children
        .into_iter()
        .map(|mut child| {
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("ponte-relay assistant did not finish in {WAIT:?}");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "ponte-relay assistant failed: {stderr}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect()
}

/// Adds `names` at once, one process each; returns each name's credential.
fn add_all(dir: &Path, cluster: Option<&str>, names: &[String]) -> Vec<(String, AssistantCredential)> {
    let children = names
        .iter()
        .map(|name| spawn(dir, cluster, &["assistant", "add", name]))
        .collect();
    finish(children)
        .into_iter()
        .zip(names)
        .map(|(out, name)| (name.clone(), AssistantCredential::parse(out.trim()).unwrap()))
        .collect()
}

fn listed(dir: &Path, cluster: Option<&str>) -> BTreeSet<String> {
    let out = finish(vec![spawn(dir, cluster, &["assistant", "list"])]).remove(0);
    out.lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

#[test]
fn ten_concurrent_adds_keep_all_ten_names() {
    let dir = tempfile::tempdir().unwrap();
    // Three rounds of ten: one round alone may happen to run one process after the other.
    for round in 0..3 {
        let batch = names(&format!("r{round}-"), 10);
        let added = add_all(dir.path(), None, &batch);
        let all = listed(dir.path(), None);
        for name in &batch {
            assert!(all.contains(name), "{name} lost; the file has {all:?}");
        }
        let live = Assistants::new(dir.path());
        for (name, credential) in &added {
            assert_eq!(
                live.lookup(&credential.public_key()).as_deref(),
                Some(name.as_str())
            );
        }
    }
    assert_eq!(AssistantStore::in_dir(dir.path()).load().unwrap().len(), 30);
}

#[test]
fn concurrent_adds_and_removes_leave_no_removed_credential_admitted() {
    let dir = tempfile::tempdir().unwrap();
    let old = add_all(dir.path(), None, &names("old", 12));
    // Remove every old account while new ones are added.
    let mut children: Vec<Child> = old
        .iter()
        .map(|(name, _)| spawn(dir.path(), None, &["assistant", "remove", name]))
        .collect();
    let fresh = names("new", 12);
    children.extend(
        fresh
            .iter()
            .map(|name| spawn(dir.path(), None, &["assistant", "add", name])),
    );
    finish(children);
    let live = Assistants::new(dir.path());
    for (name, credential) in &old {
        assert_eq!(
            live.lookup(&credential.public_key()),
            None,
            "{name} was removed but is still admitted"
        );
    }
    let all = listed(dir.path(), None);
    assert_eq!(all, fresh.iter().cloned().collect::<BTreeSet<_>>());
}

#[test]
fn concurrent_adds_and_removes_on_a_cluster_lose_nothing() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let old = add_all(dir.path(), Some(&url), &names("old", 10));
    let mut children: Vec<Child> = old
        .iter()
        .map(|(name, _)| spawn(dir.path(), Some(&url), &["assistant", "remove", name]))
        .collect();
    let fresh = names("new", 10);
    children.extend(
        fresh
            .iter()
            .map(|name| spawn(dir.path(), Some(&url), &["assistant", "add", name])),
    );
    finish(children);
    assert_eq!(
        listed(dir.path(), Some(&url)),
        fresh.iter().cloned().collect::<BTreeSet<_>>()
    );
    assert!(
        !dir.path().join(ponte_relay::assistants::FILE).exists(),
        "a cluster's accounts are in Redis only"
    );
}
