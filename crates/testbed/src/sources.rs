//! The source files one of the workspace's programs is built from: everything under `src/` of
//! its package and of the workspace packages that package depends on (normal dependencies,
//! transitively), read from the Cargo.toml files.
//!
//! Not cargo's `target/<profile>/<program>.d`: cargo writes that only for a program it was asked
//! to build, not for one it builds because the package's integration tests run (which is how
//! `cargo test --workspace` builds the programs the end-to-end tests start).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The workspace root (this crate is `crates/testbed` in it).
fn workspace() -> &'static Path {
    let testbed = Path::new(env!("CARGO_MANIFEST_DIR"));
    testbed.parent().and_then(Path::parent).unwrap_or(testbed)
}

fn manifest(dir: &Path) -> Result<toml::Table, String> {
    let path = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.parse().map_err(|e| format!("{}: {e}", path.display()))
}

/// The names of the packages `manifest` depends on (normal dependencies, any platform).
fn dependencies(manifest: &toml::Table) -> Vec<String> {
    let targets = manifest.get("target").and_then(|t| t.as_table());
    let tables = std::iter::once(manifest.get("dependencies"))
        .chain(
            targets
                .into_iter()
                .flat_map(|t| t.values().map(|t| t.get("dependencies"))),
        )
        .filter_map(|d| d?.as_table());
    let mut names = Vec::new();
    for table in tables {
        for (key, dep) in table {
            // A dependency renamed in the manifest names its package with `package`.
            let package = dep.get("package").and_then(|p| p.as_str()).unwrap_or(key);
            names.push(package.to_owned());
        }
    }
    names
}

/// Every file under `src/` of the workspace package `package` and of the workspace packages
/// it depends on.
pub(crate) fn sources(package: &str) -> Result<Vec<PathBuf>, String> {
    let root = workspace();
    let top = manifest(root)?;
    let members = top
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .ok_or("the workspace lists no members")?;
    let mut packages = HashMap::new();
    for member in members.iter().filter_map(|m| m.as_str()) {
        let dir = root.join(member);
        let manifest = manifest(&dir)?;
        let name = manifest
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str());
        if let Some(name) = name {
            packages.insert(name.to_owned(), (dir, dependencies(&manifest)));
        }
    }
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    let mut todo = vec![package.to_owned()];
    while let Some(name) = todo.pop() {
        // Packages from the registry change only with Cargo.lock.
        let Some((dir, deps)) = packages.get(&name) else {
            continue;
        };
        if seen.insert(name) {
            walk(&dir.join("src"), &mut files).map_err(|e| format!("{}: {e}", dir.display()))?;
            todo.extend(deps.iter().cloned());
        }
    }
    if seen.is_empty() {
        return Err(format!("no workspace package is named {package}"));
    }
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_is_built_from_its_package_and_the_wire_never_from_the_end_to_end_layer() {
        let files = sources("ponte-relay").unwrap();
        let has = |part: &str| files.iter().any(|f| f.to_string_lossy().contains(part));
        assert!(has("/relay/src/main.rs") && has("/relay/src/cluster/register.lua"));
        assert!(has("/crates/wire/src/") && has("/crates/transport/src/"));
        assert!(!has("/crates/e2e/") && !has("/agent/"), "{files:?}");
    }
}
